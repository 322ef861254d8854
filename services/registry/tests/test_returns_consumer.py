"""The registry's consumer of Simlontar Rek events, against real Kafka and PostgreSQL:
a completed return updates the person's known domicile and PPKS flags (found by id, by NIK
hash, through a merge), an unresolved case becomes a PPKS record (provisional when the
person is unknown), and a redelivered event changes nothing twice."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, text
from sqlmodel import select

from pilar_contracts.homeless_return import SOURCE, ReturnCompleted, ReturnUnresolved
from pilar_kernel.events import Envelope
from pilar_kernel.kafka import ensure_topics, make_producer
from pilar_kernel.nik import make_nik
from pilar_kernel.pii import nik_hash
from pilar_kernel.settings import DEV_SECRET
from pilar_kernel.tables import inbox, outbox
from pilar_kernel.testing import assert_runs, eventually
from registry.persons.models import Person
from registry.returns import consumer as returns
from registry_testkit import KEYS

pytestmark = pytest.mark.stack

PROVINCE = KEYS.headers("registry:read", "registry:write", "registry:verify", subject="dinsos-jatim")
_serial = iter(range(4000, 9999))


@asynccontextmanager
async def returns_consumer(client, kafka: str):
    """The registry app runs this consumer itself: fail if it is not wired."""
    assert_runs(client.app, returns.NAME)
    yield


@pytest.fixture(scope="module")
async def consuming(registry, kafka_bootstrap):
    await ensure_topics(kafka_bootstrap, ["homeless_return.return"], registry.app.state.settings.topic_partitions)
    producer = make_producer(kafka_bootstrap, client_id="test-homeless-return")
    await producer.start()

    async def publish(event, envelope: Envelope | None = None) -> Envelope:
        env = envelope or Envelope.for_event(event, source=SOURCE)
        await producer.send_and_wait(event.topic, value=env.data, key=event.aggregate_id.encode(), headers=env.headers())
        return env

    async with returns_consumer(registry, kafka_bootstrap):
        yield publish
    await producer.stop()


def _base(**kw) -> dict:
    out = {"return_id": uuid.uuid4(), "person_id": None, "nik_hash": None, "direction": "outbound", "origin_code": "64.72",
           "destination_code": "64.72", "cause": "out_of_money", "flags": []}
    out.update(kw)
    return out


def completed(**kw) -> ReturnCompleted:
    now = datetime.now(UTC)
    return ReturnCompleted(**_base(**kw), returned_at=now, departed_at=now - timedelta(days=2), within_standard=True, leg_count=2, total_cost=600_000)


def unresolved(**kw) -> ReturnUnresolved:
    extra = {"sex": kw.pop("sex", "M"), "birth_date": kw.pop("birth_date", None), "found_regency_code": "35.78"}
    return ReturnUnresolved(**_base(**kw), unresolved_at=datetime.now(UTC), **extra)


async def register(client, **body) -> dict:
    r = await client.post("/v1/persons", json={"name": "Joko Prasetyo", "sex": "M", **body}, headers=PROVINCE)
    assert r.status_code == 201, r.text
    return r.json()


async def with_nik(client, **body) -> tuple[dict, str]:
    number = make_nik("64.72.01", date(1985, 6, 20), "M", next(_serial))
    return await register(client, nik=number, birth_date="1985-06-20", **body), nik_hash(number, DEV_SECRET)


async def person_row(client, person_id) -> Person:
    async with client.app.state.session_factory() as s:
        return (await s.exec(select(Person).where(Person.id == uuid.UUID(str(person_id))))).one()


async def applied(client, env: Envelope) -> bool:
    async with client.app.state.session_factory() as s:
        return (await s.execute(select(func.count()).select_from(inbox).where(inbox.c.consumer == returns.NAME, inbox.c.ce_id == env.id))).scalar_one() == 1


async def test_completed_return_sets_domicile_and_flags_once(registry, consuming):
    person, _ = await with_nik(registry, ppks=["fakir_miskin"])
    event = completed(person_id=uuid.UUID(person["id"]), cause="job_scam")
    env = await consuming(event)
    await consuming(event, env)  # delivered twice: applied once
    await eventually(lambda: applied(registry, env))
    row = await eventually(lambda: _when_changed(registry, person["id"]))
    assert row.ppks == ["fakir_miskin", "pekerja_migran_bermasalah_sosial"]
    assert row.domicile_note.startswith("64.72 Kota Samarinda: returned home by Simlontar Rek on ")
    assert str(event.return_id) in row.domicile_note
    await asyncio.sleep(1)
    assert (await person_row(registry, person["id"])).version == 2
    async with registry.app.state.session_factory() as s:
        updates = (await s.execute(
            select(outbox.c.payload).where(outbox.c.message_key == person["id"], outbox.c.ce_type.like("%person.updated.v1"))
        )).all()
    assert len(updates) == 1 and b'"changed":["domicile_note","ppks"]' in updates[0].payload


async def _when_changed(client, person_id):
    row = await person_row(client, person_id)
    return row if row.version > 1 else None


async def test_completed_return_found_by_nik_hash_or_through_a_merge(registry, consuming):
    person, digest = await with_nik(registry)
    await consuming(completed(nik_hash=digest, flags=["repeat_claimant"]))
    row = await eventually(lambda: _when_changed(registry, person["id"]))
    assert row.ppks == ["gelandangan"]

    survivor, _ = await with_nik(registry)
    old = await register(registry, provisional=True, name="Tanpa Identitas")
    r = await registry.post(f"/v1/persons/{old['id']}/merge", json={"into_person_id": survivor["id"], "reason": "identified by KTP"}, headers=PROVINCE)
    assert r.status_code == 200, r.text
    await consuming(completed(person_id=uuid.UUID(old["id"]), cause="suspected_trafficking", flags=["suspected_trafficking"]))

    async def survivor_flagged():
        row = await person_row(registry, survivor["id"])
        return row if "korban_trafficking" in row.ppks else None

    row = await eventually(survivor_flagged)
    assert row.domicile_note.startswith("64.72")


async def test_unresolved_case_becomes_a_ppks_record(registry, consuming):
    async with registry.app.state.session_factory() as s:
        before = (await s.execute(select(func.count()).select_from(Person))).scalar_one()
    # Unknown to the registry and no NIK: a provisional record.
    event = unresolved(cause="suspected_trafficking", flags=["suspected_trafficking"], sex="F", birth_date=date(2001, 2, 3))
    await consuming(event)
    name = f"Tanpa nama (Simlontar Rek {event.return_id})"

    async def created():
        async with registry.app.state.session_factory() as s:
            return (await s.exec(select(Person).where(Person.name == name))).first()

    row = await eventually(created)
    assert row.provisional_id.startswith("PRV-") and row.nik_hash is None
    assert (row.sex, row.birth_date, row.ppks) == ("F", date(2001, 2, 3), ["gelandangan", "korban_trafficking"])
    assert row.domicile_note.startswith("stranded in 35.78 Kota Surabaya")
    # With a NIK the registry does not know: the provisional record keeps its hash (never the NIK).
    hashed = unresolved(cause="job_scam", sex="M", nik_hash="e" * 64)
    await consuming(hashed)

    async def kept():
        async with registry.app.state.session_factory() as s:
            return (await s.exec(select(Person).where(Person.nik_hash == "e" * 64))).first()

    row = await eventually(kept)
    assert row.provisional_id.startswith("PRV-") and row.nik_enc is None and str(hashed.return_id) in row.name
    # A completed return of someone the registry does not know creates nothing.
    stranger = await consuming(completed(nik_hash="0" * 64))
    await eventually(lambda: applied(registry, stranger))
    # Known: the person gets the categories instead of a new record.
    person, digest = await with_nik(registry)
    await consuming(unresolved(nik_hash=digest, cause="job_scam"))
    row = await eventually(lambda: _when_changed(registry, person["id"]))
    assert row.ppks == ["gelandangan", "pekerja_migran_bermasalah_sosial"]
    async with registry.app.state.session_factory() as s:
        after = (await s.execute(select(func.count()).select_from(Person))).scalar_one()
        provisional = (await s.execute(text("SELECT count(*) FROM person WHERE name LIKE 'Tanpa nama (Simlontar Rek %'"))).scalar_one()
    assert after == before + 3 and provisional == 2  # the two provisional records and the one registered here
