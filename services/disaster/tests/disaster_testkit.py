"""Shared by the disaster tests: tokens, migrations, running an app (and a consumer beside
it), and the steps most tests take."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path

from pilar_kernel.consumer import Consumer
from pilar_kernel.testing import TestKeys, assert_runs, migrate_database, running_app
from sqlalchemy import text

SERVICE_DIR = Path(__file__).resolve().parents[1]
REPO = SERVICE_DIR.parents[1]

KEYS = TestKeys()

_RW = ("disaster:read", "disaster:write")
PROVINCE = KEYS.headers(*_RW, "disaster:admin", subject="dinsos-jatim", user="officer-a")
APPROVER = KEYS.headers(*_RW, "disaster:approve", subject="dinsos-jatim", user="kabid-linjamsos")
LUMAJANG = KEYS.headers(*_RW, "disaster:approve", region="35.08", subject="bpbd-lumajang", user="bpbd-officer")
LUMAJANG_ADMIN = KEYS.headers(*_RW, "disaster:admin", region="35.08", subject="bpbd-lumajang", user="bpbd-admin")
SURABAYA = KEYS.headers(*_RW, region="35.78", subject="dinsos-surabaya")
READER = KEYS.headers("disaster:read", subject="dashboard")

TODAY = date.today()
_seq = itertools.count(1)


def migrate(url: str, service_dir: Path = SERVICE_DIR) -> None:
    migrate_database(service_dir, url)


def write_jwks(directory: Path, keys: TestKeys = KEYS) -> str:
    path = directory / "jwks.json"
    path.write_text(json.dumps(keys.jwks))
    return str(path)


@contextlib.asynccontextmanager
async def disaster_app(url: str, kafka_bootstrap: str, jwks: str) -> AsyncIterator:
    from disaster.app import create_app
    from disaster.settings import Settings

    app = create_app(Settings(env="test", database_url=url, kafka_bootstrap=kafka_bootstrap, jwks_file=jwks, relay_poll_interval_s=0.2))
    async with running_app(app) as client:
        client.app = app
        yield client


@contextlib.asynccontextmanager
async def beside(client, consumer: Consumer, kafka_bootstrap: str) -> AsyncIterator[None]:
    """The app's own ``consumer`` (its composition root wires it): fail if it is not there."""
    assert_runs(client.app, consumer.name)
    yield


async def scalar(client, sql: str, **params):
    async with client.app.state.session_factory() as session:
        return (await session.execute(text(sql), params)).scalar()


def ok(r, status: int = 200) -> dict:
    assert r.status_code == status, r.text
    return r.json()


def problem(r, status: int, rule: str | None = None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    if rule is not None:
        assert rule in {e.get("rule") for e in body.get("errors", [])} | {body.get("rule")}, body
    return body


async def declare(client, *, regency: str = "35.08", district: str = "35.08.01", category: str = "natural", hazard: str = "flood",
                  status: str = "emergency_response", headers=PROVINCE, started: date | None = None) -> dict:
    started = started or TODAY - timedelta(days=10)
    r = await client.post("/v1/incidents", json={
        "name": f"Test incident {next(_seq)}", "category": category, "hazard": hazard, "regency_codes": [regency],
        "district_codes": [district], "started_on": started.isoformat(), "status": status,
        "decree_number": f"188/{next(_seq)}/KPTS/2026", "authority": "regent", "effective_from": started.isoformat(),
    }, headers=headers)
    return ok(r, 201)


async def warehouse(client, level: str = "province", regency: str | None = None, headers=PROVINCE, **extra) -> dict:
    body = {"code": f"WH-{next(_seq)}-{os.getpid()}", "name": f"Gudang {level}", "level": level, "regency_code": regency, **extra}
    return ok(await client.post("/v1/warehouses", json=body, headers=headers), 201)


async def receive(client, warehouse_id: str, lines: list[dict], headers=PROVINCE) -> dict:
    body = {"received_on": TODAY.isoformat(), "source": "APBD Jatim 2026", "lines": lines}
    return ok(await client.post(f"/v1/warehouses/{warehouse_id}/receipts", json=body, headers=headers), 201)


async def approved_request(client, incident_id: str, source: str, target: str, lines: list[dict], requester=LUMAJANG) -> dict:
    rq = ok(await client.post(f"/v1/incidents/{incident_id}/stock-requests",
                              json={"from_warehouse_id": source, "to_warehouse_id": target, "lines": lines}, headers=requester), 201)
    return ok(await client.post(f"/v1/stock-requests/{rq['id']}/approve", json={"version": rq["version"]}, headers=APPROVER))
