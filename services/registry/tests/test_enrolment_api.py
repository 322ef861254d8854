"""Programmes and enrolment through the registry API, against real PostgreSQL and Kafka:
the seeded catalogue and its audited edits, the lifecycle with the four-eyes rule, every
failed eligibility rule listed, region rules, the database settling concurrent proposals,
deaths ending enrolments, and the events in the outbox."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, text

from pilar_kernel.nik import make_nik
from pilar_kernel.tables import outbox
from pilar_kernel.testing import eventually
from registry_testkit import KEYS

pytestmark = pytest.mark.stack

E = "id.go.jatimprov.dinsos.registry.enrolment."
SIDOARJO_VILLAGE = "35.15.14.2001"  # Wilayut, Sukodono, Kabupaten Sidoarjo

OFFICE_SCOPES = ("registry:read", "registry:write", "registry:verify")
OFFICER_A = KEYS.headers(*OFFICE_SCOPES, region="35.15", subject="dinsos-sidoarjo", user="officer-a")
OFFICER_B = KEYS.headers(*OFFICE_SCOPES, region="35.15", subject="dinsos-sidoarjo", user="officer-b")
MOJOKERTO = KEYS.headers(*OFFICE_SCOPES, "registry:approve", region="35.16", subject="dinsos-mojokerto", user="officer-m")
APPROVER = KEYS.headers("registry:read", "registry:approve", subject="dinsos-jatim", user="kabid-linjamsos")
ADMIN = KEYS.headers("registry:read", "registry:programme-admin", subject="dinsos-jatim", user="admin-1")

_serial = itertools.count(1)
_kk = itertools.count(1)


def new_kk() -> str:
    return f"351514{next(_kk):010d}"


async def register(client, *, born=date(1950, 3, 14), sex="F", kk=None, relationship="head", **facts) -> dict:
    body = {
        "nik": make_nik("35.15.14", born, sex, next(_serial)),
        "name": "Siti Aminah",
        "birth_date": born.isoformat(),
        "sex": sex,
        "village_code": SIDOARJO_VILLAGE,
        "kk_number": kk or new_kk(),
        "relationship": relationship,
        "decile": 2,
        "decile_date": "2026-01-01",
    }
    body.update(facts)
    if body.get("provisional"):
        del body["nik"]
    r = await client.post("/v1/persons", json=body, headers=OFFICER_A)
    assert r.status_code == 201, r.text
    return r.json()


async def propose(client, person_id, code, headers=OFFICER_A, **kw):
    return await client.post("/v1/enrolments", json={"person_id": str(person_id), "programme_code": code}, headers=headers, **kw)


async def enrol(client, person_id, code, *, approve=True) -> dict:
    """Propose (officer A), verify (officer B) and approve (province): the happy path."""
    r = await propose(client, person_id, code)
    assert r.status_code == 201, r.text
    eid = r.json()["id"]
    r = await client.post(f"/v1/enrolments/{eid}/verify", headers=OFFICER_B)
    assert r.status_code == 200, r.text
    if approve:
        r = await client.post(f"/v1/enrolments/{eid}/approve", headers=APPROVER)
        assert r.status_code == 200, r.text
    return r.json()


async def event_types(client, enrolment_id) -> list[str]:
    async with client.app.state.session_factory() as s:
        rows = await s.execute(select(outbox.c.ce_type).where(outbox.c.message_key == str(enrolment_id)).order_by(outbox.c.id))
        return [t.removeprefix(E) for t in rows.scalars()]


def assert_problem(r, status, rule=None, field=None):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    if rule or field:
        assert any((rule is None or e.get("rule") == rule) and (field is None or e["field"] == field) for e in body["errors"]), body
    return body


# -- catalogue -------------------------------------------------------------------------------


async def test_the_catalogue_is_seeded_with_the_domain_programmes(registry):
    r = await registry.get("/v1/programmes", headers=OFFICER_A)
    assert r.status_code == 200
    programmes = {p["code"]: p for p in r.json()}
    assert {"PKH_PLUS", "ASPD", "PKE", "BLT_DBHCHT", "KUBE"} <= set(programmes)
    assert {c for c, p in programmes.items() if p["provincial"]} >= {"PKH_PLUS", "ASPD", "BLT_DBHCHT"}
    aspd = programmes["ASPD"]
    assert aspd["amount_per_stage"] == 900_000
    assert (aspd["rules"]["min_age_months"], aspd["rules"]["max_age"], aspd["rules"]["max_decile"]) == (6, 60, 5)
    assert set(aspd["rules"]["disability_severities"]) == {"severe", "bedridden"}
    assert programmes["PKH_PLUS"]["rules"]["min_age"] == 70 and programmes["PKH_PLUS"]["rules"]["one_per_household"]
    assert programmes["PKE"]["amount_per_stage"] == 1_500_000 and programmes["BLT_DBHCHT"]["amount_per_stage"] == 1_325_900
    audit = (await registry.get("/v1/programmes/ASPD/audit", headers=OFFICER_A)).json()
    assert [a["action"] for a in audit] == ["seeded"]
    assert_problem(await registry.get("/v1/programmes/NOPE", headers=OFFICER_A), 404)


async def test_programme_edits_are_versioned_and_audited_and_the_audit_is_append_only(registry):
    kube = (await registry.get("/v1/programmes/KUBE", headers=ADMIN)).json()
    change = {k: kube[k] for k in ("name", "description", "rules", "provincial", "active")}
    r = await registry.put("/v1/programmes/KUBE", json={**change, "amount_per_stage": 2_000_000, "version": kube["version"]}, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert (r.json()["amount_per_stage"], r.json()["version"]) == (2_000_000, kube["version"] + 1)

    stale = await registry.put("/v1/programmes/KUBE", json={**change, "amount_per_stage": 1, "version": kube["version"]}, headers=ADMIN)
    assert_problem(stale, 409, field="version")

    audit = (await registry.get("/v1/programmes/KUBE/audit", headers=ADMIN)).json()
    assert [a["action"] for a in audit] == ["seeded", "updated"]
    assert (audit[1]["before"]["amount_per_stage"], audit[1]["after"]["amount_per_stage"]) == (kube["amount_per_stage"], 2_000_000)
    assert (audit[1]["subject"], audit[1]["acting_user"]) == ("dinsos-jatim", "admin-1")

    # Only the programme-admin scope, and never a regency office's token.
    assert_problem(await registry.put("/v1/programmes/KUBE", json={**change, "version": 2}, headers=APPROVER), 403)
    regional_admin = KEYS.headers("registry:read", "registry:programme-admin", region="35.15", subject="dinsos-sidoarjo")
    assert_problem(await registry.put("/v1/programmes/KUBE", json={**change, "version": 2}, headers=regional_admin), 403)
    # Rules are validated as data and name the field.
    bad = {**change, "rules": {**change["rules"], "ppks_any": ["nonsense"]}, "version": 2}
    body = assert_problem(await registry.put("/v1/programmes/KUBE", json=bad, headers=ADMIN), 422)
    assert body["errors"][0]["field"].startswith("body.rules.ppks_any")

    async with registry.app.state.session_factory() as s:
        with pytest.raises(Exception, match="append-only"):
            await s.execute(text("UPDATE programme_audit SET subject = 'someone-else' WHERE programme_code = 'KUBE'"))
        await s.rollback()
        with pytest.raises(Exception, match="append-only"):
            await s.execute(text("DELETE FROM programme_audit"))
        await s.rollback()


# -- lifecycle ---------------------------------------------------------------------------------


async def test_propose_verify_approve_with_events_in_the_outbox(registry):
    person = await register(registry)  # 76 years old, decile 2: PKH Plus
    r = await propose(registry, person["id"], "PKH_PLUS")
    assert r.status_code == 201, r.text
    enrolment = r.json()
    assert (enrolment["status"], enrolment["proposed_by"], enrolment["regency_code"]) == ("proposed", "officer-a", "35.15")
    assert enrolment["household_id"] == person["household"]["household_id"]
    assert set(enrolment["allowed_actions"]) == {"verify", "reject", "end"}
    eid = enrolment["id"]

    approve_too_early = await registry.post(f"/v1/enrolments/{eid}/approve", headers=APPROVER)
    assert_problem(approve_too_early, 409, field="status")

    r = await registry.post(f"/v1/enrolments/{eid}/verify", json={"version": enrolment["version"]}, headers=OFFICER_B)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["verified_by"]) == ("verified", "officer-b")

    r = await registry.post(f"/v1/enrolments/{eid}/approve", json={"active_from": (date.today() + timedelta(days=14)).isoformat()}, headers=APPROVER)
    assert r.status_code == 200, r.text
    approved = r.json()
    assert (approved["status"], approved["decided_by"]) == ("active", "kabid-linjamsos")
    assert approved["active_from"] == (date.today() + timedelta(days=14)).isoformat()

    assert await event_types(registry, eid) == ["proposed.v1", "approved.v1"]

    async def published():
        async with registry.app.state.session_factory() as s:
            return (await s.execute(
                select(func.count()).select_from(outbox).where(outbox.c.message_key == eid, outbox.c.published_at.is_not(None))
            )).scalar_one() == 2

    await eventually(published, timeout=30)  # the relay delivered both to Kafka

    got = (await registry.get(f"/v1/enrolments/{eid}", headers=OFFICER_A)).json()
    assert got == approved
    listed = (await registry.get(f"/v1/persons/{person['id']}/enrolments", headers=OFFICER_A)).json()
    assert [e["id"] for e in listed["items"]] == [eid]


async def test_an_ineligible_proposal_lists_every_failed_rule_and_writes_nothing(registry):
    person = await register(registry, born=date(1961, 1, 2), decile=8)  # 65, decile 8, no disability
    r = await propose(registry, person["id"], "ASPD")
    body = assert_problem(r, 422)
    assert body["type"].endswith("/not-eligible")
    failed = {(e["field"], e["rule"]) for e in body["errors"]}
    assert failed == {
        ("birth_date", "eligibility.max_age"),
        ("decile", "eligibility.max_decile"),
        ("disability_severity", "eligibility.disability_severity"),
    }
    assert (await registry.get(f"/v1/persons/{person['id']}/enrolments", headers=OFFICER_A)).json()["items"] == []

    worker = await register(registry, born=date(1990, 5, 5), occupation="petani")
    body = assert_problem(await propose(registry, worker["id"], "BLT_DBHCHT"), 422)
    assert {(e["field"], e["rule"]) for e in body["errors"]} == {
        ("employer", "eligibility.requires_occupation"),
        ("occupation", "eligibility.occupation_keywords"),
    }
    assert_problem(await propose(registry, worker["id"], "NOT_A_PROGRAMME"), 422, field="programme_code", rule="programme.unknown")


async def test_four_eyes_the_proposer_cannot_verify(registry):
    person = await register(registry)
    eid = (await propose(registry, person["id"], "PKH_PLUS")).json()["id"]
    body = assert_problem(await registry.post(f"/v1/enrolments/{eid}/verify", headers=OFFICER_A), 403, rule="enrolment.four_eyes", field="user")
    assert "four-eyes" in body["detail"]
    assert (await registry.get(f"/v1/enrolments/{eid}", headers=OFFICER_A)).json()["status"] == "proposed"

    # Without a user claim the client itself is the actor: one client cannot do both steps.
    client_only = KEYS.headers(*OFFICE_SCOPES, region="35.15", subject="dinsos-sidoarjo-app")
    other = await register(registry)
    eid2 = (await propose(registry, other["id"], "PKH_PLUS", headers=client_only)).json()["id"]
    assert_problem(await registry.post(f"/v1/enrolments/{eid2}/verify", headers=client_only), 403)
    assert (await registry.post(f"/v1/enrolments/{eid2}/verify", headers=OFFICER_B)).status_code == 200
    # Missing scope: a plain office token cannot approve.
    assert_problem(await registry.post(f"/v1/enrolments/{eid2}/approve", headers=OFFICER_A), 403)


async def test_four_eyes_three_different_people_propose_verify_and_approve(registry):
    """Issue 12: the proposer approved once someone else had verified; and user ids differing
    only in case counted as two people."""
    # A regency office whose officers hold every step's scope: only the rule stops them.
    def office(user: str) -> dict:
        return KEYS.headers(*OFFICE_SCOPES, "registry:approve", region="35.15", subject="dinsos-sidoarjo", user=user)

    person = await register(registry)
    eid = (await propose(registry, person["id"], "PKH_PLUS", headers=office("Officer-A"))).json()["id"]
    # The proposer under another spelling of the same id cannot verify.
    assert_problem(await registry.post(f"/v1/enrolments/{eid}/verify", headers=office("OFFICER-A")), 403, rule="enrolment.four_eyes")
    assert (await registry.post(f"/v1/enrolments/{eid}/verify", headers=office("officer-b"))).status_code == 200
    # Neither the proposer nor the verifier (in any case) can approve.
    for user in ("officer-a", "OFFICER-A", "Officer-B"):
        body = assert_problem(await registry.post(f"/v1/enrolments/{eid}/approve", headers=office(user)), 403,
                              rule="enrolment.four_eyes", field="user")
        assert "four-eyes" in body["detail"]
    current = (await registry.get(f"/v1/enrolments/{eid}", headers=OFFICER_A)).json()
    assert current["status"] == "verified" and current["decided_by"] is None
    assert "enrolment.approved.v1" not in await event_types(registry, eid)
    # A third person approves; who did what is recorded case-folded.
    r = await registry.post(f"/v1/enrolments/{eid}/approve", headers=office("Officer-C"))
    assert r.status_code == 200, r.text
    assert (r.json()["proposed_by"], r.json()["verified_by"], r.json()["decided_by"]) == ("officer-a", "officer-b", "officer-c")

    # Without a user claim the client itself is the actor: a client that proposed cannot approve.
    app = KEYS.headers(*OFFICE_SCOPES, "registry:approve", region="35.15", subject="dinsos-sidoarjo-app")
    other = await register(registry)
    eid2 = (await propose(registry, other["id"], "PKH_PLUS", headers=app)).json()["id"]
    assert (await registry.post(f"/v1/enrolments/{eid2}/verify", headers=office("officer-b"))).status_code == 200
    assert_problem(await registry.post(f"/v1/enrolments/{eid2}/approve", headers=app), 403, rule="enrolment.four_eyes")


async def test_a_regency_office_works_only_in_its_own_region(registry):
    person = await register(registry)  # lives in Sidoarjo (35.15)
    assert_problem(await propose(registry, person["id"], "PKH_PLUS", headers=MOJOKERTO), 404)
    eid = (await propose(registry, person["id"], "PKH_PLUS")).json()["id"]
    assert_problem(await registry.get(f"/v1/enrolments/{eid}", headers=MOJOKERTO), 404)
    assert_problem(await registry.post(f"/v1/enrolments/{eid}/verify", headers=MOJOKERTO), 404)
    assert_problem(await registry.get(f"/v1/persons/{person['id']}/enrolments", headers=MOJOKERTO), 404)
    theirs = (await registry.get("/v1/enrolments", headers=MOJOKERTO)).json()["items"]
    assert all(e["regency_code"] == "35.16" for e in theirs)
    assert (await registry.get("/v1/enrolments?regency_code=35.15", headers=MOJOKERTO)).json()["items"] == []
    ours = (await registry.get(f"/v1/enrolments?person_id={person['id']}", headers=OFFICER_A)).json()["items"]
    assert [e["id"] for e in ours] == [eid]


async def test_concurrent_double_proposals_end_with_one_open_enrolment(registry):
    for _ in range(3):
        person = await register(registry)
        responses = await asyncio.gather(*(propose(registry, person["id"], "PKH_PLUS", headers=h) for h in (OFFICER_A, OFFICER_B)))
        assert sorted(r.status_code for r in responses) == [201, 409], [r.text for r in responses]
        loser = next(r for r in responses if r.status_code == 409)
        assert_problem(loser, 409, field="programme_code", rule="enrolment.unique_open")
        async with registry.app.state.session_factory() as s:
            n = (await s.execute(text("SELECT count(*) FROM enrolment WHERE person_id = :p AND status IN ('proposed','verified','active','suspended')")
                                 .bindparams(p=uuid.UUID(person["id"])))).scalar_one()
        assert n == 1


async def test_the_database_refuses_a_second_open_enrolment(registry):
    person = await register(registry)
    await propose(registry, person["id"], "KUBE")
    async with registry.app.state.session_factory() as s:
        with pytest.raises(Exception, match="ux_enrolment_open"):
            await s.execute(text(
                "INSERT INTO enrolment (id, person_id, programme_code, status, proposed_by, version) "
                "VALUES (gen_random_uuid(), :p, 'KUBE', 'verified', 'sneaky', 1)"
            ).bindparams(p=uuid.UUID(person["id"])))
        await s.rollback()


async def test_idempotent_proposal(registry):
    person = await register(registry)
    key = {"Idempotency-Key": f"propose-{person['id']}"}
    first = await propose(registry, person["id"], "PKH_PLUS", headers={**OFFICER_A, **key})
    again = await propose(registry, person["id"], "PKH_PLUS", headers={**OFFICER_A, **key})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and again.headers.get("Idempotent-Replayed") == "true"
    other_body = await propose(registry, person["id"], "KUBE", headers={**OFFICER_A, **key})
    assert_problem(other_body, 422)


async def test_retried_transitions_with_an_idempotency_key_get_the_first_answer(registry):
    """Issue 12: a retried verify/approve/suspend/resume/end/reject got a 409 instead of the first answer."""
    def keyed(headers: dict, key: str) -> dict:
        return {**headers, "Idempotency-Key": f"{key}-{uuid.uuid4()}"}

    async def twice(path: str, headers: dict, body: dict | None = None):
        first = await registry.post(path, headers=headers, json=body)
        again = await registry.post(path, headers=headers, json=body)
        assert (first.status_code, again.status_code) == (200, 200), (first.text, again.text)
        assert again.json() == first.json() and again.headers.get("Idempotent-Replayed") == "true"
        assert "Idempotent-Replayed" not in first.headers
        return first.json()

    person = await register(registry, decile=1)
    eid = (await propose(registry, person["id"], "PKH_PLUS")).json()["id"]
    assert (await twice(f"/v1/enrolments/{eid}/verify", keyed(OFFICER_B, "verify")))["status"] == "verified"
    approval = keyed(APPROVER, "approve")
    assert (await twice(f"/v1/enrolments/{eid}/approve", approval, {"version": 2}))["status"] == "active"
    # The same key with another body is refused, naming the key's misuse; nothing changes.
    other = await registry.post(f"/v1/enrolments/{eid}/approve", headers=approval, json={"version": 3})
    assert_problem(other, 422)
    assert (await twice(f"/v1/enrolments/{eid}/suspend", keyed(OFFICER_A, "suspend"), {"reason": "data check"}))["status"] == "suspended"
    assert (await twice(f"/v1/enrolments/{eid}/resume", keyed(APPROVER, "resume")))["status"] == "active"
    ended = await twice(f"/v1/enrolments/{eid}/end", keyed(OFFICER_A, "end"), {"reason": "graduation"})
    assert ended["status"] == "ended" and ended["version"] == 6
    # Each step happened once: one event each.
    assert await event_types(registry, eid) == ["proposed.v1", "approved.v1", "suspended.v1", "resumed.v1", "ended.v1"]
    # Without a key a repeat is still refused by the lifecycle.
    assert_problem(await registry.post(f"/v1/enrolments/{eid}/end", headers=OFFICER_A, json={"reason": "graduation"}), 409)

    other_person = await register(registry)
    eid2 = (await propose(registry, other_person["id"], "KUBE")).json()["id"]
    rejected = await twice(f"/v1/enrolments/{eid2}/reject", keyed(APPROVER, "reject"), {"reason": "not poor"})
    assert rejected["status"] == "rejected"
    assert await event_types(registry, eid2) == ["proposed.v1", "rejected.v1"]


async def test_death_ends_every_open_enrolment(registry):
    person = await register(registry, decile=1)
    active = await enrol(registry, person["id"], "PKH_PLUS")
    proposed = (await propose(registry, person["id"], "PKE")).json()
    r = await registry.post(f"/v1/persons/{person['id']}/death", json={"date_of_death": date.today().isoformat(), "version": person["version"]},
                            headers=OFFICER_A)
    assert r.status_code == 200, r.text
    items = (await registry.get(f"/v1/persons/{person['id']}/enrolments", headers=OFFICER_A)).json()["items"]
    assert {(e["programme_code"], e["status"], e["end_reason"]) for e in items} == {("PKH_PLUS", "ended", "death"), ("PKE", "ended", "death")}
    assert all(e["ended_on"] == date.today().isoformat() for e in items)
    assert await event_types(registry, active["id"]) == ["proposed.v1", "approved.v1", "ended.v1"]
    assert await event_types(registry, proposed["id"]) == ["proposed.v1", "ended.v1"]
    # A deceased person cannot be proposed again.
    assert_problem(await propose(registry, person["id"], "KUBE"), 422, field="status", rule="eligibility.person_status")


async def test_a_merge_moves_open_enrolments_to_the_survivor_or_ends_them(registry):
    survivor = await register(registry, decile=1)
    own_kube = (await propose(registry, survivor["id"], "KUBE")).json()
    duplicate = await register(registry, decile=1, provisional=True, name="Siti Aminah (tanpa KTP)")
    pke = await enrol(registry, duplicate["id"], "PKE")
    dup_kube = (await propose(registry, duplicate["id"], "KUBE")).json()

    r = await registry.post(f"/v1/persons/{duplicate['id']}/merge", json={"into_person_id": survivor["id"], "reason": "NIK found for the same woman"},
                            headers=OFFICER_A)
    assert r.status_code == 200, r.text

    mine = {e["id"]: e for e in (await registry.get(f"/v1/persons/{survivor['id']}/enrolments", headers=OFFICER_A)).json()["items"]}
    assert set(mine) == {own_kube["id"], pke["id"]}
    moved = mine[pke["id"]]
    assert (moved["person_id"], moved["status"], moved["active_from"]) == (survivor["id"], "active", pke["active_from"])
    assert moved["household_id"] == survivor["household"]["household_id"]
    gone = (await registry.get(f"/v1/enrolments/{dup_kube['id']}", headers=OFFICER_A)).json()
    assert (gone["person_id"], gone["status"], gone["end_reason"]) == (duplicate["id"], "ended", "merged")

    assert await event_types(registry, dup_kube["id"]) == ["proposed.v1", "ended.v1"]
    assert await event_types(registry, pke["id"]) == ["proposed.v1", "approved.v1", "approved.v1"]
    async with registry.app.state.session_factory() as s:
        payload = (await s.execute(
            select(outbox.c.payload).where(outbox.c.message_key == pke["id"]).order_by(outbox.c.id.desc()).limit(1)
        )).scalar_one()
    assert json.loads(payload)["person_id"] == survivor["id"]


async def test_mutually_exclusive_programmes_are_refused_both_ways(registry):
    uep = {
        "code": "UEP_GRADUATES",
        "name": "Usaha ekonomi produktif for former beneficiaries",
        "rules": {"max_decile": 3, "exclusive_with": ["PKE"]},
        "amount_per_stage": 2_500_000,
        "provincial": False,
    }
    assert_problem(await registry.post("/v1/programmes", json={**uep, "rules": {"exclusive_with": ["GHOST"]}}, headers=ADMIN), 422,
                   field="rules.exclusive_with")
    r = await registry.post("/v1/programmes", json=uep, headers={**ADMIN, "Idempotency-Key": "create-uep"})
    assert r.status_code == 201, r.text
    assert (await registry.post("/v1/programmes", json=uep, headers={**ADMIN, "Idempotency-Key": "create-uep"})).status_code == 201
    assert_problem(await registry.post("/v1/programmes", json=uep, headers=ADMIN), 409, field="code")
    assert [a["action"] for a in (await registry.get("/v1/programmes/UEP_GRADUATES/audit", headers=ADMIN)).json()] == ["created"]

    holder = await register(registry, decile=1)
    await enrol(registry, holder["id"], "PKE")
    assert_problem(await propose(registry, holder["id"], "UEP_GRADUATES"), 422, field="programme_code", rule="eligibility.exclusive_with")

    other = await register(registry, decile=1)
    await enrol(registry, other["id"], "UEP_GRADUATES")
    assert_problem(await propose(registry, other["id"], "PKE"), 422, field="programme_code", rule="eligibility.exclusive_with")


async def test_eligibility_is_checked_again_at_approval_no_double_provincial_aid(registry):
    worker = await register(registry, born=date(1954, 8, 1), occupation="buruh linting", employer="PR Kretek Jaya (pabrik rokok)")
    pkh = await enrol(registry, worker["id"], "PKH_PLUS", approve=False)
    blt = await enrol(registry, worker["id"], "BLT_DBHCHT", approve=False)  # both proposable: neither is held yet
    assert (await registry.post(f"/v1/enrolments/{pkh['id']}/approve", headers=APPROVER)).status_code == 200
    r = await registry.post(f"/v1/enrolments/{blt['id']}/approve", headers=APPROVER)
    assert_problem(r, 422, field="programme_code", rule="eligibility.no_double_provincial_aid")
    assert (await registry.get(f"/v1/enrolments/{blt['id']}", headers=OFFICER_A)).json()["status"] == "verified"
    r = await registry.post(f"/v1/enrolments/{blt['id']}/reject", json={"reason": "already receives PKH Plus"}, headers=APPROVER)
    assert r.status_code == 200 and r.json()["status"] == "rejected" and r.json()["reason"] == "already receives PKH Plus"
    assert await event_types(registry, blt["id"]) == ["proposed.v1", "rejected.v1"]


async def test_one_per_family_card(registry):
    kk = new_kk()
    grandma = await register(registry, kk=kk, relationship="head")
    grandpa = await register(registry, kk=kk, relationship="husband", sex="M", born=date(1948, 6, 1))
    first = await enrol(registry, grandma["id"], "PKH_PLUS", approve=False)
    second = await enrol(registry, grandpa["id"], "PKH_PLUS", approve=False)
    results = await asyncio.gather(*(registry.post(f"/v1/enrolments/{e['id']}/approve", headers=APPROVER) for e in (first, second)))
    assert sorted(r.status_code for r in results) == [200, 422]
    assert_problem(next(r for r in results if r.status_code == 422), 422, rule="eligibility.one_per_household")


async def test_reject_suspend_resume_end(registry):
    person = await register(registry)
    proposed = (await propose(registry, person["id"], "PKH_PLUS")).json()
    assert_problem(await registry.post(f"/v1/enrolments/{proposed['id']}/reject", json={}, headers=APPROVER), 422, field="body.reason")
    r = await registry.post(f"/v1/enrolments/{proposed['id']}/reject", json={"reason": "not found at the address"}, headers=APPROVER)
    assert r.json()["status"] == "rejected"
    assert_problem(await registry.post(f"/v1/enrolments/{proposed['id']}/verify", headers=OFFICER_B), 409, field="status")

    active = await enrol(registry, person["id"], "PKH_PLUS")  # a closed enrolment does not block a new one
    eid = active["id"]
    r = await registry.post(f"/v1/enrolments/{eid}/suspend", json={"reason": "bank account closed", "version": active["version"]}, headers=OFFICER_A)
    assert (r.json()["status"], r.json()["suspend_reason"]) == ("suspended", "bank account closed")
    assert_problem(await registry.post(f"/v1/enrolments/{eid}/resume", headers=OFFICER_A), 403)  # resuming payment needs approval
    stale = await registry.post(f"/v1/enrolments/{eid}/resume", json={"version": active["version"]}, headers=APPROVER)
    assert_problem(stale, 409, field="version")
    r = await registry.post(f"/v1/enrolments/{eid}/resume", headers=APPROVER)
    assert (r.json()["status"], r.json()["suspend_reason"]) == ("active", None)

    assert_problem(await registry.post(f"/v1/enrolments/{eid}/end", json={"reason": "bored"}, headers=OFFICER_A), 422, field="body.reason")
    future = (date.today() + timedelta(days=3)).isoformat()
    assert_problem(await registry.post(f"/v1/enrolments/{eid}/end", json={"reason": "graduation", "ended_on": future}, headers=OFFICER_A), 422,
                   field="ended_on")
    r = await registry.post(f"/v1/enrolments/{eid}/end", json={"reason": "graduation"}, headers=OFFICER_A)
    ended = r.json()
    assert (ended["status"], ended["end_reason"], ended["ended_by"], ended["allowed_actions"]) == ("ended", "graduation", "officer-a", [])
    assert await event_types(registry, eid) == ["proposed.v1", "approved.v1", "suspended.v1", "resumed.v1", "ended.v1"]


async def test_list_filters_and_pages(registry):
    person = await register(registry, decile=1)
    ids = [(await propose(registry, person["id"], code)).json()["id"] for code in ("PKE", "KUBE", "PKH_PLUS")]
    seen, cursor = [], None
    while True:
        q = f"/v1/enrolments?person_id={person['id']}&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await registry.get(q, headers=OFFICER_A)).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ids
    only = (await registry.get(f"/v1/enrolments?person_id={person['id']}&programme_code=KUBE&status=proposed", headers=APPROVER)).json()
    assert [e["id"] for e in only["items"]] == [ids[1]]
    assert_problem(await registry.get("/v1/enrolments?status=nonsense", headers=OFFICER_A), 422, field="query.status")
    assert_problem(await registry.get("/v1/enrolments?cursor=bm90LWEtY3Vyc29y", headers=OFFICER_A), 422, field="query.cursor")
