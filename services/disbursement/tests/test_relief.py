"""Emergency cash for disaster-affected households, against real Kafka and PostgreSQL: the
relief consumer pays a household once per incident, the amount of its damage level, into
the relief programme's open round; households it cannot pay yet are held with the reason and
paid when a later assessment makes it possible; nothing passes the round's ceiling."""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from disbursement_testkit import ADMIN, PREPARER, SIDOARJO_PREPARER, add_payables, approved_round, assert_problem, new_programme, scalar
from pilar_contracts.disaster import SOURCE, HouseholdAffected
from pilar_kernel.events import Envelope
from pilar_kernel.kafka import ensure_topics, make_producer
from pilar_kernel.testing import assert_runs, eventually

pytestmark = pytest.mark.stack


@asynccontextmanager
async def relief_running(client, kafka: str):
    """Run the relief consumer (and its routes) beside the app unless the app already has them."""
    from disbursement.relief.consumer import NAME

    assert_runs(client.app, NAME)
    yield


@pytest.fixture(scope="module")
async def publish(disbursement, kafka_bootstrap):
    await ensure_topics(kafka_bootstrap, ["disaster.household"], disbursement.app.state.settings.topic_partitions)
    producer = make_producer(kafka_bootstrap, client_id="test-disaster-households")
    await producer.start()

    async def send(event, envelope: Envelope | None = None) -> Envelope:
        env = envelope or Envelope.for_event(event, source=SOURCE)
        await producer.send_and_wait(event.topic, value=env.data, key=event.aggregate_id.encode(), headers=env.headers())
        return env

    async with relief_running(disbursement, kafka_bootstrap):
        yield send
    await producer.stop()


async def open_round(client, *, ceiling: int = 20_000_000) -> dict:
    code = await new_programme(client)
    await add_payables(client.app.state.session_factory, code, 1)  # a round needs a payee to be approved
    rnd = await approved_round(client, code, amount=1_000_000, ceiling=ceiling, channel="post")
    r = await client.post(f"/v1/rounds/{rnd['id']}/disburse", headers=PREPARER)
    assert r.status_code == 200, r.text
    return r.json()


