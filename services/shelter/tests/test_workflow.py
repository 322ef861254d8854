"""The case workflow through the API against real PostgreSQL and Kafka: intake to closure and
reopening with supervisor approvals, consents gating services and referrals, referral
states, transfers keeping the history, encryption at rest, idempotent intake, and events that
carry no personal data."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import text

from pilar_kernel.testing import eventually
from shelter_testkit import ALL_CONSENTS, LOW_RISK, case_body, case_in, new_member, new_team, open_case

pytestmark = pytest.mark.stack

T = "id.go.jatimprov.dinsos.shelter.case."
SECRETS = ("Sri Wahyuni", "3578015705940001", "Kenjeran", "0812-1111-2222", "bruises", "Polrestabes")


async def rows(client, sql: str, **params):
    async with client.app.state.session_factory() as s:
        return (await s.execute(text(sql), params)).all()


async def events_of(client, case_id: str) -> list[tuple[str, dict]]:
    found = await rows(client, "SELECT ce_type, payload FROM outbox WHERE message_key = :k ORDER BY id", k=case_id)
    return [(t.removeprefix(T), json.loads(p)) for t, p in found]


async def test_intake_to_closure_and_reopen(shelter_api):
    c = shelter_api
    team = await new_team(c)
    cw, sup = team.caseworker.h, team.supervisor.h
    person_id = str(uuid.uuid4())
    r = await c.post("/v1/cases", json=case_body(person_id=person_id), headers=cw)
    assert r.status_code == 201, r.text
    receipt = r.json()
    assert receipt["status"] == "intake" and receipt["child"] is False and receipt["caseworker_id"] == team.caseworker.user
    assert not any(s in r.text for s in SECRETS)  # a receipt holds no survivor data
    case_id = receipt["id"]

    case = (await c.get(f"/v1/cases/{case_id}", headers=cw)).json()
    assert case["survivor"]["name"] == "Sri Wahyuni" and case["survivor"]["nik"] == "3578015705940001"
    assert case["registry_person_id"] == person_id
    assert {k: v["granted"] for k, v in case["consents"].items()} == {"services": True, "partner_sharing": True, "registry_enrolment": True}

    # Survivor data is ciphertext at rest.
    raw = (await rows(c, "SELECT profile_enc, person_enc FROM shelter_case WHERE id = CAST(:i AS uuid)", i=case_id))[0]
    assert b"Sri Wahyuni" not in raw.profile_enc and b"3578015705940001" not in raw.profile_enc
    assert person_id.encode() not in raw.person_enc

    r = await c.post(f"/v1/cases/{case_id}/incidents", headers=cw, json={
        "violence_types": ["physical", "psychological"], "perpetrator_relationship": "spouse", "occurred_on": "2026-01-03",
        "regency_code": "3578", "narrative": "Beaten with a belt after an argument about money.",
    })
    assert r.status_code == 201, r.text
    incidents = (await c.get(f"/v1/cases/{case_id}/incidents", headers=cw)).json()
    assert incidents[0]["narrative"].startswith("Beaten") and incidents[0]["regency_code"] == "35.78"

    # Services wait for the approved plan.
    service = {"kind": "medical", "provider": "RSUD dr. Soetomo", "delivered_on": "2026-01-04", "outcome": "Visum et repertum done."}
    assert (await c.post(f"/v1/cases/{case_id}/services", json=service, headers=cw)).status_code == 409

    r = await c.post(f"/v1/cases/{case_id}/risk-assessments", json={"answers": LOW_RISK | {"threat_to_kill": "yes"}}, headers=cw)
    assert r.status_code == 201 and (r.json()["level"], r.json()["score"]) == ("critical", 3)
    assert (await c.get(f"/v1/cases/{case_id}", headers=cw)).json()["status"] == "assessment"
    assessed = (await c.get(f"/v1/cases/{case_id}/risk-assessments", headers=cw)).json()
    assert assessed[0]["answers"]["threat_to_kill"] == "yes"

    plan = {"goals": "Safety first; counselling; divorce with legal aid.", "planned_services": ["medical", "legal_aid", "psychosocial"]}
    assert (await c.post(f"/v1/cases/{case_id}/plan", json=plan, headers=cw)).status_code == 201
    r = await c.post(f"/v1/cases/{case_id}/plan/approve", json={}, headers=cw)
    assert r.status_code == 403  # a caseworker never approves
    r = await c.post(f"/v1/cases/{case_id}/plan/return", json={}, headers=sup)
    assert r.status_code == 422 and r.json()["errors"][0]["rule"] == "plan.return_note"
    r = await c.post(f"/v1/cases/{case_id}/plan/return", json={"note": "Add a safety plan for the children."}, headers=sup)
    assert r.status_code == 200 and r.json()["status"] == "assessment"
    assert (await c.post(f"/v1/cases/{case_id}/plan", json=plan, headers=cw)).status_code == 201
    r = await c.post(f"/v1/cases/{case_id}/plan/approve", json={}, headers=sup)
    assert r.status_code == 200 and r.json()["status"] == "in_service"
    plans = (await c.get(f"/v1/cases/{case_id}/plans", headers=sup)).json()
    assert [p["status"] for p in plans] == ["returned", "approved"] and plans[0]["note"].startswith("Add a safety plan")

    for kind in ("medical", "legal_aid"):
        r = await c.post(f"/v1/cases/{case_id}/services", json=service | {"kind": kind}, headers=cw)
        assert r.status_code == 201, r.text
    done = (await c.get(f"/v1/cases/{case_id}/services", headers=cw)).json()
    assert [s["kind"] for s in done] == ["legal_aid", "medical"] or [s["kind"] for s in done] == ["medical", "legal_aid"]
    assert done[0]["outcome"] == "Visum et repertum done."

    assert (await c.post(f"/v1/cases/{case_id}/admission", headers=cw)).status_code == 201
    r = await c.post(f"/v1/cases/{case_id}/closure", json={"reason": "reintegrated"}, headers=cw)
    assert r.status_code == 409 and r.json()["errors"][0]["rule"] == "case.admitted"  # discharge first
    assert (await c.post(f"/v1/cases/{case_id}/discharge", json={}, headers=cw)).status_code == 200

    r = await c.post(f"/v1/cases/{case_id}/closure", json={"reason": "reintegrated", "note": "Back with her mother in Gresik."}, headers=cw)
    assert r.status_code == 200 and r.json()["status"] == "closure_pending"
    r = await c.post(f"/v1/cases/{case_id}/closure/reject", headers=sup)
    assert r.status_code == 200 and r.json()["status"] == "in_service"  # back where it was
    assert (await c.post(f"/v1/cases/{case_id}/closure", json={"reason": "reintegrated"}, headers=cw)).status_code == 200
    r = await c.post(f"/v1/cases/{case_id}/closure/approve", headers=sup)
    assert r.status_code == 200 and (r.json()["status"], r.json()["closure_reason"]) == ("closed", "reintegrated")
    assert (await c.post(f"/v1/cases/{case_id}/incidents", headers=cw, json={
        "violence_types": ["physical"], "perpetrator_relationship": "spouse", "regency_code": "35.78"})).status_code == 409

    r = await c.post(f"/v1/cases/{case_id}/reopen", json={"reason": "new_incident"}, headers=cw)
    assert r.status_code == 200 and r.json()["status"] == "assessment" and r.json()["closed_at"] is None

    events = await events_of(c, case_id)
    assert [t for t, _ in events] == ["opened.v1", "admitted.v1", "discharged.v1", "closed.v1", "reopened.v1"]
    opened, closed = events[0][1], events[3][1]
    assert opened["referral_source"] == "police" and opened["regency_code"] == "35.78" and opened["child"] is False
    assert closed["violence_types"] == ["physical", "psychological"] and closed["ppks"] == ["korban_tindak_kekerasan"]
    assert events[2][1]["economic_support"] is None  # no programme asked for: no person id either
    for _, payload in events:
        assert not any(s in json.dumps(payload) for s in SECRETS + (person_id,))
    published = await eventually(lambda: _all_published(c, case_id), timeout=20)
    assert published


async def _all_published(c, case_id):
    pending = await rows(c, "SELECT count(*) FROM outbox WHERE message_key = :k AND published_at IS NULL", k=case_id)
    return pending[0][0] == 0


async def test_four_eyes_a_supervisor_does_not_approve_their_own_plan(shelter_api):
    team = await new_team(shelter_api)
    case_id = await case_in(shelter_api, team, "assessment")
    own = team.supervisor.h
    plan = {"goals": "Counselling.", "planned_services": ["psychosocial"]}
    assert (await shelter_api.post(f"/v1/cases/{case_id}/plan", json=plan, headers=own)).status_code == 201
    r = await shelter_api.post(f"/v1/cases/{case_id}/plan/approve", json={}, headers=own)
    assert r.status_code == 422 and r.json()["errors"][0]["rule"] == "plan.four_eyes"
    assert (await shelter_api.post(f"/v1/cases/{case_id}/plan/approve", json={}, headers=team.supervisor2.h)).status_code == 200


async def test_children_and_placement_rules(shelter_api):
    women, children = await new_team(shelter_api), await new_team(shelter_api, kind="children")
    r = await shelter_api.post("/v1/cases", json=case_body(child=True), headers=women.caseworker.h)
    assert r.status_code == 422 and r.json()["errors"][0]["rule"] == "placement.child"
    r = await shelter_api.post("/v1/cases", json=case_body(sex="M"), headers=women.caseworker.h)
    assert r.status_code == 422 and r.json()["errors"][0]["rule"] == "placement.women"
    body = case_body(child=True)
    body["consents"][0]["given_by"] = "survivor"
    r = await shelter_api.post("/v1/cases", json=body, headers=children.caseworker.h)
    assert r.status_code == 422 and r.json()["errors"][0]["rule"] == "consent.child"
    boy = await open_case(shelter_api, children, child=True, sex="M", birth_date=None, age_estimate=9)
    assert boy["child"] is True
    r = await shelter_api.patch(f"/v1/cases/{boy['id']}", json={"version": boy["version"], "survivor": {"age_estimate": 25}},
                                headers=children.caseworker.h)
    assert r.status_code == 422 and r.json()["errors"][0]["rule"] == "placement.adult"


async def test_bad_input_is_named(shelter_api):
    team = await new_team(shelter_api)
    body = case_body(regency_code="35.99", nik="123")
    body["referral_source"] = "gossip"
    r = await shelter_api.post("/v1/cases", json=body, headers=team.caseworker.h)
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"body.survivor.regency_code", "body.survivor.nik", "body.referral_source"}
    r = await shelter_api.post("/v1/cases", json=case_body(birth_date=None), headers=team.caseworker.h)
    assert r.status_code == 422 and r.json()["errors"][0]["rule"] == "survivor.age"
    r = await shelter_api.post("/v1/cases", json=case_body() | {"caseworker_id": team.colleague.user}, headers=team.caseworker.h)
    assert r.status_code == 422  # a caseworker cannot open a case for a colleague
    r = await shelter_api.post("/v1/cases", json=case_body(), headers=team.supervisor.h)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "caseworker_id"
    r = await shelter_api.post("/v1/cases", json=case_body() | {"caseworker_id": team.colleague.user}, headers=team.supervisor.h)
    assert r.status_code == 201 and r.json()["caseworker_id"] == team.colleague.user


async def test_consents_gate_services_referrals_and_withdrawal_revokes_referrals(shelter_api):
    c = shelter_api
    team = await new_team(c)
    cw = team.caseworker.h
    case_id = await case_in(c, team, "in_service", consents=[])
    service = {"kind": "psychosocial", "provider": "UPT PPA Surabaya", "delivered_on": "2026-01-05", "outcome": "Two sessions."}
    r = await c.post(f"/v1/cases/{case_id}/services", json=service, headers=cw)
    assert r.status_code == 422 and r.json()["errors"][0]["rule"] == "consent.services"
    referral = {"partner_kind": "legal_aid", "partner_name": "LBH Surabaya", "purpose": "Divorce and custody."}
    r = await c.post(f"/v1/cases/{case_id}/referrals", json=referral, headers=cw)
    assert r.status_code == 422 and r.json()["errors"][0]["rule"] == "consent.partner_sharing"
    for consent in ALL_CONSENTS:
        assert (await c.post(f"/v1/cases/{case_id}/consents", json=consent, headers=cw)).status_code == 201
    assert (await c.post(f"/v1/cases/{case_id}/services", json=service, headers=cw)).status_code == 201
    first = (await c.post(f"/v1/cases/{case_id}/referrals", json=referral, headers=cw)).json()
    second = (await c.post(f"/v1/cases/{case_id}/referrals", json=referral | {"partner_kind": "hospital", "partner_name": "RSUD"}, headers=cw)).json()
    assert (await c.post(f"/v1/cases/{case_id}/referrals/{second['id']}/accept", json={}, headers=cw)).status_code == 200
    r = await c.post(f"/v1/cases/{case_id}/referrals/{second['id']}/complete", json={"successful": True}, headers=cw)
    assert r.status_code == 200 and r.json()["status"] == "done"

    r = await c.post(f"/v1/cases/{case_id}/consents", json={"kind": "partner_sharing", "granted": False, "given_by": "survivor"}, headers=cw)
    assert r.status_code == 201
    listed = {x["id"]: x for x in (await c.get(f"/v1/cases/{case_id}/referrals", headers=cw)).json()}
    assert listed[first["id"]]["status"] == "revoked" and "withdrawn" in listed[first["id"]]["reason"]
    assert listed[second["id"]]["status"] == "done"  # finished referrals stay as they were
    history = (await c.get(f"/v1/cases/{case_id}/consents", headers=cw)).json()
    assert [(h["kind"], h["granted"]) for h in history][-1] == ("partner_sharing", False)
    assert (await c.get(f"/v1/cases/{case_id}", headers=cw)).json()["consents"]["partner_sharing"]["granted"] is False


async def test_referral_states_need_their_reasons(shelter_api):
    c = shelter_api
    team = await new_team(c)
    cw = team.caseworker.h
    case_id = await case_in(c, team, "assessment")
    referral = {"partner_kind": "police", "partner_name": "Polrestabes Surabaya", "purpose": "Report the assault."}

    async def new():
        return (await c.post(f"/v1/cases/{case_id}/referrals", json=referral, headers=cw)).json()["id"]

    def act(rid, action, body):
        return c.post(f"/v1/cases/{case_id}/referrals/{rid}/{action}", json=body, headers=cw)

    rid = await new()
    assert (await act(rid, "reject", {})).json()["errors"][0]["rule"] == "referral.reason"
    assert (await act(rid, "reject", {"reason": "Outside their jurisdiction."})).json()["status"] == "rejected"
    assert (await act(rid, "accept", {})).status_code == 409  # rejected is final
    rid = await new()
    assert (await act(rid, "complete", {"successful": True})).status_code == 409  # not accepted yet
    assert (await act(rid, "accept", {"version": 1})).json()["version"] == 2
    assert (await act(rid, "complete", {"version": 1, "successful": True})).status_code == 409  # stale
    assert (await act(rid, "complete", {})).json()["errors"][0]["rule"] == "referral.successful"
    assert (await act(rid, "complete", {"successful": False})).json()["errors"][0]["rule"] == "referral.reason"
    r = await act(rid, "complete", {"successful": False, "reason": "The survivor withdrew the report."})
    assert r.json()["status"] == "done"
    rid = await new()
    assert (await act(rid, "revoke", {"reason": "Survivor changed her mind."})).json()["status"] == "revoked"
    assert (await act(uuid.uuid4(), "accept", {})).status_code == 404


async def test_transfers_keep_the_history_and_move_access(shelter_api):
    c = shelter_api
    team, other = await new_team(c), await new_team(c)
    case_id = await case_in(c, team, "assessment")
    r = await c.post(f"/v1/cases/{case_id}/transfer", json={"caseworker_id": team.colleague.user, "reason": "Leave"}, headers=team.caseworker.h)
    assert r.status_code == 403
    r = await c.post(f"/v1/cases/{case_id}/transfer", json={"caseworker_id": team.colleague.user, "reason": "Caseworker on leave"},
                     headers=team.supervisor.h)
    assert r.status_code == 200 and r.json()["caseworker_id"] == team.colleague.user
    assert (await c.get(f"/v1/cases/{case_id}", headers=team.caseworker.h)).status_code == 404  # the previous owner lost access
    assert (await c.get(f"/v1/cases/{case_id}", headers=team.colleague.h)).status_code == 200

    # To another shelter: refused while she holds a bed here, and only to that shelter's caseworkers.
    await c.post(f"/v1/cases/{case_id}/plan", json={"goals": "x", "planned_services": ["safe_housing"]}, headers=team.colleague.h)
    await c.post(f"/v1/cases/{case_id}/plan/approve", json={}, headers=team.supervisor.h)
    assert (await c.post(f"/v1/cases/{case_id}/admission", headers=team.colleague.h)).status_code == 201
    move = {"caseworker_id": other.caseworker.user, "shelter_id": other.id, "reason": "Safer: the perpetrator found this shelter"}
    r = await c.post(f"/v1/cases/{case_id}/transfer", json=move, headers=team.supervisor.h)
    assert r.status_code == 409 and r.json()["errors"][0]["rule"] == "case.admitted"
    assert (await c.post(f"/v1/cases/{case_id}/discharge", json={}, headers=team.colleague.h)).status_code == 200
    r = await c.post(f"/v1/cases/{case_id}/transfer", json=move | {"caseworker_id": team.caseworker.user}, headers=team.supervisor.h)
    assert r.status_code == 422 and r.json()["errors"][0]["rule"] == "case.caseworker"
    assert (await c.post(f"/v1/cases/{case_id}/transfer", json=move, headers=team.supervisor.h)).status_code == 200

    assert (await c.get(f"/v1/cases/{case_id}", headers=team.supervisor.h)).status_code == 404
    assert (await c.get(f"/v1/cases/{case_id}", headers=other.supervisor.h)).status_code == 200
    history = (await c.get(f"/v1/cases/{case_id}/history", headers=other.caseworker.h)).json()
    assert [(h["shelter_id"], h["caseworker_id"], h["ended_at"] is None) for h in history] == [
        (team.id, team.caseworker.user, False), (team.id, team.colleague.user, False), (other.id, other.caseworker.user, True)]
    assert history[2]["reason"].startswith("Safer")
    events = await events_of(c, case_id)
    transferred = [p for t, p in events if t == "transferred.v1"]
    assert [(p["from_shelter_id"], p["shelter_id"]) for p in transferred] == [(team.id, team.id), (team.id, other.id)]


async def test_staff_holding_open_cases_cannot_leave_the_shelter(shelter_api):
    from shelter_testkit import ADMIN

    team, other = await new_team(shelter_api), await new_team(shelter_api)
    await open_case(shelter_api, team)
    r = await shelter_api.patch(f"/v1/staff/{team.caseworker.user}", json={"version": 1, "shelter_id": other.id}, headers=ADMIN)
    assert r.status_code == 409 and r.json()["errors"][0]["rule"] == "staff.open_cases"
    spare = await new_member(shelter_api, team.id, "caseworker")
    r = await shelter_api.patch(f"/v1/staff/{spare.user}", json={"version": 1, "shelter_id": other.id}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["shelter_id"] == other.id


async def test_intake_is_idempotent_and_stores_no_survivor_data_with_the_key(shelter_api):
    team = await new_team(shelter_api)
    headers = team.caseworker.h | {"Idempotency-Key": f"intake-{uuid.uuid4()}"}
    body = case_body()
    first = await shelter_api.post("/v1/cases", json=body, headers=headers)
    again = await shelter_api.post("/v1/cases", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"] and again.headers.get("idempotent-replayed") == "true"
    other = await shelter_api.post("/v1/cases", json=case_body(name="Someone Else"), headers=headers)
    assert other.status_code == 422
    stored = await rows(shelter_api, "SELECT response_body::text FROM idempotency_keys WHERE key = :k", k=headers["Idempotency-Key"])
    assert not any(s in stored[0][0] for s in SECRETS)


async def test_stale_version_is_a_conflict(shelter_api):
    team = await new_team(shelter_api)
    case = await open_case(shelter_api, team)
    url, cw = f"/v1/cases/{case['id']}", team.caseworker.h
    r = await shelter_api.patch(url, json={"version": 1, "survivor": {"phone": "0812-9999-0000"}}, headers=cw)
    assert r.status_code == 200 and r.json()["version"] == 2
    assert (await shelter_api.patch(url, json={"version": 1, "survivor": {"notes": "x"}}, headers=cw)).status_code == 409
    assert (await shelter_api.get(url, headers=cw)).json()["survivor"]["phone"] == "0812-9999-0000"
