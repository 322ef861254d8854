"""A person's aid history in the registry, fed by the disbursement service's payment events
over real Kafka: the latest state of each payment whatever the delivery order, repeats
changing nothing, records merged into the person, and the region rule."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from pilar_contracts.disbursement import SOURCE, PaymentFailed, PaymentReturned, PaymentSent, PaymentSucceeded
from pilar_kernel.events import Envelope
from pilar_kernel.kafka import ensure_topics, make_producer
from pilar_kernel.nik import make_nik
from pilar_kernel.testing import assert_runs, eventually
from registry_testkit import KEYS

pytestmark = pytest.mark.stack

SIDOARJO_VILLAGE = "35.15.14.2001"
SIDOARJO = KEYS.headers("registry:read", "registry:write", "registry:verify", region="35.15", subject="dinsos-sidoarjo", user="officer-a")
SURABAYA = KEYS.headers("registry:read", region="35.78", subject="dinsos-surabaya")
NO_READ = KEYS.headers("registry:write", region="35.15", subject="dinsos-sidoarjo")
_serial = iter(range(4000, 9999))


@pytest.fixture(scope="module")
async def aid_registry(registry, kafka_bootstrap):
    """The registry with its aid-history route and consumer, wired here if app.py does not yet."""
    from registry.aid.events import aid

    app = registry.app
    assert_runs(app, aid.name)
    producer = make_producer(kafka_bootstrap, client_id="aid-test")
    await ensure_topics(kafka_bootstrap, ["disbursement.payment"], 3)
    await producer.start()
    registry.publish = lambda event: _publish(producer, event)
    try:
        yield registry
    finally:
        await producer.stop()


async def _publish(producer, event) -> None:
    env = Envelope.for_event(event, source=SOURCE)
    await producer.send_and_wait(event.topic, value=env.data, key=env.key, headers=env.headers())


async def register(client) -> dict:
    born = date(1950, 3, 14)
    body = {"nik": make_nik("35.15.14", born, "F", next(_serial)), "name": "Sri Wahyuni", "birth_date": born.isoformat(), "sex": "F",
            "village_code": SIDOARJO_VILLAGE, "decile": 1, "decile_date": "2026-01-01"}
    r = await client.post("/v1/persons", json=body, headers=SIDOARJO)
    assert r.status_code == 201, r.text
    return r.json()


def payment(person_id, *, version: int, attempt: int = 1, at: datetime | None = None, payment_id=None, **over) -> dict:
    return {
        "payment_id": payment_id or uuid.uuid4(), "round_id": over.pop("round_id", uuid.uuid4()), "programme_code": over.pop("programme_code", "ASPD"),
        "year": 2026, "stage": over.pop("stage", 1), "person_id": person_id, "nik_hash": None, "regency_code": "35.15", "amount": 900_000,
        "channel": "bank", "attempt": attempt, "version": version, "occurred_at": at or datetime.now(UTC), **over,
    }


async def history(client, person_id, headers=SIDOARJO, expect: int | None = None):
    async def check():
        r = await client.get(f"/v1/persons/{person_id}/aid-history", headers=headers)
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        return items if expect is None or len(items) == expect else None

    return await eventually(check, timeout=20)


async def test_payment_events_become_the_persons_aid_history(aid_registry):
    person = await register(aid_registry)
    first = payment(person["id"], version=2, stage=1)
    await aid_registry.publish(PaymentSent(**first))
    items = await history(aid_registry, person["id"], expect=1)
    assert (items[0]["status"], items[0]["programme_code"], items[0]["stage"], items[0]["amount"]) == ("sent", "ASPD", 1, 900_000)

    await aid_registry.publish(PaymentFailed(**{**first, "version": 3}, reason="account_dormant"))
    await aid_registry.publish(PaymentSent(**{**first, "version": 5, "attempt": 2}))
    await aid_registry.publish(PaymentSucceeded(**{**first, "version": 6, "attempt": 2}))
    second = payment(person["id"], version=2, stage=2, at=datetime.now(UTC) + timedelta(days=90))
    await aid_registry.publish(PaymentSucceeded(**{**second, "version": 3}))
    await aid_registry.publish(PaymentReturned(**{**second, "version": 4}, reason="account_closed", returned_amount=900_000))

    async def converged():
        items = await history(aid_registry, person["id"], expect=2)
        return items if [i["status"] for i in items] == ["succeeded", "returned"] else None

    items = await eventually(converged, timeout=20)
    assert (items[0]["attempt"], items[1]["returned_amount"], items[1]["reason"]) == (2, 900_000, "account_closed")


async def test_old_or_repeated_events_never_overwrite_a_newer_state(aid_registry):
    person = await register(aid_registry)
    p = payment(person["id"], version=4)
    succeeded = PaymentSucceeded(**p)
    await aid_registry.publish(succeeded)
    await history(aid_registry, person["id"], expect=1)
    # A late "sent" (older version), the same event again and a newer failure of another payment.
    await aid_registry.publish(PaymentSent(**{**p, "version": 2}))
    await aid_registry.publish(succeeded)
    other = payment(person["id"], version=3)
    await aid_registry.publish(PaymentFailed(**other, reason="name_mismatch"))
    items = await history(aid_registry, person["id"], expect=2)
    assert {i["payment_id"]: i["status"] for i in items} == {str(p["payment_id"]): "succeeded", str(other["payment_id"]): "failed"}


async def test_a_merged_duplicates_payments_show_under_the_surviving_record(aid_registry):
    survivor, duplicate = await register(aid_registry), await register(aid_registry)
    await aid_registry.publish(PaymentSucceeded(**payment(duplicate["id"], version=3)))
    await history(aid_registry, duplicate["id"], expect=1)
    r = await aid_registry.post(f"/v1/persons/{duplicate['id']}/merge", json={"into_person_id": survivor["id"], "reason": "same person"},
                                headers=SIDOARJO)
    assert r.status_code == 200, r.text
    await aid_registry.publish(PaymentSucceeded(**payment(survivor["id"], version=3, stage=2)))
    items = await history(aid_registry, survivor["id"], expect=2)
    assert {i["person_id"] for i in items} == {survivor["id"], duplicate["id"]}


async def test_the_aid_history_follows_the_region_rule(aid_registry):
    person = await register(aid_registry)
    await aid_registry.publish(PaymentSucceeded(**payment(person["id"], version=3)))
    await history(aid_registry, person["id"], expect=1)
    assert (await aid_registry.get(f"/v1/persons/{person['id']}/aid-history", headers=SURABAYA)).status_code == 404
    assert (await aid_registry.get(f"/v1/persons/{person['id']}/aid-history", headers=NO_READ)).status_code == 403
    assert (await aid_registry.get(f"/v1/persons/{uuid.uuid4()}/aid-history", headers=SIDOARJO)).status_code == 404
