"""Webhooks end to end: events published on the real Kafka reach a receiver on 127.0.0.1,
signed (checked by the receiver), filtered by region, retried while the receiver fails, and
the subscription is disabled after persistent failure and resumes when re-enabled."""

from __future__ import annotations

import json
import uuid
from typing import ClassVar

import pytest
from fastapi import FastAPI, Request, Response

from gateway.webhooks import signing
from pilar_contracts.marks import region, registry_only
from pilar_kernel.events import Envelope, Event
from pilar_kernel.kafka import ensure_topics, make_producer

pytestmark = pytest.mark.stack

TAG = uuid.uuid4().hex[:8]
SERVICE = f"gwtest{TAG}"
# One consumer group for the module, as in production: each test's gateway carries on from
# the offsets the previous one committed instead of replaying the topic from the start.
CONSUMER = f"gateway.webhooks.{TAG}"


class CaseOpened(Event):
    """A test case was opened (test event of a made-up service)."""

    ce_type: ClassVar[str] = f"id.go.jatimprov.dinsos.{SERVICE}.case.opened.v1"
    topic: ClassVar[str] = f"{SERVICE}.case"
    key_field: ClassVar[str] = "case_id"

    case_id: str
    regency_code: str | None = region()


class ThingShipped(Event):
    """Goods moved between two stores (names no region: province-wide subscribers only)."""

    ce_type: ClassVar[str] = f"id.go.jatimprov.dinsos.{SERVICE}.thing.shipped.v1"
    topic: ClassVar[str] = f"{SERVICE}.case"
    key_field: ClassVar[str] = "thing_id"

    thing_id: str


class PlanApproved(Event):
    """A province-wide plan was approved (no region, but every regency may follow it)."""

    ce_type: ClassVar[str] = f"id.go.jatimprov.dinsos.{SERVICE}.plan.approved.v1"
    topic: ClassVar[str] = f"{SERVICE}.case"
    key_field: ClassVar[str] = "plan_id"
    PROVINCE_PUBLIC: ClassVar[bool] = True

    plan_id: str


