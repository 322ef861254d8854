"""Issue 12 on the shelter API, against real PostgreSQL: four-eyes rules hold whatever the
case of a user id; every route that changes something answers a retry (same
``Idempotency-Key``) with its first answer; fields carry real bounds, and bad input is a 422
naming the field, never a server error or an undocumented status."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from shelter_testkit import ADMIN, ANALYST, LOW_RISK, Member, case_body, case_in, new_member, new_shelter, new_team, open_case, staff_headers, unique

pytestmark = pytest.mark.stack


def fields(response) -> set[str]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return {e["field"] for e in response.json().get("errors", [])}


def cursor_of(values) -> str:
    raw = values if isinstance(values, str) else json.dumps(values)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


async def sql(client, statement: str, **params):
    async with client.app.state.session_factory() as s, s.begin():
        await s.execute(text(statement), params)


# -- four-eyes, whatever the case ----------------------------------------------------------------


async def test_staff_ids_are_one_person_in_any_case(shelter_api):
    c = shelter_api
    team = await new_team(c)
    user = unique("QA.Prep")
    r = await c.post("/v1/staff", headers=ADMIN, json={"user_id": user, "name": "Prep", "role": "supervisor", "shelter_id": team.id})
    assert r.status_code == 201 and r.json()["user_id"] == user.casefold()
    # A second record for the same id in another case would be a second person: refused.
    r = await c.post("/v1/staff", headers=ADMIN, json={"user_id": user.upper(), "name": "PREP", "role": "supervisor", "shelter_id": team.id})
    assert r.status_code == 409 and r.json()["errors"][0]["rule"] == "staff.unique"
    with pytest.raises(IntegrityError):
        await sql(c, "INSERT INTO staff (user_id, name, role, shelter_id) VALUES (:u, 'x', 'supervisor', CAST(:s AS uuid))", u=user.upper(), s=team.id)
    # The token may name the user in any case; the records name the staff member's own id.
    case_id = await case_in(c, team, "assessment")
    plan = {"goals": "Counselling.", "planned_services": ["psychosocial"]}
    r = await c.post(f"/v1/cases/{case_id}/plan", json=plan, headers=staff_headers(user.upper(), "supervisor"))
    assert r.status_code == 201, r.text
    for spelling in (user.casefold(), user.upper(), user.swapcase()):
        r = await c.post(f"/v1/cases/{case_id}/plan/approve", json={}, headers=staff_headers(spelling, "supervisor"))
        assert r.status_code == 422 and r.json()["errors"][0]["rule"] == "plan.four_eyes", (spelling, r.text)
    plans = (await c.get(f"/v1/cases/{case_id}/plans", headers=team.supervisor.h)).json()
    assert plans[0]["submitted_by"] == user.casefold()
    assert (await c.post(f"/v1/cases/{case_id}/plan/approve", json={}, headers=team.supervisor.h)).status_code == 200


async def test_a_legacy_mixed_case_staff_record_cannot_decide_its_own_closure(shelter_api):
    c = shelter_api
    team = await new_team(c)
    legacy = unique("Legacy.Sup")  # written before ids were folded
    await sql(c, "INSERT INTO staff (user_id, name, role, shelter_id) VALUES (:u, 'Legacy', 'supervisor', CAST(:s AS uuid))", u=legacy, s=team.id)
    case_id = await case_in(c, team, "in_service")
    r = await c.post(f"/v1/cases/{case_id}/closure", json={"reason": "reintegrated"}, headers=staff_headers(legacy.lower(), "supervisor"))
    assert r.status_code == 200, r.text
    r = await c.post(f"/v1/cases/{case_id}/closure/approve", headers=staff_headers(legacy.upper(), "supervisor"))
    assert r.status_code == 422 and r.json()["errors"][0]["rule"] == "closure.four_eyes", r.text
    assert (await c.post(f"/v1/cases/{case_id}/closure/approve", headers=team.supervisor2.h)).status_code == 200


async def test_caseworkers_are_named_in_any_case_and_kept_as_registered(shelter_api):
    c = shelter_api
    team = await new_team(c)
    r = await c.post("/v1/cases", json=case_body() | {"caseworker_id": team.colleague.user.upper()}, headers=team.supervisor.h)
    assert r.status_code == 201 and r.json()["caseworker_id"] == team.colleague.user
    # A caseworker naming themself in another case opens the case for themself.
    r = await c.post("/v1/cases", json=case_body() | {"caseworker_id": team.caseworker.user.upper()}, headers=team.caseworker.h)
    assert r.status_code == 201 and r.json()["caseworker_id"] == team.caseworker.user
    case_id = r.json()["id"]
    move = {"caseworker_id": team.caseworker.user.upper(), "reason": "same person"}
    assert (await c.post(f"/v1/cases/{case_id}/transfer", json=move, headers=team.supervisor.h)).status_code == 409
    r = await c.post(f"/v1/cases/{case_id}/transfer", json={"caseworker_id": team.colleague.user.upper(), "reason": "leave"}, headers=team.supervisor.h)
    assert r.status_code == 200 and r.json()["caseworker_id"] == team.colleague.user
    assert (await c.get(f"/v1/cases/{case_id}", headers=staff_headers(team.colleague.user.upper(), "caseworker"))).status_code == 200
    r = await c.patch(f"/v1/staff/{team.supervisor2.user.upper()}", json={"version": 1, "name": "Renamed"}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["user_id"] == team.supervisor2.user


# -- retries: the first answer again --------------------------------------------------------------


async def s_shelter_patch(c, team):
    return "PATCH", f"/v1/shelters/{team.id}", {"version": 1, "capacity": 60}, ADMIN, 200


async def s_staff_create(c, team):
    return "POST", "/v1/staff", {"user_id": unique("cw"), "name": "New", "role": "caseworker", "shelter_id": team.id}, ADMIN, 201


async def s_staff_patch(c, team):
    spare = await new_member(c, team.id, "caseworker")
    return "PATCH", f"/v1/staff/{spare.user}", {"version": 1, "active": False}, ADMIN, 200


async def s_case_patch(c, team):
    case = await open_case(c, team)
    return "PATCH", f"/v1/cases/{case['id']}", {"version": case["version"], "survivor": {"phone": "0812-3333-4444"}}, team.caseworker.h, 200


async def s_assessment(c, team):
    return "POST", f"/v1/cases/{(await open_case(c, team))['id']}/risk-assessments", {"answers": LOW_RISK}, team.caseworker.h, 201


async def s_plan(c, team):
    case_id = await case_in(c, team, "assessment")
    return "POST", f"/v1/cases/{case_id}/plan", {"goals": "Safety.", "planned_services": ["psychosocial"]}, team.caseworker.h, 201


async def s_plan_approve(c, team):
    return "POST", f"/v1/cases/{await case_in(c, team, 'plan_pending')}/plan/approve", {"note": "ok"}, team.supervisor.h, 200


async def s_plan_return(c, team):
    return "POST", f"/v1/cases/{await case_in(c, team, 'plan_pending')}/plan/return", {"note": "more detail"}, team.supervisor.h, 200


async def s_closure(c, team):
    return "POST", f"/v1/cases/{await case_in(c, team, 'in_service')}/closure", {"reason": "reintegrated"}, team.caseworker.h, 200


async def s_closure_approve(c, team):
    return "POST", f"/v1/cases/{await case_in(c, team, 'closure_pending')}/closure/approve", None, team.supervisor.h, 200


async def s_closure_reject(c, team):
    return "POST", f"/v1/cases/{await case_in(c, team, 'closure_pending')}/closure/reject", None, team.supervisor.h, 200


async def s_reopen(c, team):
    return "POST", f"/v1/cases/{await case_in(c, team, 'closed')}/reopen", {"reason": "new_incident"}, team.supervisor.h, 200


async def s_transfer(c, team):
    # After the transfer the supervisor still sees the case; a caseworker-to-caseworker move.
    case_id = await case_in(c, team, "assessment")
    return "POST", f"/v1/cases/{case_id}/transfer", {"caseworker_id": team.colleague.user, "reason": "on leave"}, team.supervisor.h, 200


async def s_admission(c, team):
    return "POST", f"/v1/cases/{await case_in(c, team, 'in_service')}/admission", None, team.caseworker.h, 201


async def s_discharge(c, team):
    return "POST", f"/v1/cases/{await case_in(c, team, 'admitted')}/discharge", {}, team.caseworker.h, 200


async def s_consent(c, team):
    case = await open_case(c, team)
    return "POST", f"/v1/cases/{case['id']}/consents", {"kind": "partner_sharing", "granted": False, "given_by": "survivor"}, team.caseworker.h, 201


async def s_referral_accept(c, team):
    case_id = await case_in(c, team, "assessment")
    r = await c.post(f"/v1/cases/{case_id}/referrals", headers=team.caseworker.h,
                     json={"partner_kind": "police", "partner_name": "Polrestabes", "purpose": "Report."})
    assert r.status_code == 201, r.text
    return "POST", f"/v1/cases/{case_id}/referrals/{r.json()['id']}/accept", {}, team.caseworker.h, 200


STEPS = [s_shelter_patch, s_staff_create, s_staff_patch, s_case_patch, s_assessment, s_plan, s_plan_approve, s_plan_return, s_closure,
         s_closure_approve, s_closure_reject, s_reopen, s_transfer, s_admission, s_discharge, s_consent, s_referral_accept]


@pytest.mark.parametrize("step", STEPS, ids=[s.__name__.removeprefix("s_") for s in STEPS])
async def test_every_change_answers_a_retry_with_its_first_answer(shelter_api, step):
    team = await new_team(shelter_api)
    method, url, body, headers, status = await step(shelter_api, team)
    keyed = headers | {"Idempotency-Key": f"retry-{uuid.uuid4()}"}
    first = await shelter_api.request(method, url, headers=keyed, json=body)
    again = await shelter_api.request(method, url, headers=keyed, json=body)
    assert first.status_code == status, first.text
    assert again.status_code == status and again.headers.get("Idempotent-Replayed") == "true", again.text
    assert again.json() == first.json()


async def test_a_transfer_out_of_sight_is_still_answered_on_retry(shelter_api):
    # The supervisor moves the case to another shelter and loses sight of it: the retry
    # still gets the first answer, not a 404.
    c = shelter_api
    team, other = await new_team(c), await new_team(c)
    case_id = await case_in(c, team, "assessment")
    keyed = team.supervisor.h | {"Idempotency-Key": f"move-{uuid.uuid4()}"}
    move = {"caseworker_id": other.caseworker.user, "shelter_id": other.id, "reason": "Safer elsewhere"}
    first = await c.post(f"/v1/cases/{case_id}/transfer", json=move, headers=keyed)
    again = await c.post(f"/v1/cases/{case_id}/transfer", json=move, headers=keyed)
    assert first.status_code == again.status_code == 200 and again.json() == first.json(), again.text
    assert (await c.get(f"/v1/cases/{case_id}", headers=team.supervisor.h)).status_code == 404


# -- bounds ------------------------------------------------------------------------------


async def test_fields_have_real_bounds(shelter_api):
    c = shelter_api
    team = await new_team(c)
    case = await open_case(c, team)
    cw = team.caseworker.h
    for body, field in [
        (case_body(birth_date="0001-01-01"), "body.survivor.birth_date"),
        (case_body(nik="３５７８０１５７０５９４０００１"), "body.survivor.nik"),
        (case_body(phone="٠٨١٢٣٤٥٦٧٨٩"), "body.survivor.phone"),
        (case_body() | {"caseworker_id": "a b"}, "body.caseworker_id"),
        (case_body() | {"consents": [{"kind": "services", "granted": True, "given_by": "survivor"}] * 4}, "body.consents"),
        (case_body(name="Sri\u0000Wahyuni"), "body.survivor.name"),
    ]:
        r = await c.post("/v1/cases", json=body, headers=cw)
        assert r.status_code == 422 and fields(r) == {field}, r.text
    for version in (2**31, 3650491404072, 0):
        r = await c.patch(f"/v1/cases/{case['id']}", json={"version": version, "referral_note": "x"}, headers=cw)
        assert r.status_code == 422 and fields(r) == {"body.version"}, r.text
        r = await c.patch(f"/v1/shelters/{team.id}", json={"version": version, "capacity": 10}, headers=ADMIN)
        assert r.status_code == 422 and fields(r) == {"body.version"}, r.text
    r = await c.post(f"/v1/cases/{case['id']}/incidents", headers=cw, json={
        "violence_types": ["physical"], "perpetrator_relationship": "spouse", "occurred_on": "0001-01-01", "regency_code": "35.78"})
    assert r.status_code == 422 and fields(r) == {"body.occurred_on"}, r.text
    r = await c.post(f"/v1/cases/{case['id']}/transfer", json={"caseworker_id": "x" * 101, "reason": "too long"}, headers=team.supervisor.h)
    assert r.status_code == 422 and fields(r) == {"body.caseworker_id"}, r.text


async def test_an_unknown_shelter_in_a_body_is_a_422_naming_it(shelter_api):
    # Was a 404 on POST /v1/staff, a route whose document declares none (no id in its path).
    r = await shelter_api.post("/v1/staff", headers=ADMIN, json={"user_id": unique("cw"), "name": "X", "role": "caseworker", "shelter_id": str(uuid.uuid4())})
    assert r.status_code == 422 and fields(r) == {"shelter_id"}, r.text
    team = await new_team(shelter_api)
    spare = await new_member(shelter_api, team.id, "caseworker")
    r = await shelter_api.patch(f"/v1/staff/{spare.user}", headers=ADMIN, json={"version": 1, "shelter_id": str(uuid.uuid4())})
    assert r.status_code == 422 and fields(r) == {"shelter_id"}, r.text
    r = await shelter_api.patch("/v1/staff/not%20an%20id", headers=ADMIN, json={"version": 1, "name": "x"})
    assert r.status_code == 422 and fields(r) == {"path.user_id"}, r.text


@pytest.mark.parametrize(
    "values",
    [[1, 2], ["2026-01-01T00:00:00+00:00", {"a": 1}], ["2026-01-01T00:00:00", str(uuid.uuid4())],
     ["0001-01-01T00:00:00+05:00", str(uuid.uuid4())], "[" * 3000],
    ids=["ints", "dict", "naive", "year-zero", "deep"],
)
async def test_a_case_list_cursor_of_another_shape_is_a_422(shelter_api, values):
    team = await new_team(shelter_api)
    r = await shelter_api.get("/v1/cases", headers=team.supervisor.h, params={"cursor": cursor_of(values)})
    assert r.status_code == 422 and fields(r) == {"query.cursor"}, r.text


@pytest.mark.parametrize("values", [["x"], [10**30], [-1], [True], [1.5]], ids=["str", "huge", "negative", "bool", "float"])
async def test_an_audit_cursor_of_another_shape_is_a_422(shelter_api, values):
    team = await new_team(shelter_api)
    r = await shelter_api.get(f"/v1/shelters/{team.id}/audit", headers=team.supervisor.h, params={"cursor": cursor_of(values)})
    assert r.status_code == 422 and fields(r) == {"query.cursor"}, r.text


async def test_query_bounds(shelter_api):
    for params, field in [({"from": "0001-01-01"}, "query.from"), ({"to": "9999-12-31"}, "query.to")]:
        r = await shelter_api.get("/v1/statistics/cases", headers=ANALYST, params=params)
        assert r.status_code == 422 and fields(r) == {field}, r.text
    r = await shelter_api.get("/v1/shelters", headers=ADMIN, params={"kind": "elderly"})
    assert r.status_code == 422 and fields(r) == {"query.kind"}, r.text
    r = await shelter_api.get("/v1/shelters", headers=ADMIN, params={"regency_code": "35.78'--"})
    assert r.status_code == 422 and fields(r) == {"query.regency_code"}, r.text


async def test_one_members_key_never_replays_anothers_answer(shelter_api):
    # All staff act through one client (the shelter app): keys are kept per staff member.
    c = shelter_api
    team = await new_team(c)
    case_id = (await open_case(c, team))["id"]
    key = {"Idempotency-Key": f"shared-{uuid.uuid4()}"}
    url, body = f"/v1/cases/{case_id}/risk-assessments", {"answers": LOW_RISK}
    first = await c.post(url, json=body, headers=team.supervisor.h | key)
    other = await c.post(url, json=body, headers=team.supervisor2.h | key)
    assert first.status_code == other.status_code == 201, other.text
    assert other.headers.get("Idempotent-Replayed") is None and other.json()["id"] != first.json()["id"]
    # The same member in another case of the id is the same member: a replay.
    again = await c.post(url, json=body, headers=staff_headers(team.supervisor.user.upper(), "supervisor") | key)
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json() == first.json()
