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
    regency_code: str | None


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


async def publish(bootstrap: str, *events: Event) -> list[str]:
    producer = make_producer(bootstrap, client_id="gateway-test")
    await producer.start()
    ids = []
    try:
        for event in events:
            env = Envelope.for_event(event, source=f"/pilar/{SERVICE}")
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
    assert [t["type"] for t in types] == [CaseOpened.ce_type] and types[0]["regional"] is True
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