class Receiver:
    """Callback endpoints: each fails a set number of times (or until told), then answers 200."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self.fail: dict[str, int] = {}  # name -> failures left; -1 = fail until changed
        self.received: dict[str, list[dict]] = {}
        self.calls: dict[str, int] = {}
        self.bad_signatures = 0
        self.app = FastAPI()

        @self.app.post("/hook/{name}")
        async def hook(name: str, request: Request) -> Response:
            body = await request.body()
            self.calls[name] = self.calls.get(name, 0) + 1
            if not signing.verify(self.secrets[name], body, request.headers[signing.HEADER]):
                self.bad_signatures += 1
                return Response(status_code=400)
            left = self.fail.get(name, 0)
            if left:
                self.fail[name] = left - 1 if left > 0 else -1
                return Response(status_code=503)
            self.received.setdefault(name, []).append(json.loads(body))
            return Response(status_code=204)


@pytest.fixture(scope="module")
def receiver(serve):
    r = Receiver()
    r.url = serve(r.app).url
    return r


@pytest.fixture
async def gw(run_gateway, kafka_bootstrap):
    await ensure_topics(kafka_bootstrap, [CaseOpened.topic], 3)
    async with run_gateway(
        consumers_enabled=True,
        event_services=[SERVICE],
        webhook_consumer_name=CONSUMER,
        webhook_backoff_s=0.2,
        webhook_backoff_max_s=0.4,
        webhook_disable_after=4,
        webhook_max_attempts=50,
    ) as harness:
        yield harness


async def publish(bootstrap: str, *events: Event, source: str = f"/pilar/{SERVICE}") -> list[str]:
    producer = make_producer(bootstrap, client_id="gateway-test")
    await producer.start()
    ids = []
    try:
        for event in events:
            env = Envelope.for_event(event, source=source)
            await producer.send_and_wait(event.topic, value=env.data, key=env.key, headers=env.headers())
            ids.append(env.id)
    finally:
        await producer.stop()
    return ids


async def subscribe(gw, headers, receiver: Receiver, name: str, **body) -> dict:
    response = await gw.http.post("/v1/webhooks/subscriptions", headers=headers,
                                   json={"callback_url": f"{receiver.url}/hook/{name}", "event_types": [CaseOpened.ce_type], **body})
    assert response.status_code == 201, response.text
    receiver.secrets[name] = response.json()["secret"]
    return response.json()


async def test_subscriptions_are_checked(gw, receiver):
    regional = await gw.bearer("dinsos-sidoarjo", [f"{SERVICE}:read", "gateway:webhooks"], region="35.15")
    types = (await gw.http.get("/v1/webhooks/event-types", headers=regional)).json()
    assert sorted(t["type"] for t in types) == sorted([CaseOpened.ce_type, ThingShipped.ce_type, PlanApproved.ce_type])
    assert next(t for t in types if t["type"] == CaseOpened.ce_type)["regional"] is True
    bad = [
        ({"callback_url": "http://example.org/hook", "event_types": [CaseOpened.ce_type]}, 422),
        ({"callback_url": f"{receiver.url}/hook/x", "event_types": ["id.go.jatimprov.dinsos.nope.thing.done.v1"]}, 422),
        ({"callback_url": f"{receiver.url}/hook/x", "event_types": [CaseOpened.ce_type], "region": "35.16"}, 403),
    ]
    for body, status in bad:
        response = await gw.http.post("/v1/webhooks/subscriptions", headers=regional, json=body)
        assert response.status_code == status, (body, response.text)
    no_scope = await gw.bearer("bank-jatim", ["disbursement:read", "gateway:webhooks"])
    refused = await gw.http.post("/v1/webhooks/subscriptions", headers=no_scope,
                                 json={"callback_url": f"{receiver.url}/hook/x", "event_types": [CaseOpened.ce_type]})
    assert refused.status_code == 403
    created = await subscribe(gw, regional, receiver, "checked")
    assert created["region"] == "35.15", "a regional client's subscription is held to its region"
    assert created["secret"].startswith("whsec_")
    listed = (await gw.http.get("/v1/webhooks/subscriptions", headers=regional)).json()
    assert [s["id"] for s in listed] == [created["id"]] and "secret" not in listed[0]
    assert (await gw.http.get(f"/v1/webhooks/subscriptions/{created['id']}", headers=no_scope)).status_code == 404


async def test_delivery_retries_until_the_receiver_recovers(gw, receiver, kafka_bootstrap, eventually):
    regional = await gw.bearer("dinsos-sidoarjo", [f"{SERVICE}:read", "gateway:webhooks"], region="35.15")
    province = await gw.bearer("dinsos-jatim", [f"{SERVICE}:read", "gateway:webhooks"])
    sub = await subscribe(gw, regional, receiver, "flaky")
    await subscribe(gw, province, receiver, "all")
    receiver.fail["flaky"] = 2

    mine, elsewhere = await publish(
        kafka_bootstrap,
        CaseOpened(case_id="c-1", regency_code="35.15"),
        CaseOpened(case_id="c-2", regency_code="35.16"),
    )

    async def delivered() -> bool:
        return len(receiver.received.get("flaky", [])) >= 1 and len(receiver.received.get("all", [])) >= 2

    await eventually(delivered, timeout=30)
    [event] = receiver.received["flaky"]
    assert event["id"] == mine and event["type"] == CaseOpened.ce_type and event["specversion"] == "1.0"
    assert event["data"] == {"case_id": "c-1", "regency_code": "35.15"} and event["subject"] == "c-1"
    assert {e["id"] for e in receiver.received["all"]} == {mine, elsewhere}, "province-wide gets both regions"
    assert receiver.calls["flaky"] == 3 and receiver.bad_signatures == 0

    # The receiver answers before the gateway records the outcome: wait for the record.
    async def recorded():
        log = (await gw.http.get(f"/v1/webhooks/subscriptions/{sub['id']}/deliveries", headers=regional)).json()
        return log if log and log[0]["status"] != "pending" else None

    log = await eventually(recorded, timeout=10)
    assert [(d["ce_id"], d["status"], d["attempts"]) for d in log] == [(mine, "delivered", 3)]
    attempts = (await gw.http.get(f"/v1/webhooks/subscriptions/{sub['id']}/deliveries/{log[0]['id']}/attempts", headers=regional)).json()
    assert [a["status_code"] for a in attempts] == [503, 503, 204]
    state = (await gw.http.get(f"/v1/webhooks/subscriptions/{sub['id']}", headers=regional)).json()
    assert state["status"] == "active" and state["consecutive_failures"] == 0


async def test_persistent_failure_disables_and_enable_resumes(gw, receiver, kafka_bootstrap, eventually):
    headers = await gw.bearer("dinsos-jatim", [f"{SERVICE}:read", "gateway:webhooks"])
    sub = await subscribe(gw, headers, receiver, "broken")
    receiver.fail["broken"] = -1
    [event_id] = await publish(kafka_bootstrap, CaseOpened(case_id="c-3", regency_code=None))

    async def disabled():
        state = (await gw.http.get(f"/v1/webhooks/subscriptions/{sub['id']}", headers=headers)).json()
        return state if state["status"] == "disabled" else None

    state = await eventually(disabled, timeout=30)
    assert state["disabled_reason"] == "4 delivery attempts failed in a row" and state["consecutive_failures"] == 4
    calls = receiver.calls["broken"]
    [delivery] = (await gw.http.get(f"/v1/webhooks/subscriptions/{sub['id']}/deliveries", headers=headers)).json()
    assert delivery["status"] == "pending" and delivery["last_status_code"] == 503, "kept, not given up"

    receiver.fail["broken"] = 0  # the agency fixes its endpoint, then re-enables
    enabled = await gw.http.post(f"/v1/webhooks/subscriptions/{sub['id']}/enable", headers=headers)
    assert enabled.json()["status"] == "active" and enabled.json()["consecutive_failures"] == 0

    async def received():
        return receiver.received.get("broken")

    [event] = await eventually(received, timeout=15)
    assert event["id"] == event_id and calls == 4, "nothing was sent while disabled"


async def test_nul_and_malformed_filters_are_422_naming_the_field(gw, receiver):
    """Issue 12 item 3: a NUL in a subscription's filter reached PostgreSQL (500)."""
    admin = await gw.bearer("pilar-admin", [f"{SERVICE}:read", "gateway:webhooks", "gateway:admin"])
    good = {"callback_url": f"{receiver.url}/hook/nul", "event_types": [CaseOpened.ce_type]}
    cases = [
        ({**good, "callback_url": f"{receiver.url}/hook/a\u0000b"}, "body.callback_url"),
        ({**good, "event_types": [CaseOpened.ce_type + "\u0000"]}, "body.event_types.0"),
        ({**good, "region": "35.1\u0000"}, "body.region"),
    ]
    for body, field in cases:
        response = await gw.http.post("/v1/webhooks/subscriptions", headers=admin, json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert field in {e["field"] for e in response.json()["errors"]}, response.text
    listed = await gw.http.get("/v1/webhooks/subscriptions", headers=admin, params={"client_id": "dinsos\u0000"})
    assert listed.status_code == 422 and listed.json()["errors"][0]["field"] == "query.client_id", listed.text
    huge = await gw.http.get(f"/v1/webhooks/subscriptions/{uuid.uuid4()}/deliveries", headers=admin, params={"before_id": 10**30})
    assert huge.status_code == 422 and huge.json()["errors"][0]["field"] == "query.before_id", huge.text


async def test_regional_subscription_to_an_event_without_region_is_refused(gw, receiver):
    """An event type that names no region would never reach a regional subscription: refused
    with a 422 naming the type; a province-public one is accepted and delivered to regions."""
    regional = await gw.bearer("dinsos-sidoarjo", [f"{SERVICE}:read", "gateway:webhooks"], region="35.15")
    province = await gw.bearer("dinsos-jatim", [f"{SERVICE}:read", "gateway:webhooks"])
    body = {"callback_url": f"{receiver.url}/hook/ship", "event_types": [CaseOpened.ce_type, ThingShipped.ce_type]}
    refused = await gw.http.post("/v1/webhooks/subscriptions", headers=regional, json=body)
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["errors"]
    assert error["field"] == "body.event_types.1" and error["rule"] == "regional-event-type"
    assert ThingShipped.ce_type in error["message"]
    # The same for a province-wide client that asks for one region.
    narrowed = await gw.http.post("/v1/webhooks/subscriptions", headers=province, json={**body, "region": "35.15"})
    assert narrowed.status_code == 422
    assert (await gw.http.post("/v1/webhooks/subscriptions", headers=province, json=body)).status_code == 201
    public = await gw.http.post("/v1/webhooks/subscriptions", headers=regional,
                                json={**body, "event_types": [PlanApproved.ce_type]})
    assert public.status_code == 201, public.text
    types = {t["type"]: t for t in (await gw.http.get("/v1/webhooks/event-types", headers=regional)).json()}
    assert types[ThingShipped.ce_type]["regional"] is False and types[ThingShipped.ce_type]["region_fields"] == []
    assert types[PlanApproved.ce_type]["province_public"] is True
    assert types[CaseOpened.ce_type]["region_fields"] == ["regency_code"]


# --------------------------------------------------------------------------- the real contracts

REAL_SERVICES = ["disaster", "homeless-return", "disbursement"]


@pytest.fixture
async def gw_real(run_gateway, kafka_bootstrap):
    from pilar_contracts import disaster, disbursement, homeless_return

    topics = {cls.topic for mod in (disaster, disbursement, homeless_return) for cls in vars(mod).values()
              if isinstance(cls, type) and issubclass(cls, Event) and hasattr(cls, "ce_type")}
    await ensure_topics(kafka_bootstrap, sorted(topics), 3)
    async with run_gateway(
        consumers_enabled=True,
        event_services=REAL_SERVICES,
        webhook_consumer_name=f"gateway.webhooks.real.{TAG}",
        webhook_backoff_s=0.2,
        webhook_backoff_max_s=0.4,
    ) as harness:
        yield harness


async def test_regional_agencies_get_every_event_of_their_region(gw_real, receiver, kafka_bootstrap, eventually):
    """Issue 12 item 6: a regency subscribed to incidents (regency_codes), returns (origin_code,
    destination_code), stock and rounds was accepted and never received any of them. And a
    provisional PersonAffected's name, which only the registry may keep, was stored and
    delivered: now no subscriber gets it and the gateway does not keep it."""
    from datetime import UTC, date, datetime

    from gateway.models import webhook_deliveries
    from pilar_contracts.disaster import IncidentDeclared, PersonAffected, StockBelowMinimum, StockShipped
    from pilar_contracts.disbursement import RoundApproved
    from pilar_contracts.homeless_return import ReturnReported

    gw = gw_real
    scopes = ["disaster:read", "homeless-return:read", "disbursement:read", "gateway:webhooks"]
    regional = await gw.bearer("dinsos-sidoarjo", scopes, region="35.15")
    province = await gw.bearer("dinsos-jatim", scopes)
    types = [IncidentDeclared.ce_type, PersonAffected.ce_type, StockBelowMinimum.ce_type, RoundApproved.ce_type,
             ReturnReported.ce_type]
    name = f"real-{TAG}"
    for who, headers in (("regional", regional), ("province", province)):
        response = await gw.http.post("/v1/webhooks/subscriptions", headers=headers,
                                      json={"callback_url": f"{receiver.url}/hook/{name}-{who}", "event_types": types})
        assert response.status_code == 201, response.text
        receiver.secrets[f"{name}-{who}"] = response.json()["secret"]
    shipped = await gw.http.post("/v1/webhooks/subscriptions", headers=regional,
                                 json={"callback_url": f"{receiver.url}/hook/x", "event_types": [StockShipped.ce_type]})
    assert shipped.status_code == 422 and shipped.json()["errors"][0]["field"] == "body.event_types.0"

    u = uuid.uuid4
    today, now = date(2026, 12, 1), datetime(2026, 12, 1, 8, tzinfo=UTC)
    incident = IncidentDeclared(incident_id=u(), category="natural", hazard="flood", regency_codes=["35.16", "35.15"],
                                status="emergency_response", decree_number=None, authority=None, effective_from=today,
                                effective_until=None, version=1, district_codes=["35.16.01"], started_on=today)
    neighbour = incident.model_copy(update={"incident_id": u(), "regency_codes": ["35.16"]})
    person = PersonAffected(affected_person_id=u(), incident_id=incident.incident_id, incident_category="natural",
                            hazard="flood", household_id=None, person_id=None, nik_hash=None, regency_code="35.15",
                            district_code="35.15.01", damage_level="heavy", condition="unharmed", displaced=True,
                            flags=[], sex="F", name="Siti Aminah", birth_date=date(1980, 1, 2), village_code="35.15.01.2001")
    stock_province = StockBelowMinimum(warehouse_id=u(), regency_code=None, item_code="rice", on_hand=1, minimum=5, raised_at=now)
    stock_mine = StockBelowMinimum(warehouse_id=u(), regency_code="35.15", item_code="rice", on_hand=1, minimum=5, raised_at=now)
    round_ = RoundApproved(round_id=u(), programme_code="PKH", year=2026, stage=1, sk_number="SK-1", amount_per_beneficiary=1,
                           ceiling=1, payee_count=1, planned_amount=1, period_start=today, period_end=today, channel="bank")
    home = ReturnReported(return_id=u(), person_id=None, nik_hash=None, direction="inbound", origin_code="73.71",
                          destination_code="35.15", cause="out_of_money", flags=[], found_on=today, found_regency_code=None,
                          referred_by="police", sending_province_code="73", departure_due_on=today)
    away = home.model_copy(update={"return_id": u(), "destination_code": "35.17"})

    ids = {}
    for source, events in (("/pilar/disaster", [incident, neighbour, person, stock_province, stock_mine]),
                           ("/pilar/disbursement", [round_]), ("/pilar/homeless-return", [home, away])):
        for event, ce_id in zip(events, await publish(kafka_bootstrap, *events, source=source), strict=True):
            ids[ce_id] = event
    wanted_regional = {i for i, e in ids.items() if e in (incident, person, stock_mine, round_, home)}

    async def arrived():
        got = {e["id"] for e in receiver.received.get(f"{name}-regional", [])}
        everything = {e["id"] for e in receiver.received.get(f"{name}-province", [])}
        return got >= wanted_regional and everything >= set(ids)

    await eventually(arrived, timeout=40)
    # Other tests of the run publish on the same topics: judge only the events published here.
    got = {e["id"]: e for e in receiver.received[f"{name}-regional"] if e["id"] in ids}
    assert set(got) == wanted_regional, "exactly the events naming a region within 35.15, and the province's round"
    every = {e["id"]: e for e in receiver.received[f"{name}-province"] if e["id"] in ids}
    for delivered in (got, every):
        [affected] = [e for e in delivered.values() if e["type"] == PersonAffected.ce_type]
        assert not {"name", "birth_date", "village_code"} & set(affected["data"]), affected["data"]
        assert affected["data"]["regency_code"] == "35.15"
    async with gw.app.state.session_factory() as session:
        bodies = (await session.execute(webhook_deliveries.select().where(webhook_deliveries.c.ce_type == PersonAffected.ce_type))).all()
    assert bodies and all(b"Siti Aminah" not in bytes(row.body) for row in bodies), "the gateway keeps no name"


async def test_migration_scrubs_names_already_stored(gateway_database):
    """Bodies stored before the fix lose the registry-only fields (revision 0003)."""
    import os
    import subprocess
    import sys

    import asyncpg

    from .conftest import GATEWAY_DIR

    url = gateway_database()
    raw = url.replace("postgresql+asyncpg://", "postgresql://")
    person = "id.go.jatimprov.dinsos.disaster.person.affected.v1"
    body = json.dumps({"id": "e1", "type": person, "data": {"regency_code": "35.15", "name": "Siti", "birth_date": "1980-01-02",
                                                               "village_code": "35.15.01.2001", "sex": "F"}}).encode()
    conn = await asyncpg.connect(raw)
    try:
        await conn.execute("INSERT INTO clients (client_id, name, secret_hash, scopes) VALUES ('c1', 'c1', 'x', '{disaster:read}')")
        sub = uuid.uuid4()
        await conn.execute("INSERT INTO webhook_subscriptions (id, client_id, callback_url, event_types, secret) "
                           "VALUES ($1, 'c1', 'https://x.org', $2, 'x')", sub, [person])
        await conn.execute("INSERT INTO webhook_deliveries (subscription_id, ce_id, ce_type, body) VALUES ($1, 'e1', $2, $3)",
                           sub, person, body)
        env = {**os.environ, "PILAR_DATABASE_URL": url}
        for step in (["downgrade", "0002"], ["upgrade", "head"]):
            subprocess.run([sys.executable, "-m", "alembic", *step], cwd=GATEWAY_DIR, env=env, check=True, capture_output=True)
        stored = json.loads(await conn.fetchval("SELECT body FROM webhook_deliveries WHERE ce_id = 'e1'"))
    finally:
        await conn.close()
    assert stored["data"] == {"regency_code": "35.15", "sex": "F"} and stored["id"] == "e1"
