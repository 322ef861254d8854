"""The payable population built from the registry's events over real Kafka: approvals, ends,
deaths arriving before the approval they end, merges re-pointing enrolments, repeats changing
nothing, and a death cancelling the payments that have not gone out yet."""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from sqlalchemy import text

from disbursement_testkit import (
    PREPARER,
    SIDOARJO,
    SURABAYA,
    add_payables,
    approved_round,
    new_programme,
    new_round,
    publisher,
    scalar,
    snapshot,
)
from pilar_contracts.registry import EnrolmentApproved, EnrolmentEnded, EnrolmentResumed, EnrolmentSuspended, PersonDeceased, PersonMerged
from pilar_kernel.testing import eventually

pytestmark = pytest.mark.stack

REGISTRY = "/pilar/registry"


def approved(person, code, enrolment=None, regency="35.15"):
    return EnrolmentApproved(enrolment_id=enrolment or uuid.uuid4(), person_id=person, nik_hash=f"hash-{person}", programme_code=code,
                             regency_code=regency, household_id=None, active_from=date(2026, 1, 1))


async def person(client, person_id, headers=PREPARER):
    r = await client.get(f"/v1/population/persons/{person_id}", headers=headers)
    return r.json() if r.status_code == 200 else None


async def test_the_population_follows_the_registrys_events(disbursement, kafka_bootstrap):
    code, other = await new_programme(disbursement), await new_programme(disbursement)
    a, b, c, d = (uuid.uuid4() for _ in range(4))
    eb, ed = uuid.uuid4(), uuid.uuid4()
    async with publisher(kafka_bootstrap, REGISTRY, ["registry.enrolment", "registry.person"]) as publish:
        # c's death is published before c's approval (two topics: either may arrive first).
        await publish(PersonDeceased(person_id=c, nik_hash=f"hash-{c}", regency_code="35.15", date_of_death=date(2026, 2, 2)))
        await publish(approved(a, code))
        await publish(approved(b, code, eb))
        await publish(EnrolmentEnded(enrolment_id=eb, person_id=b, nik_hash=f"hash-{b}", programme_code=code, regency_code="35.15",
                                     reason="graduation", ended_on=date(2026, 3, 1)))
        await publish(approved(b, code, eb))  # a late repeat of the approval does not reopen it
        await publish(approved(c, code))
        await publish(approved(d, other, ed, regency="35.78"))
        # d is merged into a: the registry re-announces d's enrolment under a, same enrolment id.
        await publish(PersonMerged(person_id=d, nik_hash=f"hash-{d}", regency_code="35.78", into_person_id=a, into_nik_hash=f"hash-{a}"))
        await publish(approved(a, other, ed))

        async def converged():
            pa, pb, pc, pd = [await person(disbursement, p) for p in (a, b, c, d)]
            if not (pa and pb and pc and pd):
                return None
            return (len(pa["enrolments"]) == 2 and pb["enrolments"][0]["status"] == "ended" and pc["status"] == "deceased"
                    and pc["enrolments"] and pd["status"] == "merged") and (pa, pb, pc, pd)

        pa, pb, pc, pd = await eventually(converged, timeout=30)
        assert {e["programme_code"] for e in pa["enrolments"]} == {code, other}
        assert (pb["enrolments"][0]["end_reason"], pc["date_of_death"], pd["merged_into"], pd["enrolments"]) == ("graduation", "2026-02-02", str(a), [])
        assert await person(disbursement, a, headers=SURABAYA) is None  # a regency office sees its own region only

        rnd = await snapshot(disbursement, await new_round(disbursement, code))
        lines = (await disbursement.get(f"/v1/rounds/{rnd['id']}/entries", headers=PREPARER)).json()["items"]
        assert {line["person_id"]: line["reason"] for line in lines} == {str(a): None, str(b): "not_active", str(c): "deceased"}

        # A death after payment creation cancels what has not gone out (no bank here: it waits as created).
        rnd = await approved_round(disbursement, other, stage=1)
        await disbursement.post(f"/v1/rounds/{rnd['id']}/disburse", headers=PREPARER)
        await publish(PersonDeceased(person_id=a, nik_hash=f"hash-{a}", regency_code="35.15", date_of_death=date(2026, 4, 9)))

        async def cancelled():
            items = (await disbursement.get("/v1/payments", params={"round_id": rnd["id"]}, headers=SIDOARJO)).json()["items"]
            return items and items[0]["status"] == "cancelled" and items[0]

        payment = await eventually(cancelled, timeout=30)
        assert payment["cancel_reason"] == "deceased on 2026-04-09"
        assert (await disbursement.get(f"/v1/rounds/{rnd['id']}", headers=PREPARER)).json()["committed"] == 0
        sf = disbursement.app.state.session_factory
        assert await scalar(sf, "SELECT count(*) FROM outbox WHERE message_key = :p AND ce_type LIKE '%payment.cancelled.v1'", p=payment["id"]) == 1


