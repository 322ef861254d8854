"""The whole way home across two services on one Kafka: the registry knows a person, the
homeless-return service matches them by NIK hash through its projection, takes them in,
verifies, relays them to Kalimantan Timur via Kalimantan Selatan, and the registry sees the
completed return; an unresolved case without a NIK becomes a provisional PPKS record."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import select

from homeless_return import domain
from homeless_return.models import KnownPerson
from homeless_return_testkit import KEYS, PROVINCE, REGISTRY_DIR, ago, homeless_app, intake, migrate
from pilar_kernel.nik import make_nik
from pilar_kernel.pii import nik_hash
from pilar_kernel.settings import DEV_SECRET
from pilar_kernel.testing import assert_runs, eventually, running_app

pytestmark = pytest.mark.stack

REGISTRY = KEYS.headers("registry:read", "registry:write", subject="dinsos-jatim")


@asynccontextmanager
async def registry_app(url: str, kafka: str, jwks: str):
    """The registry app, which runs its consumer of return events itself."""
    from registry.app import create_app
    from registry.returns import consumer as returns
    from registry.settings import Settings

    settings = Settings(env="test", database_url=url, kafka_bootstrap=kafka, jwks_file=jwks, relay_poll_interval_s=0.2)
    app = create_app(settings)
    async with running_app(app) as client:
        client.app = app
        assert_runs(app, returns.NAME)
        yield client


@pytest.fixture(scope="module")
async def platform(new_database, kafka_bootstrap, jwks):
    registry_url, homeless_url = new_database("registry"), new_database("homeless_return")
    # Both migrations at once: each is a subprocess that mostly waits on imports.
    await asyncio.gather(asyncio.to_thread(migrate, registry_url, REGISTRY_DIR), asyncio.to_thread(migrate, homeless_url))
    async with registry_app(registry_url, kafka_bootstrap, jwks) as registry, homeless_app(homeless_url, kafka_bootstrap, jwks) as homeless:
        yield registry, homeless


async def ok(response, status=200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


async def test_relay_return_is_seen_by_the_registry(platform):
    registry, homeless = platform
    today = domain.local_date(datetime.now(UTC)).isoformat()
    number = make_nik("64.72.01", date(1985, 6, 20), "M", 77)
    person = await ok(await registry.post("/v1/persons", headers=REGISTRY, json={
        "nik": number, "name": "Joko Prasetyo", "sex": "M", "birth_date": "1985-06-20", "ppks": ["fakir_miskin"]}), 201)

    # The registry's event reaches the projection: the NIK hash now finds the person.
    async def projected():
        async with homeless.app.state.session_factory() as s:
            return (await s.exec(select(KnownPerson).where(KnownPerson.nik_hash == nik_hash(number, DEV_SECRET)))).first()

    assert str((await eventually(projected)).person_id) == person["id"]

    case = await ok(await homeless.post("/v1/returns", headers=PROVINCE, json=intake(
        nik=number, name="Joko Prasetyo", birth_date="1985-06-20", origin_code="64.72", cause="job_scam", documents="police_certificate",
        found_at=ago(hours=12))), 201)
    assert case["person_id"] == person["id"]
    cid = case["id"]
    await ok(await homeless.post(f"/v1/returns/{cid}/care-stays", headers=PROVINCE,
                                 json={"facility_type": "upt", "facility_name": "UPT Rehabilitasi Sosial", "admitted_on": today}), 201)
    await ok(await homeless.post(f"/v1/returns/{cid}/counselling", headers=PROVINCE,
                                 json={"held_on": today, "counsellor": "Bu Rina", "topic": "job offers and scams"}), 201)
    await ok(await homeless.put(f"/v1/returns/{cid}/destination", headers=PROVINCE,
                                json={"destination_code": "64.72", "family_contact_name": "Ibu Sri", "family_contact_phone": "0813-5555-0000"}))
    await ok(await homeless.post(f"/v1/returns/{cid}/verification", headers=PROVINCE, json={"note": "Dinsos Kaltim confirmed the family"}))
    sails = datetime.now(UTC) - timedelta(hours=6)
    scheduled = await ok(await homeless.post(f"/v1/returns/{cid}/schedule", headers=PROVINCE, json={"legs": [
        {"mode": "ship", "ticket_cost": 420_000, "escort": "Pak Hadi", "departure_at": sails.isoformat()},
        {"mode": "bus", "ticket_cost": 180_000, "escort": "Pak Hadi", "departure_at": (sails + timedelta(hours=3)).isoformat()},
    ]}))
    assert [(leg["from_code"], leg["to_code"]) for leg in scheduled["legs"]] == [("35", "63"), ("63", "64.72")]
    await ok(await homeless.post(f"/v1/returns/{cid}/legs/1/departure", headers=PROVINCE, json={"departed_at": ago(hours=5)}))
    relayed = await ok(await homeless.post(f"/v1/returns/{cid}/legs/1/handover", headers=PROVINCE, json={
        "handed_over_at": ago(hours=3), "handover_document_no": "BAST/KALSEL/0412", "received_by": "Dinsos Kalimantan Selatan"}))
    assert relayed["status"] == "in_transit"
    await ok(await homeless.post(f"/v1/returns/{cid}/legs/2/departure", headers=PROVINCE, json={"departed_at": ago(hours=2)}))
    done = await ok(await homeless.post(f"/v1/returns/{cid}/legs/2/handover", headers=PROVINCE, json={
        "handed_over_at": ago(minutes=10), "handover_document_no": "BAST/KALTIM/0077", "received_by": "Dinsos Kota Samarinda"}))
    assert done["status"] == "returned" and done["total_cost"] == 600_000 and done["within_standard"] is True

    # The registry records the return: known domicile and the job-scam category.
    async def updated():
        r = await registry.get(f"/v1/persons/{person['id']}", headers=REGISTRY)
        return r.json() if "pekerja_migran_bermasalah_sosial" in r.json()["ppks"] else None

    seen = await eventually(updated)
    assert seen["ppks"] == ["fakir_miskin", "pekerja_migran_bermasalah_sosial"] and seen["version"] == 2
    async with registry.app.state.session_factory() as s:
        from registry.persons.models import Person

        row = (await s.exec(select(Person).where(Person.id == uuid.UUID(person["id"])))).one()
    assert row.domicile_note.startswith("64.72 Kota Samarinda: returned home by Simlontar Rek") and cid in row.domicile_note

    # A stranger without a NIK who could not be returned becomes a provisional PPKS record.
    lost = await ok(await homeless.post("/v1/returns", headers=PROVINCE, json=intake(
        name="Wati", sex="F", birth_date="2001-02-03", cause="suspected_trafficking")), 201)
    await ok(await homeless.post(f"/v1/returns/{lost['id']}/unresolved", headers=PROVINCE, json={"reason": "no home could be found"}))

    async def provisional():
        r = await registry.get("/v1/persons?ppks=korban_trafficking&limit=500", headers=REGISTRY)
        return [p for p in r.json()["items"] if p["name"] == f"Tanpa nama (Simlontar Rek {lost['id']})"]

    [record] = await eventually(provisional)
    assert record["provisional_id"].startswith("PRV-") and record["ppks"] == ["gelandangan", "korban_trafficking"]
    assert (record["sex"], record["birth_date"]) == ("F", "2001-02-03")


async def test_the_projection_follows_registry_merges(platform):
    registry, homeless = platform
    verifier = KEYS.headers("registry:read", "registry:write", "registry:verify", subject="dinsos-jatim")
    first, second = make_nik("35.78.01", date(1990, 1, 5), "M", 81), make_nik("35.78.01", date(1990, 1, 5), "M", 82)
    a = await ok(await registry.post("/v1/persons", headers=REGISTRY, json={"nik": first, "name": "Dedi", "sex": "M", "birth_date": "1990-01-05"}), 201)
    b = await ok(await registry.post("/v1/persons", headers=REGISTRY, json={"nik": second, "name": "Dedi Kurniawan", "sex": "M", "birth_date": "1990-01-05"}), 201)

    async def case_of(number):
        r = await homeless.post("/v1/returns", headers=PROVINCE, json=intake(nik=number, name="Dedi", birth_date="1990-01-05"))
        return r.json() if r.json()["person_id"] else None

    case = await eventually(lambda: case_of(first))
    assert case["person_id"] == a["id"]
    await ok(await registry.post(f"/v1/persons/{a['id']}/merge", headers=verifier, json={"into_person_id": b["id"], "reason": "one person, NIK issued twice"}))

    async def moved():
        r = await homeless.get(f"/v1/returns/{case['id']}", headers=PROVINCE)
        return r.json()["person_id"] == b["id"]

    await eventually(moved)
    # The old NIK now leads to the surviving record.
    again = await ok(await homeless.post("/v1/returns", headers=PROVINCE, json=intake(nik=first, name="Dedi", birth_date="1990-01-05")), 201)
    assert again["person_id"] == b["id"]
