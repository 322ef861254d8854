"""Beds against capacity, against real PostgreSQL: admissions racing for the last bed cannot
both succeed, the counter always equals the open stays, and a discharge with consent to
economic support carries the registry person id and the programme on its event."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from shelter_testkit import ADMIN, ALL_CONSENTS, new_team, open_case

pytestmark = pytest.mark.stack


async def scalar(client, sql: str, **params):
    async with client.app.state.session_factory() as s:
        return (await s.execute(text(sql), params)).scalar_one()


async def occupancy(client, shelter_id: str) -> tuple[int, int]:
    counter = await scalar(client, "SELECT occupied FROM shelter WHERE id = CAST(:i AS uuid)", i=shelter_id)
    stays = await scalar(client, "SELECT count(*) FROM stay WHERE shelter_id = CAST(:i AS uuid) AND discharged_at IS NULL", i=shelter_id)
    return counter, stays


def admit(client, team, case_id):
    return client.post(f"/v1/cases/{case_id}/admission", headers=team.caseworker.h)


async def test_two_admissions_racing_for_the_last_bed_one_wins(shelter_api):
    for _ in range(5):  # several rounds, each a fresh one-bed shelter
        team = await new_team(shelter_api, capacity=1)
        a, b = [(await open_case(shelter_api, team))["id"] for _ in range(2)]
        results = await asyncio.gather(admit(shelter_api, team, a), admit(shelter_api, team, b))
        assert sorted(r.status_code for r in results) == [201, 409]
        loser = next(r for r in results if r.status_code == 409).json()
        assert loser["errors"][0]["rule"] == "bed.full"
        assert await occupancy(shelter_api, team.id) == (1, 1)


async def test_many_admissions_fill_the_shelter_exactly(shelter_api):
    team = await new_team(shelter_api, capacity=3)
    cases = [(await open_case(shelter_api, team))["id"] for _ in range(8)]
    results = await asyncio.gather(*(admit(shelter_api, team, c) for c in cases))
    assert sorted(r.status_code for r in results) == [201] * 3 + [409] * 5
    assert await occupancy(shelter_api, team.id) == (3, 3)
    shelter = (await shelter_api.get(f"/v1/shelters/{team.id}", headers=ADMIN)).json()
    assert (shelter["capacity"], shelter["occupied"]) == (3, 3)

    # Capacity cannot shrink below the beds in use; the database refuses it too.
    r = await shelter_api.patch(f"/v1/shelters/{team.id}", json={"version": shelter["version"], "capacity": 2}, headers=ADMIN)
    assert r.status_code == 409 and r.json()["errors"][0]["rule"] == "shelter.capacity"
    with pytest.raises(IntegrityError):
        async with shelter_api.app.state.session_factory() as s, s.begin():
            await s.execute(text("UPDATE shelter SET occupied = capacity + 1 WHERE id = CAST(:i AS uuid)"), {"i": team.id})

    # A discharge frees a bed for the next admission.
    admitted = [c for c, r in zip(cases, results) if r.status_code == 201]
    waiting = [c for c, r in zip(cases, results) if r.status_code == 409]
    r = await shelter_api.post(f"/v1/cases/{admitted[0]}/discharge", json={}, headers=team.caseworker.h)
    assert r.status_code == 200 and r.json()["discharged_at"]
    assert await occupancy(shelter_api, team.id) == (2, 2)
    assert (await admit(shelter_api, team, waiting[0])).status_code == 201
    assert (await admit(shelter_api, team, waiting[1])).status_code == 409
    assert await occupancy(shelter_api, team.id) == (3, 3)


async def test_one_case_holds_one_bed_and_a_discharge_needs_a_stay(shelter_api):
    team = await new_team(shelter_api, capacity=5)
    case_id = (await open_case(shelter_api, team))["id"]
    results = await asyncio.gather(*(admit(shelter_api, team, case_id) for _ in range(3)))
    assert sorted(r.status_code for r in results) == [201, 409, 409]
    assert {r.json()["errors"][0]["rule"] for r in results if r.status_code == 409} == {"bed.admitted"}
    assert await occupancy(shelter_api, team.id) == (1, 1)
    assert (await shelter_api.post(f"/v1/cases/{case_id}/discharge", json={}, headers=team.caseworker.h)).status_code == 200
    r = await shelter_api.post(f"/v1/cases/{case_id}/discharge", json={}, headers=team.caseworker.h)
    assert r.status_code == 409 and r.json()["errors"][0]["rule"] == "bed.not_admitted"
    stays = (await shelter_api.get(f"/v1/cases/{case_id}/stays", headers=team.caseworker.h)).json()
    assert len(stays) == 1 and stays[0]["discharged_at"]


async def test_a_discharge_proposes_economic_support_only_with_consent(shelter_api):
    team = await new_team(shelter_api)
    person_id = str(uuid.uuid4())
    no_consent = [c for c in ALL_CONSENTS if c["kind"] != "registry_enrolment"]
    refused = (await open_case(shelter_api, team, consents=no_consent, person_id=person_id))["id"]
    consented = (await open_case(shelter_api, team, person_id=person_id))["id"]
    unknown = (await open_case(shelter_api, team))["id"]  # no registry record
    for case_id in (refused, consented, unknown):
        assert (await admit(shelter_api, team, case_id)).status_code == 201
    kube = {"economic_support_programme": "KUBE"}
    r = await shelter_api.post(f"/v1/cases/{refused}/discharge", json=kube, headers=team.caseworker.h)
    assert r.status_code == 422 and r.json()["errors"][0]["rule"] == "consent.registry_enrolment"
    for case_id in (consented, unknown):
        r = await shelter_api.post(f"/v1/cases/{case_id}/discharge", json=kube, headers=team.caseworker.h)
        assert r.status_code == 200 and r.json()["economic_support_programme"] == "KUBE"
    r = await shelter_api.post(f"/v1/cases/{refused}/discharge", json={"economic_support_programme": "kube!"}, headers=team.caseworker.h)
    assert r.status_code == 422

    async def discharged(case_id):
        payload = await scalar(shelter_api, "SELECT payload FROM outbox WHERE message_key = :k AND ce_type LIKE '%discharged.v1'", k=case_id)
        return json.loads(payload)

    assert (await discharged(consented))["economic_support"] == {"person_id": person_id, "programme_code": "KUBE"}
    assert (await discharged(unknown))["economic_support"] == {"person_id": None, "programme_code": "KUBE"}
    assert "violence_types" not in await discharged(consented)  # the person travels apart from the case's details
