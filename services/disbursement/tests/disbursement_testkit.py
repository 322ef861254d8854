"""Shared by the disbursement tests (and the benchmark): tokens, migrations, the bank simulator
process, an in-process HTTP server, and a direct way to fill the payable population."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import date
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI
from pilar_kernel.events import Envelope, Event
from pilar_kernel.kafka import ensure_topics, make_producer
from pilar_kernel.testing import TestKeys, migrate_database
from sqlalchemy import text

SERVICE_DIR = Path(__file__).resolve().parents[1]
REPO = SERVICE_DIR.parents[1]
REGISTRY_DIR = REPO / "services" / "registry"
BANKSIM_SRC = REPO / "deploy" / "banksim" / "src"

KEYS = TestKeys()
BANK_SECRET = "test-bank-hmac-secret"

_R = ("disbursement:read",)
ADMIN = KEYS.headers(*_R, "disbursement:programme-admin", subject="dinsos-jatim", user="admin-1")
PREPARER = KEYS.headers(*_R, "disbursement:prepare", subject="dinsos-jatim", user="officer-a")
PREPARER_B = KEYS.headers(*_R, "disbursement:prepare", subject="dinsos-jatim", user="officer-b")
APPROVER = KEYS.headers(*_R, "disbursement:approve", subject="dinsos-jatim", user="kabid-linjamsos")
# Holds both scopes: the four-eyes rule must stop it approving what it prepared.
PREPARER_APPROVER = KEYS.headers(*_R, "disbursement:prepare", "disbursement:approve", subject="dinsos-jatim", user="officer-a")
SIDOARJO = KEYS.headers(*_R, region="35.15", subject="dinsos-sidoarjo")
SURABAYA = KEYS.headers(*_R, region="35.78", subject="dinsos-surabaya")
SIDOARJO_PREPARER = KEYS.headers(*_R, "disbursement:prepare", region="35.15", subject="dinsos-sidoarjo")
BANK_TOKEN = KEYS.token("bank-jatim", ["disbursement:bank-callback"], ttl_s=4 * 3600)
BANK = {"Authorization": f"Bearer {BANK_TOKEN}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def migrate(url: str, service_dir: Path = SERVICE_DIR) -> None:
    migrate_database(service_dir, url)


def write_jwks(directory: Path) -> str:
    path = directory / "jwks.json"
    path.write_text(json.dumps(KEYS.jwks))
    return str(path)


# -- the bank simulator, a separate process -----------------------------------------------


class BankSim:
    """Runs ``python -m banksim`` on a free port; its knobs change through ``PUT /v1/config``."""

    def __init__(self, *, log_path: Path, **config: object) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BANKSIM_SRC), os.environ.get("PYTHONPATH", "")]),
               "BANKSIM_HMAC_SECRET": BANK_SECRET, "BANKSIM_CALLBACK_TOKEN": BANK_TOKEN}
        env.update({f"BANKSIM_{k.upper()}": str(v) for k, v in config.items()})
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "banksim", "--port", str(self.port)], env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the bank simulator did not start (see {log_path})")
            time.sleep(0.1)

    async def configure(self, **changes: object) -> None:
        async with httpx.AsyncClient() as client:
            r = await client.put(self.url + "/v1/config", json=changes)
            r.raise_for_status()

    async def stats(self) -> dict:
        async with httpx.AsyncClient() as client:
            return (await client.get(self.url + "/v1/stats")).json()

    async def statement(self) -> str:
        async with httpx.AsyncClient() as client:
            return (await client.get(self.url + "/v1/statement")).text

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


@contextlib.asynccontextmanager
async def serve(app: FastAPI, port: int) -> AsyncIterator[httpx.AsyncClient]:
    """Serve ``app`` over real HTTP in this event loop (the bank simulator must reach it)."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the server stopped while starting")
        await asyncio.sleep(0.05)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            yield client
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def publisher(bootstrap: str, source: str, topics: Iterable[str]):
    """Publish events straight to Kafka as another service's relay would (CloudEvents headers)."""
    await ensure_topics(bootstrap, list(topics), 3)
    producer = make_producer(bootstrap, client_id="disbursement-test-publisher")
    await producer.start()

    async def publish(event: Event) -> None:
        env = Envelope.for_event(event, source=source)
        await producer.send_and_wait(event.topic, value=env.data, key=env.key, headers=env.headers())

    try:
        yield publish
    finally:
        await producer.stop()