async def test_a_merge_never_lets_one_human_be_paid_twice_in_a_round(disbursement, kafka_bootstrap):
    """Two records of one person are both payees; the duplicate's payment has gone to the bank
    when the registry merges it into the other: the survivor's payment is cancelled."""
    sf = disbursement.app.state.session_factory
    code = await new_programme(disbursement)
    duplicate, survivor = await add_payables(sf, code, 2)
    rnd = await approved_round(disbursement, code)
    await disbursement.post(f"/v1/rounds/{rnd['id']}/disburse", headers=PREPARER)
    async with sf() as s, s.begin():  # as if the bank sender had taken it
        await s.execute(text("UPDATE payment SET status = 'sent', attempt = 1 WHERE person_id = :p"), {"p": duplicate})
    async with publisher(kafka_bootstrap, REGISTRY, ["registry.person"]) as publish:
        await publish(PersonMerged(person_id=duplicate, nik_hash=None, regency_code="35.15", into_person_id=survivor, into_nik_hash=None))

        async def survivor_cancelled():
            items = (await disbursement.get("/v1/payments", params={"round_id": rnd["id"], "person_id": str(survivor)}, headers=PREPARER)).json()
            return items["items"] and items["items"][0]["status"] == "cancelled" and items["items"][0]

        payment = await eventually(survivor_cancelled, timeout=30)
    assert payment["cancel_reason"] == f"already paid in this round under the merged record {duplicate}"
    assert await scalar(sf, "SELECT status FROM payment WHERE person_id = :p", p=duplicate) == "sent"
    # Adding the survivor again is refused: nobody gets a second payment in a round.
    r = await disbursement.post(f"/v1/rounds/{rnd['id']}/payees", json={"person_id": str(survivor), "note": "re-added by mistake"},
                                headers=PREPARER)
    assert r.status_code == 422 and r.json()["errors"][0]["rule"] == "payee.already_paid", r.text


async def test_a_suspended_enrolment_is_not_payable_until_resumed(disbursement, kafka_bootstrap):
    code = await new_programme(disbursement)
    who, enrolment = uuid.uuid4(), uuid.uuid4()
    fields = dict(enrolment_id=enrolment, person_id=who, nik_hash=f"hash-{who}", programme_code=code, regency_code="35.15")
    async with publisher(kafka_bootstrap, REGISTRY, ["registry.enrolment", "registry.person"]) as publish:
        await publish(approved(who, code, enrolment))
        await publish(EnrolmentSuspended(**fields, reason="bank account closed"))

        async def status_is(wanted):
            p = await person(disbursement, who)
            return p and p["enrolments"] and p["enrolments"][0]["status"] == wanted

        await eventually(lambda: status_is("suspended"), timeout=30)
        rnd = await snapshot(disbursement, await new_round(disbursement, code))
        lines = (await disbursement.get(f"/v1/rounds/{rnd['id']}/entries", headers=PREPARER)).json()["items"]
        assert [(line["reason"], line["detail"]) for line in lines] == [("not_active", "enrolment suspended")]

        await publish(EnrolmentResumed(**fields))
        await eventually(lambda: status_is("active"), timeout=30)
        rnd = await snapshot(disbursement, await new_round(disbursement, code, stage=2))
        lines = (await disbursement.get(f"/v1/rounds/{rnd['id']}/entries", headers=PREPARER)).json()["items"]
        assert [line["reason"] for line in lines] == [None]