async def relief_programme(client, rnd: dict, **amounts) -> dict:
    """The one active relief programme (the earliest active one that matches an incident pays)."""
    for other in (await client.get("/v1/relief-programmes", headers=PREPARER)).json():
        if other["active"]:
            r = await client.patch(f"/v1/relief-programmes/{other['id']}", json={"version": other["version"], "active": False}, headers=ADMIN)
            assert r.status_code == 200, r.text
    body = {"name": "Santunan bencana", "round_id": rnd["id"], "incident_categories": ["natural"], "regency_codes": ["35.08"],
            "amount_moderate": 2_000_000, "amount_heavy": 5_000_000, **amounts}
    r = await client.post("/v1/relief-programmes", json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    return r.json()


def household(**kw) -> HouseholdAffected:
    out = {"household_id": uuid.uuid4(), "incident_id": uuid.uuid4(), "incident_category": "natural", "hazard": "flood",
           "regency_code": "35.08", "district_code": "35.08.01", "damage_level": "heavy", "displaced": True, "member_count": 4,
           "registry_household_id": None, "recipient_person_id": uuid.uuid4(), "recipient_nik_hash": "a" * 64, "version": 1,
           "assessed_at": datetime.now(UTC)}
    out.update(kw)
    return HouseholdAffected(**out)


async def grant(client, event: HouseholdAffected, version: int | None = None):
    async with client.app.state.session_factory() as s:
        row = (await s.execute(text("SELECT * FROM relief_grant WHERE incident_id = :i AND household_id = :h"),
                               {"i": event.incident_id, "h": event.household_id})).mappings().first()
    if row is None or (version is not None and row["household_version"] < version):
        return None
    return row


async def seen(client, env: Envelope) -> bool:
    return bool(await scalar(client.app.state.session_factory, "SELECT count(*) FROM inbox WHERE ce_id = :c", c=env.id))


async def test_only_the_province_sets_up_relief_on_an_open_round(disbursement, publish):
    rnd = await open_round(disbursement)
    base = {"name": "Santunan", "round_id": rnd["id"], "amount_heavy": 1}
    assert_problem(await disbursement.post("/v1/relief-programmes", json=base, headers=SIDOARJO_PREPARER), 403)
    assert_problem(await disbursement.post("/v1/relief-programmes", json={**base, "amount_heavy": 0}, headers=ADMIN), 422, "relief.amount")
    assert_problem(await disbursement.post("/v1/relief-programmes", json={**base, "round_id": str(uuid.uuid4())}, headers=ADMIN), 422, "relief.round")
    assert_problem(await disbursement.post("/v1/relief-programmes", json={**base, "regency_codes": ["35.99"]}, headers=ADMIN), 422, "region.regency")


async def test_a_household_is_paid_once_per_incident_whatever_the_events_repeat(disbursement, publish):
    rnd = await open_round(disbursement)
    await relief_programme(disbursement, rnd)
    sf = disbursement.app.state.session_factory
    event = household()
    env = await publish(event)
    await publish(event, env)  # redelivered
    paid = await eventually(lambda: grant(disbursement, event))
    assert (paid["status"], paid["amount"], paid["person_id"]) == ("paid", 5_000_000, event.recipient_person_id)
    # Re-assessed twice, once out of order: still the one payment.
    await publish(household(**{**event.model_dump(), "version": 3, "damage_level": "moderate"}))
    late = await publish(household(**{**event.model_dump(), "version": 2}))
    await eventually(lambda: seen(disbursement, late))
    payments = await scalar(sf, "SELECT count(*) FROM payment WHERE round_id = :r AND person_id = :p", r=rnd["id"], p=event.recipient_person_id)
    assert payments == 1
    payment = (await disbursement.get(f"/v1/payments/{paid['payment_id']}", headers=PREPARER)).json()
    assert (payment["amount"], payment["status"], payment["channel"], payment["regency_code"]) == (5_000_000, "created", "post", "35.08")
    entry = await scalar(sf, "SELECT note FROM round_entry WHERE round_id = :r AND person_id = :p", r=rnd["id"], p=event.recipient_person_id)
    assert str(event.incident_id) in entry
    assert await scalar(sf, "SELECT committed FROM payment_round WHERE id = :r", r=rnd["id"]) == 1_000_000 + 5_000_000
    async with sf() as s:
        with pytest.raises(IntegrityError):  # the database holds the rule too
            await s.execute(text(
                "INSERT INTO relief_grant (id, incident_id, household_id, relief_programme_id, damage_level, status, reason, household_version) "
                "SELECT gen_random_uuid(), incident_id, household_id, relief_programme_id, 'heavy', 'held', 'x', 9 FROM relief_grant WHERE id = :g"),
                {"g": paid["id"]})


async def test_households_that_cannot_be_paid_yet_are_held_with_the_reason(disbursement, publish):
    rnd = await open_round(disbursement, ceiling=9_000_000)  # room for the regular payee and one heavy household
    await relief_programme(disbursement, rnd)
    sf = disbursement.app.state.session_factory
    # Nobody in the household is known to the registry yet; a later assessment matches the head.
    nobody = household(recipient_person_id=None, recipient_nik_hash=None)
    await publish(nobody)
    held = await eventually(lambda: grant(disbursement, nobody))
    assert (held["status"], held["reason"]) == ("held", "recipient_unknown")
    matched = household(**{**nobody.model_dump(), "version": 2, "recipient_person_id": uuid.uuid4()})
    await publish(matched)
    paid = await eventually(lambda: grant(disbursement, matched, version=2))
    assert paid["status"] == "paid" and paid["payment_id"] is not None
    # The round has no room left for another heavy household.
    full = household()
    await publish(full)
    assert (await eventually(lambda: grant(disbursement, full)))["reason"] == "over_ceiling"
    # The same head of family for a second household of the same incident: one payment per person and round.
    twice = household(incident_id=matched.incident_id, recipient_person_id=matched.recipient_person_id, damage_level="moderate")
    await publish(twice)
    assert (await eventually(lambda: grant(disbursement, twice)))["reason"] in ("already_paid_in_round", "over_ceiling")
    # A recipient the registry recorded as deceased is not paid.
    dead = uuid.uuid4()
    await add_payables(sf, "PKE", 1, regency="35.08", person_ids=[dead])
    async with sf() as s, s.begin():
        await s.execute(text("UPDATE payee_person SET status = 'deceased' WHERE person_id = :p"), {"p": dead})
    gone = household(recipient_person_id=dead, damage_level="moderate")
    await publish(gone)
    assert (await eventually(lambda: grant(disbursement, gone)))["reason"] in ("recipient_not_payable", "over_ceiling")
    # Light damage pays nothing here, a social disaster is outside the programme, another regency too: no grant at all.
    skipped = [household(damage_level="light"), household(incident_category="social", hazard="conflict"), household(regency_code="35.78")]
    envs = [await publish(e) for e in skipped]
    for env in envs:
        await eventually(lambda env=env: seen(disbursement, env))
    for e in skipped:
        assert await grant(disbursement, e) is None
    assert await scalar(sf, "SELECT committed <= ceiling FROM payment_round WHERE id = :r", r=rnd["id"])
    grants = (await disbursement.get("/v1/relief-grants", params={"incident_id": str(full.incident_id)}, headers=PREPARER)).json()
    assert [(g["status"], g["reason"]) for g in grants] == [("held", "over_ceiling")]