# -- the payable population, filled directly -----------------------------------------------


async def add_payables(
    session_factory,
    programme: str,
    n: int = 1,
    *,
    regency: str = "35.15",
    active_from: date = date(2026, 1, 1),
    person_ids: Iterable[uuid.UUID] | None = None,
) -> list[uuid.UUID]:
    """Put ``n`` persons with an active enrolment in ``programme`` straight into the projection."""
    ids = list(person_ids) if person_ids is not None else [uuid.uuid4() for _ in range(n)]
    async with session_factory() as session, session.begin():
        await session.execute(
            text(
                """
                INSERT INTO payee_person (person_id, nik_hash, regency_code, status)
                SELECT p, md5(p::text) || md5(p::text), :r, 'active' FROM unnest(CAST(:ids AS uuid[])) AS p
                ON CONFLICT (person_id) DO NOTHING
                """
            ),
            {"ids": ids, "r": regency},
        )
        await session.execute(
            text(
                """
                INSERT INTO payee_enrolment (enrolment_id, person_id, programme_code, regency_code, status, active_from)
                SELECT gen_random_uuid(), p, :code, :r, 'active', :f FROM unnest(CAST(:ids AS uuid[])) AS p
                """
            ),
            {"ids": ids, "code": programme, "r": regency, "f": active_from},
        )
    return ids


async def scalar(session_factory, sql: str, **params):
    async with session_factory() as session:
        return (await session.execute(text(sql), params)).scalar()


# -- API steps shared by the tests ------------------------------------------------------

_code = itertools.count(1)


def assert_problem(r, status, rule=None):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    if rule:
        assert rule in {e.get("rule") for e in body.get("errors", [])} | {body.get("rule")}, body
    return body


async def new_programme(client, *, exclusive_with=(), budget=10_000_000_000, year=2026) -> str:
    code = f"TEST_{next(_code)}"
    r = await client.post("/v1/programmes", json={"code": code, "name": f"Test programme {code}", "exclusive_with": list(exclusive_with)},
                          headers=ADMIN)
    assert r.status_code == 201, r.text
    r = await client.put(f"/v1/programmes/{code}/budgets/{year}", json={"amount": budget}, headers=ADMIN)
    assert r.status_code == 200, r.text
    return code


async def new_round(client, code, *, amount=900_000, ceiling=9_000_000, year=2026, stage=1, start=date(2026, 4, 1),
                    end=date(2026, 6, 30), channel="bank") -> dict:
    r = await client.post(
        "/v1/rounds",
        json={"programme_code": code, "year": year, "stage": stage, "amount": amount, "ceiling": ceiling,
              "period_start": start.isoformat(), "period_end": end.isoformat(), "channel": channel},
        headers=PREPARER,
    )
    assert r.status_code == 201, r.text
    return r.json()


async def snapshot(client, rnd, headers=PREPARER) -> dict:
    r = await client.post(f"/v1/rounds/{rnd['id']}/snapshot", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def approve(client, rnd, sk="SK 188/123/KPTS/013/2026", headers=APPROVER):
    return await client.post(f"/v1/rounds/{rnd['id']}/approve", json={"sk_number": sk, "snapshot_version": rnd["snapshot_version"]},
                             headers=headers)


async def approved_round(client, code, **kw) -> dict:
    rnd = await snapshot(client, await new_round(client, code, **kw))
    r = await approve(client, rnd)
    assert r.status_code == 200, r.text
    return r.json()
