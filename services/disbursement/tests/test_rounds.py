"""Programmes, budgets and rounds through the API against real PostgreSQL and Kafka: the
snapshot with every exclusion reason, four-eyes approval under an SK, payment creation, the
ceiling and one-payment rules under concurrent approvals and additions (held by the
database, not only by the code), region rules, and the events in the outbox."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from disbursement_testkit import (
    ADMIN,
    APPROVER,
    KEYS,
    PREPARER,
    PREPARER_APPROVER,
    PREPARER_B,
    SIDOARJO,
    SIDOARJO_PREPARER,
    SURABAYA,
    add_payables,
    approve,
    approved_round,
    assert_problem,
    new_programme,
    new_round,
    scalar,
    snapshot,
)
from pilar_kernel.tables import outbox

pytestmark = pytest.mark.stack

D = "id.go.jatimprov.dinsos.disbursement."


async def entries(client, rnd, headers=PREPARER, **params) -> dict[str, dict]:
    r = await client.get(f"/v1/rounds/{rnd['id']}/entries", params={"limit": 1000, **params}, headers=headers)
    assert r.status_code == 200, r.text
    return {e["person_id"]: e for e in r.json()["items"]}


# -- programmes and budgets --------------------------------------------------------------


async def test_the_domain_programmes_are_seeded_with_their_exclusions(disbursement):
    r = await disbursement.get("/v1/programmes", headers=SIDOARJO)
    programmes = {p["code"]: p for p in r.json()}
    assert {"PKH_PLUS", "ASPD", "BLT_DBHCHT", "PKE", "KUBE"} <= set(programmes)
    assert set(programmes["ASPD"]["exclusive_with"]) == {"PKH_PLUS", "BLT_DBHCHT"}
    assert programmes["KUBE"]["default_channel"] == "post"


async def test_rounds_live_within_the_years_budget(disbursement):
    code = await new_programme(disbursement, budget=10_000_000)
    assert_problem(await disbursement.post("/v1/rounds", json={"programme_code": code, "year": 2027, "stage": 1, "amount": 100, "ceiling": 100,
                                                                  "period_start": "2027-01-01", "period_end": "2027-03-31"}, headers=PREPARER),
                   422, "budget.missing")
    first = await new_round(disbursement, code, ceiling=6_000_000, amount=1_000_000)
    r = await disbursement.post("/v1/rounds", json={"programme_code": code, "year": 2026, "stage": 2, "amount": 1_000_000, "ceiling": 5_000_000,
                                                    "period_start": "2026-07-01", "period_end": "2026-09-30"}, headers=PREPARER)
    assert_problem(r, 422, "budget.exceeded")
    r = await disbursement.post("/v1/rounds", json={"programme_code": code, "year": 2026, "stage": first["stage"], "amount": 1, "ceiling": 1,
                                                    "period_start": "2026-07-01", "period_end": "2026-09-30"}, headers=PREPARER)
    assert_problem(r, 409, "round.unique_stage")
    r = await disbursement.post("/v1/rounds", json={"programme_code": code, "year": 2026, "stage": 3, "amount": 500, "ceiling": 100,
                                                    "period_start": "2026-09-30", "period_end": "2026-07-01"}, headers=PREPARER)
    assert {e["rule"] for e in assert_problem(r, 422)["errors"]} == {"round.ceiling", "round.period"}
    budget = (await disbursement.get(f"/v1/programmes/{code}", headers=ADMIN)).json()["budgets"][0]
    assert (budget["allocated"], budget["remaining"]) == (6_000_000, 4_000_000)
    assert_problem(await disbursement.put(f"/v1/programmes/{code}/budgets/2026", json={"amount": 5_000_000}, headers=ADMIN), 422, "budget.allocated")
    # Cancelling the round gives its ceiling back to the year.
    r = await disbursement.post(f"/v1/rounds/{first['id']}/cancel", json={"reason": "planned twice by mistake"}, headers=PREPARER)
    assert r.json()["status"] == "cancelled"
    budget = (await disbursement.get(f"/v1/programmes/{code}", headers=ADMIN)).json()["budgets"][0]
    assert budget["allocated"] == 0


async def test_rounds_are_run_by_the_province_and_need_the_right_scopes(disbursement):
    code = await new_programme(disbursement)
    body = {"programme_code": code, "year": 2026, "stage": 5, "amount": 1, "ceiling": 1, "period_start": "2026-01-01", "period_end": "2026-01-31"}
    assert_problem(await disbursement.post("/v1/rounds", json=body, headers=SIDOARJO_PREPARER), 403)
    assert_problem(await disbursement.post("/v1/rounds", json=body, headers=APPROVER), 403)
    assert_problem(await disbursement.post("/v1/rounds", json=body), 401)


# -- the snapshot ------------------------------------------------------------------------


async def test_snapshot_lists_every_payee_and_every_exclusion_with_its_reason(disbursement):
    sf = disbursement.app.state.session_factory
    rival = await new_programme(disbursement)
    code = await new_programme(disbursement, exclusive_with=[rival])
    payees = await add_payables(sf, code, 3)
    early = await add_payables(sf, code, 1, active_from=date(2025, 1, 1))
    late_in_queue = await add_payables(sf, code, 1, active_from=date(2026, 3, 1))
    future = await add_payables(sf, code, 1, active_from=date(2026, 8, 1))
    ended, deceased, merged, exclusive = ([p] for p in await add_payables(sf, code, 4))
    async with sf() as s, s.begin():
        await s.execute(text("UPDATE payee_enrolment SET status = 'ended', ended_on = '2026-02-01', end_reason = 'graduation' WHERE person_id = :p"),
                        {"p": ended[0]})
        await s.execute(text("UPDATE payee_person SET status = 'deceased', date_of_death = '2026-03-03' WHERE person_id = :p"), {"p": deceased[0]})
        await s.execute(text("UPDATE payee_person SET status = 'merged', merged_into = :q WHERE person_id = :p"), {"p": merged[0], "q": payees[0]})
    # The rival programme pays one person in an overlapping, approved round.
    await add_payables(sf, rival, person_ids=exclusive)
    await approved_round(disbursement, rival, amount=100_000, ceiling=100_000, start=date(2026, 5, 1), end=date(2026, 5, 31))

    rnd = await snapshot(disbursement, await new_round(disbursement, code, amount=900_000, ceiling=4 * 900_000 + 899_999))
    assert (rnd["status"], rnd["payee_count"], rnd["planned_amount"], rnd["prepared_by"]) == ("snapshot", 4, 3_600_000, "officer-a")
    lines = await entries(disbursement, rnd)
    reason = {p: e["reason"] for p, e in lines.items()}
    assert [reason[str(p)] for p in payees + early] == [None] * 4
    assert reason[str(late_in_queue[0])] == "over_budget"  # enrolled last: the ceiling pays four
    assert reason[str(future[0])] == "not_active" and "2026-08-01" in lines[str(future[0])]["detail"]
    assert reason[str(ended[0])] == "not_active" and "graduation" in lines[str(ended[0])]["detail"]
    assert reason[str(deceased[0])] == "deceased" and "2026-03-03" in lines[str(deceased[0])]["detail"]
    assert reason[str(merged[0])] == "merged" and str(payees[0]) in lines[str(merged[0])]["detail"]
    assert reason[str(exclusive[0])] == "exclusive_programme" and rival in lines[str(exclusive[0])]["detail"]
    summary = (await disbursement.get(f"/v1/rounds/{rnd['id']}/snapshot", headers=PREPARER)).json()
    assert summary["payees"] == 4 and summary["excluded"] == {"over_budget": 1, "not_active": 2, "deceased": 1, "merged": 1, "exclusive_programme": 1}
    # Taking it again replaces it and bumps the version the approver must review.
    again = await snapshot(disbursement, rnd, headers=PREPARER_B)
    assert (again["snapshot_version"], again["prepared_by"], again["payee_count"]) == (2, "officer-b", 4)
    assert len(await entries(disbursement, again)) == len(lines)


async def test_a_regency_office_sees_only_its_regions_lines(disbursement):
    sf = disbursement.app.state.session_factory
    code = await new_programme(disbursement)
    mine = await add_payables(sf, code, 2, regency="35.15")
    theirs = await add_payables(sf, code, 3, regency="35.78")
    rnd = await snapshot(disbursement, await new_round(disbursement, code))
    assert set(await entries(disbursement, rnd, headers=SIDOARJO)) == {str(p) for p in mine}
    assert set(await entries(disbursement, rnd, headers=SURABAYA)) == {str(p) for p in theirs}
    assert await entries(disbursement, rnd, headers=SIDOARJO, regency_code="35.78") == {}
    assert (await disbursement.get(f"/v1/rounds/{rnd['id']}/snapshot", headers=SIDOARJO)).json()["payees"] == 2


# -- approval ----------------------------------------------------------------------------


async def test_approval_needs_a_second_officer_the_reviewed_snapshot_and_records_the_sk(disbursement):
    sf = disbursement.app.state.session_factory
    code = await new_programme(disbursement)
    await add_payables(sf, code, 2)
    rnd = await snapshot(disbursement, await new_round(disbursement, code), headers=PREPARER_APPROVER)
    assert_problem(await approve(disbursement, rnd, headers=PREPARER_APPROVER), 403, "round.four_eyes")
    assert_problem(await approve(disbursement, rnd, headers=PREPARER), 403)  # no approve scope
    stale = {**rnd, "snapshot_version": rnd["snapshot_version"] - 1}
    assert_problem(await approve(disbursement, stale), 409)
    r = await approve(disbursement, rnd, sk="188/77/KPTS/013/2026")
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["status"], out["approved_by"], out["sk_number"]) == ("approved", "kabid-linjamsos", "188/77/KPTS/013/2026")
    # The same approval again changes nothing; another decree for the same round is refused.
    again = await approve(disbursement, rnd, sk="188/77/KPTS/013/2026")
    assert again.status_code == 200 and again.json()["version"] == out["version"]
    assert_problem(await approve(disbursement, rnd, sk="188/99/KPTS/013/2026"), 409)
    assert_problem(await disbursement.post(f"/v1/rounds/{rnd['id']}/snapshot", headers=PREPARER), 409)
    async with sf() as s:
        rows = (await s.execute(select(outbox.c.ce_type, outbox.c.payload).where(outbox.c.message_key == rnd["id"]))).all()
    assert [t for t, _ in rows] == [D + "round.approved.v1"]
    assert b'"sk_number":"188/77/KPTS/013/2026"' in rows[0].payload


async def test_the_database_itself_refuses_self_approval(disbursement):
    sf = disbursement.app.state.session_factory
    code = await new_programme(disbursement)
    await add_payables(sf, code, 1)
    rnd = await snapshot(disbursement, await new_round(disbursement, code))
    with pytest.raises(IntegrityError, match="round_four_eyes"):
        async with sf() as s, s.begin():
            await s.execute(text("UPDATE payment_round SET status = 'approved', approved_by = prepared_by, sk_number = 'x' WHERE id = :r"),
                            {"r": rnd["id"]})


# -- payments: the ceiling and one payment per person --------------------------------------


async def test_disbursing_creates_one_payment_per_payee_and_a_repeat_creates_none(disbursement):
    sf = disbursement.app.state.session_factory
    code = await new_programme(disbursement)
    people = await add_payables(sf, code, 5)
    rnd = await approved_round(disbursement, code, amount=900_000, ceiling=10_000_000)
    # One payee dies between the snapshot and payment creation: not paid.
    async with sf() as s, s.begin():
        await s.execute(text("UPDATE payee_person SET status = 'deceased', date_of_death = '2026-04-02' WHERE person_id = :p"), {"p": people[0]})
    results = await asyncio.gather(*(disbursement.post(f"/v1/rounds/{rnd['id']}/disburse", headers=PREPARER) for _ in range(4)))
    assert {r.status_code for r in results} == {200}
    out = results[0].json()
    assert (out["status"], out["payee_count"], out["committed"], out["remaining_budget"]) == ("disbursing", 4, 3_600_000, 6_400_000)
    assert await scalar(sf, "SELECT count(*) FROM payment WHERE round_id = :r", r=rnd["id"]) == 4
    line = (await entries(disbursement, rnd))[str(people[0])]
    assert (line["outcome"], line["reason"]) == ("excluded", "deceased") and "after the snapshot" in line["detail"]
    r = await disbursement.get("/v1/payments", params={"round_id": rnd["id"]}, headers=SIDOARJO)
    assert {p["status"] for p in r.json()["items"]} == {"created"} and len(r.json()["items"]) == 4
    assert (await disbursement.get("/v1/payments", params={"round_id": rnd["id"]}, headers=SURABAYA)).json()["items"] == []


async def test_concurrent_approvals_and_additions_never_pass_the_ceiling_nor_pay_anyone_twice(disbursement):
    """Ten approvers race on one round, then forty additions race on it while it disburses:
    twelve persons, half of them added twice at once, for a ceiling of ten payments."""
    sf = disbursement.app.state.session_factory
    code = await new_programme(disbursement)
    first = await add_payables(sf, code, 6)
    rnd = await snapshot(disbursement, await new_round(disbursement, code, amount=1_000_000, ceiling=10_000_000))
    approvers = [KEYS.headers("disbursement:read", "disbursement:approve", subject="dinsos-jatim", user=f"kabid-{i % 3}") for i in range(10)]
    results = await asyncio.gather(*(approve(disbursement, rnd, sk=f"SK {i % 2}", headers=h) for i, h in enumerate(approvers)))
    assert {r.status_code for r in results} <= {200, 409}
    winners = {(r.json()["approved_by"], r.json()["sk_number"]) for r in results if r.status_code == 200}
    assert len(winners) == 1  # repeats of the winning approval answer 200, every other approval 409
    assert sum(r.status_code == 409 for r in results) >= 1
    assert await scalar(sf, "SELECT count(*) FROM outbox WHERE message_key = :r", r=rnd["id"]) == 1

    late = await add_payables(sf, code, 6)  # approved after the snapshot: added by hand
    calls = [disbursement.post(f"/v1/rounds/{rnd['id']}/disburse", headers=PREPARER) for _ in range(4)]
    calls += [disbursement.post(f"/v1/rounds/{rnd['id']}/payees", json={"person_id": str(p), "note": "late approval, letter 12"}, headers=PREPARER)
              for p in first + late + late[:3] + late[:3]]
    calls += [disbursement.post(f"/v1/rounds/{rnd['id']}/payees", json={"person_id": str(p), "note": "late approval, letter 13"}, headers=PREPARER_B)
              for p in late]
    results = await asyncio.gather(*calls)
    assert {r.status_code for r in results} <= {200, 201, 409, 422}, [r.text for r in results if r.status_code >= 500]
    refused = [r.json() for r in results if r.status_code == 422]
    assert refused and all(e["rule"] == "payee.over_budget" for p in refused for e in p["errors"])

    payments = (await disbursement.get("/v1/payments", params={"round_id": rnd["id"], "limit": 100}, headers=PREPARER)).json()["items"]
    persons = [p["person_id"] for p in payments]
    assert len(persons) == len(set(persons)) == 10
    assert sum(p["amount"] for p in payments) == 10_000_000
    after = (await disbursement.get(f"/v1/rounds/{rnd['id']}", headers=PREPARER)).json()
    assert (after["committed"], after["remaining_budget"], after["payee_count"]) == (10_000_000, 0, 10)


async def test_the_database_refuses_a_payment_past_the_ceiling_or_a_second_payment(disbursement):
    """Straight SQL, past every check in the code: the constraints still hold."""
    sf = disbursement.app.state.session_factory
    code = await new_programme(disbursement)
    people = await add_payables(sf, code, 2)
    rnd = await approved_round(disbursement, code, amount=1_000_000, ceiling=2_000_000)
    await disbursement.post(f"/v1/rounds/{rnd['id']}/disburse", headers=PREPARER)
    insert = text(
        """
        INSERT INTO payment (id, round_id, person_id, programme_code, year, stage, amount, channel)
        VALUES (gen_random_uuid(), :r, :p, :c, 2026, 1, 1000000, 'bank')
        """
    )
    with pytest.raises(IntegrityError, match="ux_payment_round_person"):
        async with sf() as s, s.begin():
            await s.execute(insert, {"r": rnd["id"], "p": people[0], "c": code})
    with pytest.raises(IntegrityError, match="round_within_ceiling"):
        async with sf() as s, s.begin():
            await s.execute(insert, {"r": rnd["id"], "p": uuid.uuid4(), "c": code})

    # Two transactions each adding a payment to a round with room for one: one waits, then fails.
    async with sf() as s, s.begin():
        await s.execute(text("UPDATE payment SET status = 'cancelled', cancel_reason = 'test' WHERE round_id = :r AND person_id = :p"),
                        {"r": rnd["id"], "p": people[0]})
    outcomes = []

    async def add_one():
        try:
            async with sf() as s, s.begin():
                await s.execute(insert, {"r": rnd["id"], "p": uuid.uuid4(), "c": code})
                await asyncio.sleep(0.2)
            outcomes.append("ok")
        except (IntegrityError, DBAPIError) as exc:
            outcomes.append("refused" if "round_within_ceiling" in str(exc) else str(exc))

    await asyncio.gather(add_one(), add_one())
    assert sorted(outcomes) == ["ok", "refused"]
    assert await scalar(sf, "SELECT committed FROM payment_round WHERE id = :r", r=rnd["id"]) == 2_000_000


async def test_additions_follow_the_same_rules_as_the_snapshot(disbursement):
    sf = disbursement.app.state.session_factory
    code = await new_programme(disbursement)
    await add_payables(sf, code, 1)
    rnd = await approved_round(disbursement, code, amount=1_000_000, ceiling=5_000_000)
    dead = await add_payables(sf, code, 1)
    async with sf() as s, s.begin():
        await s.execute(text("UPDATE payee_person SET status = 'deceased' WHERE person_id = :p"), {"p": dead[0]})
    r = await disbursement.post(f"/v1/rounds/{rnd['id']}/payees", json={"person_id": str(dead[0]), "note": "late approval"}, headers=PREPARER)
    assert_problem(r, 422, "payee.deceased")
    r = await disbursement.post(f"/v1/rounds/{rnd['id']}/payees", json={"person_id": str(uuid.uuid4()), "note": "late approval"}, headers=PREPARER)
    assert_problem(r, 422, "payee.not_enrolled")
    fresh = await add_payables(sf, code, 1)
    r = await disbursement.post(f"/v1/rounds/{rnd['id']}/payees", json={"person_id": str(fresh[0]), "note": "late approval"}, headers=PREPARER)
    assert r.status_code == 201 and (r.json()["source"], r.json()["added_by"]) == ("addition", "officer-a")
    await disbursement.post(f"/v1/rounds/{rnd['id']}/disburse", headers=PREPARER)
    r = await disbursement.post(f"/v1/rounds/{rnd['id']}/payees", json={"person_id": str(fresh[0]), "note": "late approval"}, headers=PREPARER)
    assert r.status_code == 201  # already a payee: nothing changes
    assert await scalar(sf, "SELECT count(*) FROM payment WHERE round_id = :r", r=rnd["id"]) == 2


async def test_closing_needs_settled_payments(disbursement):
    sf = disbursement.app.state.session_factory
    code = await new_programme(disbursement)
    await add_payables(sf, code, 2)
    rnd = await approved_round(disbursement, code)
    await disbursement.post(f"/v1/rounds/{rnd['id']}/disburse", headers=PREPARER)
    assert_problem(await disbursement.post(f"/v1/rounds/{rnd['id']}/close", headers=PREPARER), 409)
    payments = (await disbursement.get("/v1/payments", params={"round_id": rnd["id"]}, headers=PREPARER)).json()["items"]
    for p in payments:
        r = await disbursement.post(f"/v1/payments/{p['id']}/cancel", json={"reason": "beneficiary refused the aid"}, headers=PREPARER)
        assert r.json()["status"] == "cancelled"
    r = await disbursement.post(f"/v1/rounds/{rnd['id']}/close", headers=PREPARER)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["committed"]) == ("closed", 0)
    totals = (await disbursement.get(f"/v1/rounds/{rnd['id']}/totals", headers=PREPARER)).json()
    assert (totals["cancelled_count"], totals["paid_count"], totals["remaining_budget"]) == (2, 0, totals["ceiling"])
    # A closed round takes from the year's budget only what it committed.
    budget = (await disbursement.get(f"/v1/programmes/{code}", headers=ADMIN)).json()["budgets"][0]
    assert budget["allocated"] == 0
