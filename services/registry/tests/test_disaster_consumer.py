"""The registry's consumer of the disaster service's affected-person events, against real
Kafka and PostgreSQL: a known person (by id, by NIK hash, through a merge) gets the disaster
victim's PPKS category (natural or social), an unknown one becomes a provisional record
with it, nobody is registered from a death report, and a redelivery changes nothing twice."""

from __future__ import annotations

import json
import uuid
from contextlib import asynccontextmanager
from datetime import date

import pytest
from sqlalchemy import func, text
from sqlmodel import select

from pilar_contracts.disaster import SOURCE, PersonAffected
from pilar_kernel.events import Envelope
from pilar_kernel.kafka import ensure_topics, make_producer
from pilar_kernel.nik import make_nik
from pilar_kernel.pii import nik_hash
from pilar_kernel.settings import DEV_SECRET
from pilar_kernel.tables import inbox, outbox
from pilar_kernel.testing import assert_runs, eventually
from registry.disasters import consumer as disasters
from registry.persons.models import Person
from registry_testkit import KEYS

pytestmark = pytest.mark.stack

PROVINCE = KEYS.headers("registry:read", "registry:write", "registry:verify", subject="dinsos-jatim")
_serial = iter(range(2000, 3999))


@asynccontextmanager
async def disasters_consumer(client, kafka: str):
    """The registry app runs this consumer itself: fail if it is not wired."""
    assert_runs(client.app, disasters.NAME)
    yield


@pytest.fixture(scope="module")
async def publish(registry, kafka_bootstrap):
    await ensure_topics(kafka_bootstrap, ["disaster.person"], registry.app.state.settings.topic_partitions)
    producer = make_producer(kafka_bootstrap, client_id="test-disaster")
    await producer.start()

    async def send(event, envelope: Envelope | None = None) -> Envelope:
        env = envelope or Envelope.for_event(event, source=SOURCE)
        await producer.send_and_wait(event.topic, value=env.data, key=event.aggregate_id.encode(), headers=env.headers())
        return env

    async with disasters_consumer(registry, kafka_bootstrap):
        yield send
    await producer.stop()


def affected(**kw) -> PersonAffected:
    out = {"affected_person_id": uuid.uuid4(), "incident_id": uuid.uuid4(), "incident_category": "natural", "hazard": "flood",
           "household_id": None, "person_id": None, "nik_hash": None, "regency_code": "35.08", "district_code": "35.08.01",
           "damage_level": "heavy", "condition": "unharmed", "displaced": True, "flags": [], "sex": "M"}
    out.update(kw)
    return PersonAffected(**out)


async def with_nik(client, **body) -> tuple[dict, str]:
    number = make_nik("35.08.01", date(1970, 3, 4), "M", next(_serial))
    r = await client.post("/v1/persons", json={"name": "Suparman", "sex": "M", "nik": number, "birth_date": "1970-03-04", **body}, headers=PROVINCE)
    assert r.status_code == 201, r.text
    return r.json(), nik_hash(number, DEV_SECRET)


async def row(client, person_id) -> Person:
    async with client.app.state.session_factory() as s:
        return (await s.exec(select(Person).where(Person.id == uuid.UUID(str(person_id))))).one()


async def applied(client, env: Envelope) -> bool:
    async with client.app.state.session_factory() as s:
        return (await s.execute(select(func.count()).select_from(inbox).where(inbox.c.consumer == disasters.NAME, inbox.c.ce_id == env.id))).scalar_one() == 1


async def test_a_known_person_is_flagged_once_by_id_or_nik_hash(registry, publish):
    person, digest = await with_nik(registry, ppks=["fakir_miskin"])
    env = await publish(affected(person_id=uuid.UUID(person["id"]), nik_hash=digest))
    await publish(affected(), env)  # delivered twice (same ce_id): applied once
    flagged = await eventually(lambda: _flagged(registry, person["id"], "korban_bencana_alam"))
    assert flagged.ppks == ["fakir_miskin", "korban_bencana_alam"] and flagged.version == 2
    # The same person affected by a social disaster, found by NIK hash alone (the disaster service had not matched them).
    await publish(affected(nik_hash=digest, incident_category="social", hazard="conflict"))
    flagged = await eventually(lambda: _flagged(registry, person["id"], "korban_bencana_sosial"))
    assert flagged.ppks == ["fakir_miskin", "korban_bencana_alam", "korban_bencana_sosial"]
    # Already flagged: a further event changes nothing and announces nothing.
    again = await publish(affected(nik_hash=digest))
    await eventually(lambda: applied(registry, again))
    assert (await row(registry, person["id"])).version == 3
    async with registry.app.state.session_factory() as s:
        updates = (await s.execute(select(func.count()).select_from(outbox).where(
            outbox.c.message_key == person["id"], outbox.c.ce_type.like("%person.updated.v1")))).scalar_one()
    assert updates == 2


async def _flagged(client, person_id, category):
    found = await row(client, person_id)
    return found if category in found.ppks else None


async def test_a_merged_record_sends_the_flag_to_the_survivor(registry, publish):
    survivor, _ = await with_nik(registry)
    r = await registry.post("/v1/persons", json={"name": "Tanpa Identitas", "sex": "M", "provisional": True}, headers=PROVINCE)
    old = r.json()
    r = await registry.post(f"/v1/persons/{old['id']}/merge", json={"into_person_id": survivor["id"], "reason": "identified by KTP"}, headers=PROVINCE)
    assert r.status_code == 200, r.text
    await publish(affected(person_id=uuid.UUID(old["id"])))
    await eventually(lambda: _flagged(registry, survivor["id"], "korban_bencana_alam"))


