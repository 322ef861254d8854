"""Shelter → registry, end to end on one Kafka: a shelter discharge with the survivor's consent
to economic support becomes an enrolment proposal in the registry; a discharge without a
programme, a survivor with no registry record, an ineligible person and a second referral of
the same person propose nothing (and are not dead-lettered)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import uuid
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import text

from pilar_kernel.nik import make_nik
from pilar_kernel.testing import assert_runs, eventually, running_app
from registry.referrals.events import shelter_referrals
from registry_testkit import KEYS

pytestmark = pytest.mark.stack

OFFICER = KEYS.headers("registry:read", "registry:write", region="35.15", subject="dinsos-sidoarjo", user="officer-a")
READER = KEYS.headers("registry:read", subject="dinsos-jatim", user="kabid")
SHELTER_ADMIN = KEYS.headers("shelter:admin", subject="dinsos-jatim", user="admin-1")
CASEWORKER = KEYS.headers("shelter:caseworker", subject="shelter-app", user="cw-referrals")
CONSENTS = [{"kind": k, "granted": True, "given_by": "survivor"} for k in ("services", "partner_sharing", "registry_enrolment")]
_serial = itertools.count(500)


@pytest.fixture(scope="module")
async def shelter(new_database, kafka_bootstrap, tmp_path_factory):
    """The shelter service on its own database, same Kafka and token keys as the registry."""
    from shelter.app import MIGRATIONS, create_app
    from shelter.settings import Settings

    url = new_database("shelter_ref")
    subprocess.run([sys.executable, "-m", "pilar_kernel.prestart"], cwd=Path(MIGRATIONS).parent,
                   env={**os.environ, "PILAR_DATABASE_URL": url}, check=True, capture_output=True)
    jwks = tmp_path_factory.mktemp("shelter-ref-keys") / "jwks.json"
    jwks.write_text(json.dumps(KEYS.jwks))
    settings = Settings(env="test", database_url=url, kafka_bootstrap=kafka_bootstrap, jwks_file=str(jwks), relay_poll_interval_s=0.2)
    app = create_app(settings)
    async with running_app(app) as client:
        client.app = app
        yield client


@pytest.fixture(scope="module")
async def referrals_running(registry, kafka_bootstrap):
    """The registry's shelter-referral consumer, which the registry app runs itself."""
    assert_runs(registry.app, shelter_referrals.name)
    yield


async def register_person(registry, decile: int) -> str:
    born = date(1988, 6, 2)
    body = {"nik": make_nik("35.15.14", born, "F", next(_serial)), "name": "Siti Rahayu", "birth_date": born.isoformat(), "sex": "F",
            "village_code": "35.15.14.2001", "decile": decile, "decile_date": "2026-01-01"}
    r = await registry.post("/v1/persons", json=body, headers=OFFICER)
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def discharge_with(shelter, person_id: str | None, programme: str | None) -> str:
    """Open a case for the survivor, give her a bed, discharge her (with a programme or not);
    returns the ``ce_id`` of the discharge event."""
    body = {"survivor": {"name": "Siti Rahayu", "birth_date": "1988-06-02", "sex": "F", "regency_code": "35.15"},
            "referral_source": "upt_ppa", "registry_person_id": person_id, "consents": CONSENTS}
    r = await shelter.post("/v1/cases", json=body, headers=CASEWORKER)
    assert r.status_code == 201, r.text
    case_id = r.json()["id"]
    assert (await shelter.post(f"/v1/cases/{case_id}/admission", headers=CASEWORKER)).status_code == 201
    r = await shelter.post(f"/v1/cases/{case_id}/discharge", json={"economic_support_programme": programme}, headers=CASEWORKER)
    assert r.status_code == 200, r.text
    async with shelter.app.state.session_factory() as s:
        sql = "SELECT ce_id::text FROM outbox WHERE message_key = :k AND ce_type LIKE '%.discharged.v1'"
        return (await s.execute(text(sql), {"k": case_id})).scalar_one()


async def enrolments(registry, person_id: str) -> list[dict]:
    r = await registry.get(f"/v1/persons/{person_id}/enrolments", headers=READER)
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def handled(registry, ce_ids: list[str]) -> bool:
    """Whether the consumer applied every one of these events (its inbox row commits with the handler)."""
    async with registry.app.state.session_factory() as s:
        sql = "SELECT count(*) FROM inbox WHERE consumer = :c AND ce_id = ANY(:ids)"
        return (await s.execute(text(sql), {"c": shelter_referrals.name, "ids": ce_ids})).scalar_one() == len(ce_ids)


async def test_a_consented_discharge_becomes_an_enrolment_proposal(registry, shelter, referrals_running):
    r = await shelter.post("/v1/shelters", json={"name": "Shelter Sidoarjo", "kind": "women", "regency_code": "35.15", "capacity": 10},
                           headers=SHELTER_ADMIN)
    assert r.status_code == 201, r.text
    r = await shelter.post("/v1/staff", json={"user_id": "cw-referrals", "name": "Caseworker", "role": "caseworker", "shelter_id": r.json()["id"]},
                           headers=SHELTER_ADMIN)
    assert r.status_code == 201, r.text

    poor, better_off = await register_person(registry, decile=2), await register_person(registry, decile=9)
    await discharge_with(shelter, poor, "KUBE")
    proposed = await eventually(lambda: enrolments(registry, poor), timeout=60)
    assert [(e["programme_code"], e["status"], e["proposed_by"]) for e in proposed] == [("KUBE", "proposed", "system:social-referral")]
    assert proposed[0]["regency_code"] == "35.15"

    ce_ids = [
        await discharge_with(shelter, poor, "KUBE"),  # referred again: the open proposal stands alone
        await discharge_with(shelter, better_off, "KUBE"),  # decile 9: KUBE is for deciles 1-4
        await discharge_with(shelter, str(uuid.uuid4()), "KUBE"),  # a person id the registry does not know
        await discharge_with(shelter, None, "KUBE"),  # no registry record
        await discharge_with(shelter, poor, None),  # no economic support asked for
    ]
    # Each was applied, none dead-lettered: refusals are outcomes, not errors.
    await eventually(lambda: handled(registry, ce_ids), timeout=60)
    assert len(await enrolments(registry, poor)) == 1
    assert await enrolments(registry, better_off) == []
