"""The HTTP conventions every service inherits from the kernel's app factory, on a test app
backed by real PostgreSQL and Kafka: tokens and scopes, problem+json, one commit per
request (nothing half-written), Idempotency-Key, health/ready/metrics, correlation ids."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from kernelkit import event_class, metadata, things
from pilar_kernel.auth import require_scopes
from pilar_kernel.db import SessionDep
from pilar_kernel.events import Envelope
from pilar_kernel.idempotency import idempotent
from pilar_kernel.kafka import ensure_topics, make_consumer
from pilar_kernel.outbox import add_event
from pilar_kernel.problems import NotFound, RuleViolation
from pilar_kernel.service import ServiceSpec, create_service_app
from pilar_kernel.settings import ServiceSettings
from pilar_kernel.tables import outbox
from pilar_kernel.testing import TestKeys, create_schema, running_app

pytestmark = pytest.mark.stack
KEYS = TestKeys()
ThingCreated = event_class("http")


class ThingIn(BaseModel):
    id: str = Field(min_length=1, max_length=40)
    seq: int = Field(ge=0)


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.post("/things", status_code=201)
    async def create_thing(body: ThingIn, request: Request, session: SessionDep, principal=require_scopes("things:write")):
        async def produce():
            await session.execute(things.insert().values(id=body.id, seq=body.seq))
            await add_event(session, ThingCreated(thing_id=body.id, seq=body.seq), source="/pilar/kerneltest")
            if body.seq == 99:  # a rule checked after the writes: everything must roll back
                raise RuleViolation("seq", "99 is reserved", rule="reserved-seq")
            return {"id": body.id, "seq": body.seq, "nonce": uuid.uuid4().hex}

        return await idempotent(request, session, principal, produce)

    @router.get("/things/{thing_id}")
    async def get_thing(thing_id: str, session: SessionDep, principal=require_scopes("things:read")):
        row = (await session.execute(select(things).where(things.c.id == thing_id))).first()
        if row is None:
            raise NotFound(f"no thing {thing_id}")
        return {"id": row.id, "seq": row.seq}

    return router


@pytest.fixture(scope="module")
async def client(new_database, kafka_bootstrap, tmp_path_factory):
    url = new_database("http")
    await create_schema(url, metadata)
    await ensure_topics(kafka_bootstrap, [ThingCreated.topic], 3)
    jwks = tmp_path_factory.mktemp("keys") / "jwks.json"
    jwks.write_text(json.dumps(KEYS.jwks))
    settings = ServiceSettings(
        service_name="kerneltest", env="test", database_url=url, kafka_bootstrap=kafka_bootstrap,
        jwks_file=str(jwks), relay_poll_interval_s=0.2, log_json=True,
    )
    app = create_service_app(ServiceSpec(name="kerneltest", title="kernel test", routers=[build_router()]), settings)
    async with running_app(app) as c:
        c.app = app
        yield c


async def count(client, table) -> int:
    async with client.app.state.session_factory() as s:
        return (await s.execute(select(func.count()).select_from(table))).scalar_one()


WRITE = KEYS.headers("things:write", "things:read")


async def test_missing_or_bad_token_is_401_problem(client):
    r = await client.get("/v1/things/x")
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["type"].endswith("/unauthorized")
    r = await client.get("/v1/things/x", headers={"Authorization": "Bearer nonsense"})
    assert r.status_code == 401


async def test_missing_scope_is_403_naming_it(client):
    r = await client.post("/v1/things", json={"id": "a", "seq": 1}, headers=KEYS.headers("things:read"))
    assert r.status_code == 403 and r.json()["required_scopes"] == ["things:write"]


async def test_validation_error_names_the_field(client):
    r = await client.post("/v1/things", json={"id": "", "seq": -1}, headers=WRITE)
    assert r.status_code == 422
    body = r.json()
    assert r.headers["content-type"] == "application/problem+json"
    assert {e["field"] for e in body["errors"]} == {"body.id", "body.seq"}


async def test_create_commits_row_and_event_which_reaches_kafka(client, kafka_bootstrap):
    r = await client.post("/v1/things", json={"id": "t-1", "seq": 1}, headers=WRITE)
    assert r.status_code == 201, r.text
    assert (await client.get("/v1/things/t-1", headers=WRITE)).json() == {"id": "t-1", "seq": 1}
    consumer = make_consumer(kafka_bootstrap, group_id=f"reader-{uuid.uuid4().hex[:6]}")
    await consumer.start()
    consumer.subscribe([ThingCreated.topic])
    try:
        got = []
        for _ in range(60):
            batch = await consumer.getmany(timeout_ms=500)
            got += [Envelope.from_kafka(m).event() for ms in batch.values() for m in ms]
            if any(e.thing_id == "t-1" for e in got):
                break
        assert ThingCreated(thing_id="t-1", seq=1) in got
    finally:
        await consumer.stop()


async def test_rule_broken_after_writes_leaves_nothing_behind(client):
    rows_before, events_before = await count(client, things), await count(client, outbox)
    r = await client.post("/v1/things", json={"id": "t-99", "seq": 99}, headers=WRITE)
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "seq", "message": "99 is reserved", "rule": "reserved-seq"}]
    assert (await client.get("/v1/things/t-99", headers=WRITE)).status_code == 404
    assert (await count(client, things), await count(client, outbox)) == (rows_before, events_before)


async def test_idempotency_key_replays_and_refuses_a_different_body(client):
    headers = {**WRITE, "Idempotency-Key": "key-1"}
    first = await client.post("/v1/things", json={"id": "t-idem", "seq": 2}, headers=headers)
    again = await client.post("/v1/things", json={"id": "t-idem", "seq": 2}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()  # same nonce: the first response, not a second run
    assert again.headers.get("idempotent-replayed") == "true"
    other = await client.post("/v1/things", json={"id": "t-other", "seq": 3}, headers=headers)
    assert other.status_code == 422 and other.json()["type"].endswith("/idempotency-key-reused")
    # Another client may use the same key string for its own request.
    mine = {**KEYS.headers("things:write", subject="another-client"), "Idempotency-Key": "key-1"}
    assert (await client.post("/v1/things", json={"id": "t-mine", "seq": 1}, headers=mine)).status_code == 201


async def test_concurrent_duplicate_posts_with_one_key_create_one_record(client):
    headers = {**WRITE, "Idempotency-Key": "key-race"}
    before = await count(client, things)
    results = await asyncio.gather(*(client.post("/v1/things", json={"id": "t-race", "seq": 5}, headers=headers) for _ in range(5)))
    assert {r.status_code for r in results} == {201}
    assert len({r.json()["nonce"] for r in results}) == 1
    assert await count(client, things) == before + 1


async def test_duplicate_without_key_is_a_conflict_problem_not_a_500(client):
    await client.post("/v1/things", json={"id": "t-dup", "seq": 1}, headers=WRITE)
    r = await client.post("/v1/things", json={"id": "t-dup", "seq": 1}, headers=WRITE)
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"


async def test_health_ready_metrics_and_correlation_id(client):
    assert (await client.get("/health")).json()["status"] == "ok"
    ready = await client.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "kafka": "ok"}
    r = await client.get("/v1/things/nope", headers={**WRITE, "X-Correlation-Id": "corr-123"})
    assert r.headers["x-correlation-id"] == "corr-123"
    assert r.headers["traceparent"].startswith("00-")
    metrics = (await client.get("/metrics")).text
    assert 'pilar_http_requests_total{method="GET",route="/v1/things/{thing_id}",service="kerneltest",status="404"}' in metrics
    assert "pilar_outbox_published_total" in metrics


async def test_a_crashing_background_worker_is_restarted(new_database, kafka_bootstrap):
    runs: list[int] = []

    class Flaky:
        def __init__(self, app) -> None:
            self.stopped = asyncio.Event()

        async def run(self) -> None:
            runs.append(1)
            if len(runs) < 3:
                raise RuntimeError("boom")
            await self.stopped.wait()

        async def stop(self) -> None:
            self.stopped.set()

    url = new_database("workers")
    await create_schema(url)
    settings = ServiceSettings(service_name="kerneltest", env="test", database_url=url, kafka_bootstrap=kafka_bootstrap, relay_enabled=False)
    app = create_service_app(ServiceSpec(name="kerneltest", title="t", workers=[Flaky]), settings)
    async with running_app(app):
        for _ in range(100):
            if len(runs) >= 3:
                break
            await asyncio.sleep(0.1)
    assert len(runs) == 3, "restarted after each crash, then ran until stopped"