async def test_an_unknown_person_becomes_a_provisional_record_but_not_from_a_death_report(registry, publish):
    async with registry.app.state.session_factory() as s:
        before = (await s.execute(select(func.count()).select_from(Person))).scalar_one()
    event = affected(name="Wagiman", sex="M", birth_date=date(1961, 7, 1), village_code="35.08.01.2001", flags=["elderly"],
                     nik_hash="f" * 64)
    env = await publish(event)
    await publish(event, env)  # redelivered: one record
    dead = await publish(affected(name="Ponirah", sex="F", condition="dead"))
    nameless = affected(sex="F", incident_category="social", hazard="conflict")
    await publish(nameless)

    async def created():
        async with registry.app.state.session_factory() as s:
            return (await s.exec(select(Person).where(Person.name.in_(["Wagiman", f"Tanpa nama (bencana {nameless.incident_id})"])))).all()

    rows = {p.name: p for p in await eventually(lambda: _both(created))}
    wagiman = rows["Wagiman"]
    # Issue 12: the hash was dropped and the event named no affected person, so the disaster
    # service could never link the record (and the household's emergency cash stayed held).
    assert wagiman.provisional_id.startswith("PRV-") and wagiman.nik_hash == "f" * 64 and wagiman.nik_enc is None
    registered = await registered_event(registry, wagiman.id)
    assert registered["affected_person_id"] == str(event.affected_person_id)
    assert registered["nik_hash"] == "f" * 64 and registered["provisional"] is True
    assert "name" not in registered
    assert (wagiman.sex, wagiman.birth_date, wagiman.ppks) == ("M", date(1961, 7, 1), ["korban_bencana_alam"])
    assert (wagiman.village_code, wagiman.district_code, wagiman.regency_code) == ("35.08.01.2001", "35.08.01", "35.08")
    assert str(event.affected_person_id) in wagiman.domicile_note
    assert rows[f"Tanpa nama (bencana {nameless.incident_id})"].ppks == ["korban_bencana_sosial"]
    await eventually(lambda: applied(registry, dead))
    async with registry.app.state.session_factory() as s:
        after = (await s.execute(select(func.count()).select_from(Person))).scalar_one()
        ponirah = (await s.execute(text("SELECT count(*) FROM person WHERE name = 'Ponirah'"))).scalar_one()
    assert after == before + 2 and ponirah == 0


async def registered_event(client, person_id) -> dict:
    async with client.app.state.session_factory() as s:
        payload = (await s.execute(select(outbox.c.payload).where(
            outbox.c.message_key == str(person_id), outbox.c.ce_type.like("%person.registered.v1")))).scalar_one()
    return json.loads(payload)


async def test_registering_the_nik_completes_the_provisional_record_a_disaster_report_opened(registry, publish):
    """The provisional record holds the NIK's hash; registering that NIK later must not be
    refused as a duplicate: it completes the record, which keeps its id."""
    number = make_nik("35.08.01", date(1984, 2, 9), "F", next(_serial))
    digest = nik_hash(number, DEV_SECRET)
    event = affected(name="Sumiati", sex="F", birth_date=date(1984, 2, 9), village_code="35.08.01.2001", nik_hash=digest)
    await publish(event)

    async def opened():
        async with registry.app.state.session_factory() as s:
            return (await s.exec(select(Person).where(Person.nik_hash == digest))).first()

    provisional = await eventually(opened)
    assert provisional.nik_enc is None and provisional.provisional_id
    # The NIK finds the provisional record already (by its hash).
    r = await registry.post("/v1/persons/lookup", json={"nik": number}, headers=PROVINCE)
    assert r.status_code == 200 and r.json()["id"] == str(provisional.id) and r.json()["nik"] is None
    r = await registry.post("/v1/persons", headers=PROVINCE, json={
        "nik": number, "name": "Sumiati binti Karto", "sex": "F", "village_code": "35.08.01.2001", "decile": 3, "decile_date": "2026-01-01"})
    assert r.status_code == 201, r.text
    done = r.json()
    assert done["id"] == str(provisional.id) and done["nik"] == "3508********" + number[-4:] and done["nik_masked"]
    assert done["name"] == "Sumiati binti Karto" and done["birth_date"] == "1984-02-09" and done["decile"] == 3
    assert done["ppks"] == ["korban_bencana_alam"] and done["version"] == provisional.version + 1
    async with registry.app.state.session_factory() as s:
        changed = (await s.execute(select(outbox.c.payload).where(
            outbox.c.message_key == str(provisional.id), outbox.c.ce_type.like("%person.updated.v1")))).scalars().all()
    assert any("nik" in json.loads(p)["changed"] for p in changed)
    # Now a full record: registering the NIK again is a duplicate.
    again = await registry.post("/v1/persons", headers=PROVINCE, json={"nik": number, "name": "Sumiati", "sex": "F"})
    assert again.status_code == 409 and again.json()["errors"][0]["rule"] == "nik.unique"


async def _both(created):
    rows = await created()
    return rows if len(rows) == 2 else None
