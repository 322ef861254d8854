"""From Kafka to the agencies' callback URLs.

1. One kernel consumer (``gateway.webhooks``) reads every topic of the catalogued events. For
   each event it finds the active subscriptions to that type whose client still holds a
   scope of the publishing service and whose region covers one of the regions the event
   names (every field its contract marks as a region: ``regency_code``, ``regency_codes``,
   ``origin_code``, ``destination_code`` ...; a province-public event goes to every region),
   and writes one delivery row each (in the inbox transaction, so a redelivered event adds
   nothing). Fields the contract marks registry-only (a name, a birth date) are dropped
   from the body before it is stored: the gateway never keeps nor delivers them.
2. The delivery worker claims due rows (``FOR UPDATE SKIP LOCKED``, with a lease so a crash
   only delays them), POSTs each as a signed CloudEvent (structured JSON), logs the attempt,
   and on failure schedules a retry with exponential back-off. A delivery that keeps
   failing is marked failed; a subscription whose attempts keep failing is disabled (and
   re-enabled by API, which resumes its pending deliveries). A 410 Gone disables it at once.

Delivery is at least once and not ordered: receivers deduplicate on the event ``id``.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog
from fastapi import FastAPI
from prometheus_client import Counter
from sqlalchemy import any_, case, literal, select, text, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from pilar_contracts.marks import province_public, regions_of, registry_only_fields
from pilar_kernel.consumer import Consumer
from pilar_kernel.events import Envelope, Event
from pilar_kernel.http import EXTERNAL_KEEPALIVE_EXPIRY_S, async_client

from ..events import service_of
from ..models import clients, webhook_attempts, webhook_deliveries, webhook_subscriptions
from ..settings import Settings
from . import signing

log = structlog.get_logger("gateway.webhooks")

DELIVERIES = Counter("pilar_gateway_webhook_attempts_total", "Webhook delivery attempts by outcome", ["outcome"])
USER_AGENT = "pilar-gateway-webhooks/1"


def region_covers(region: str | None, regency_code: str | None) -> bool:
    """A province-wide subscription gets every event; a regional one only events in its region."""
    if region is None:
        return True
    return bool(regency_code) and (regency_code == region or regency_code.startswith(region + "."))


def delivered_to(client_region: str | None, subscription_region: str | None, codes: list[str], public: bool) -> bool:
    """Whether an event naming ``codes`` goes to a subscription: a province-public event to
    every one; otherwise one of the event's regions must be within the client's region and
    the subscription's (a province-wide one takes everything; an event naming no region
    goes only to province-wide ones)."""
    if public or (client_region is None and subscription_region is None):
        return True
    return any(region_covers(client_region, code) and region_covers(subscription_region, code) for code in codes)


def backoff_s(attempts: int, base: float, cap: float) -> float:
    """Delay before the next attempt after ``attempts`` failures, with +-20% jitter."""
    return min(cap, base * 2 ** max(0, attempts - 1)) * random.uniform(0.8, 1.2)


def cloudevent_body(env: Envelope, drop: tuple[str, ...] = ()) -> bytes:
    """The event in CloudEvents structured JSON, as the receiver gets it (and as it is signed),
    without the ``drop`` fields (those the contract reserves for the registry)."""
    doc: dict[str, Any] = {
        "specversion": "1.0",
        "id": env.id,
        "source": env.source,
        "type": env.type,
        "time": env.time.isoformat(),
        "datacontenttype": "application/json",
    }
    if env.subject is not None:
        doc["subject"] = env.subject
    if env.traceparent:
        doc["traceparent"] = env.traceparent
    data = env.json()
    doc["data"] = {k: v for k, v in data.items() if k not in drop} if drop and isinstance(data, dict) else data
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def build_consumer(settings: Settings, event_classes: list[type[Event]]) -> Consumer | None:
    """One consumer for every catalogued event type (None when there is none)."""
    consumer = Consumer(name=settings.webhook_consumer_name)

    async def enqueue(session: AsyncSession, event: Event, env: Envelope) -> None:
        service = service_of(env.type)
        prefixes = settings.scope_prefixes_of(service) if service else ()
        codes = regions_of(event)
        public = province_public(type(event))
        drop = registry_only_fields(type(event))
        rows = (
            await session.execute(
                select(webhook_subscriptions.c.id, webhook_subscriptions.c.region, clients.c.scopes, clients.c.region.label("client_region"))
                .join(clients, clients.c.client_id == webhook_subscriptions.c.client_id)
                .where(
                    webhook_subscriptions.c.status == "active",
                    literal(env.type) == any_(webhook_subscriptions.c.event_types),
                    clients.c.revoked_at.is_(None),
                )
            )
        ).all()
        body = None
        for row in rows:
            if not any(scope.startswith(prefixes) for scope in row.scopes):
                continue  # the client lost its scopes for this service
            if not delivered_to(row.client_region, row.region, codes, public):
                continue
            body = body or cloudevent_body(env, drop)
            await session.execute(
                pg_insert(webhook_deliveries)
                .values(subscription_id=row.id, ce_id=env.id, ce_type=env.type, body=body)
                .on_conflict_do_nothing()
            )

    for cls in event_classes:
        consumer.on(cls)(enqueue)
    return consumer if consumer.handlers else None


CLAIM = text(
    """
    WITH due AS (
        SELECT d.id FROM webhook_deliveries d
        JOIN webhook_subscriptions s ON s.id = d.subscription_id
        WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND s.status = 'active'
        ORDER BY d.next_attempt_at
        LIMIT :limit
        FOR UPDATE OF d SKIP LOCKED
    )
    UPDATE webhook_deliveries d
    SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => :lease)
    FROM due WHERE d.id = due.id
    RETURNING d.id, d.subscription_id, d.ce_id, d.ce_type, d.body, d.attempts
    """
)


class DeliveryWorker:
    """Sends due deliveries; one per gateway process (replicas share the work through SKIP LOCKED)."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app
        self._stopping = asyncio.Event()
        self._last_purge = 0.0

    async def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        settings: Settings = self._app.state.settings
        timeout = httpx.Timeout(settings.webhook_timeout_s, connect=min(5.0, settings.webhook_timeout_s))
        # Receivers are not our servers: idle connections go before a common 5 s keep-alive.
        async with async_client(timeout=timeout, keepalive_expiry=EXTERNAL_KEEPALIVE_EXPIRY_S, follow_redirects=False) as http:
            while not self._stopping.is_set():
                sent = await self.deliver_due(http)
                if time.monotonic() - self._last_purge > 3600:
                    await self.purge()
                if not sent:
                    try:
                        await asyncio.wait_for(self._stopping.wait(), timeout=settings.webhook_poll_s)
                    except TimeoutError:
                        pass

    async def deliver_due(self, http: httpx.AsyncClient) -> int:
        settings: Settings = self._app.state.settings
        sessions = self._app.state.session_factory
        cipher = self._app.state.gateway.cipher
        lease = settings.webhook_timeout_s * 2 + 30
        async with sessions() as session, session.begin():
            claimed = (await session.execute(CLAIM.bindparams(limit=settings.webhook_concurrency * 4, lease=lease))).all()
            if not claimed:
                return 0
            subs = {
                r.id: r
                for r in (
                    await session.execute(
                        select(webhook_subscriptions.c.id, webhook_subscriptions.c.callback_url, webhook_subscriptions.c.secret).where(
                            webhook_subscriptions.c.id.in_({c.subscription_id for c in claimed})
                        )
                    )
                ).all()
            }
        limit = asyncio.Semaphore(settings.webhook_concurrency)

        async def one(delivery: Any) -> None:
            sub = subs[delivery.subscription_id]
            secret = cipher.decrypt(sub.secret, aad=f"webhook:{sub.id}")
            async with limit:
                status, error, elapsed_ms = await self._post(http, sub.callback_url, secret, delivery)
            await self._record(delivery, status, error, elapsed_ms)

        await asyncio.gather(*(one(d) for d in claimed))
        return len(claimed)

    async def _post(self, http: httpx.AsyncClient, url: str, secret: str, delivery: Any) -> tuple[int | None, str | None, int]:
        body = bytes(delivery.body)
        headers = {
            "Content-Type": "application/cloudevents+json; charset=utf-8",
            "User-Agent": USER_AGENT,
            signing.HEADER: signing.signature(secret, body, int(time.time())),
            "X-Pilar-Delivery": str(delivery.id),
            "X-Pilar-Subscription": str(delivery.subscription_id),
            "X-Pilar-Event-Type": delivery.ce_type,
        }
        started = time.perf_counter()
        try:
            response = await http.post(url, content=body, headers=headers)
            await response.aclose()
            status, error = response.status_code, None if response.is_success else f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            status, error = None, f"{type(exc).__name__}: {str(exc)[:200]}"
        return status, error, int((time.perf_counter() - started) * 1000)

    async def _record(self, delivery: Any, status: int | None, error: str | None, elapsed_ms: int) -> None:
        settings: Settings = self._app.state.settings
        now = datetime.now(UTC)
        ok = error is None
        DELIVERIES.labels("delivered" if ok else "failed").inc()
        async with self._app.state.session_factory() as session, session.begin():
            await session.execute(
                webhook_attempts.insert().values(delivery_id=delivery.id, attempt=delivery.attempts, status_code=status, error=error, duration_ms=elapsed_ms)
            )
            subs = webhook_subscriptions.c
            if ok:
                await session.execute(
                    update(webhook_deliveries)
                    .where(webhook_deliveries.c.id == delivery.id)
                    .values(status="delivered", delivered_at=now, last_status_code=status, last_error=None)
                )
                await session.execute(
                    update(webhook_subscriptions).where(subs.id == delivery.subscription_id, subs.consecutive_failures != 0).values(consecutive_failures=0)
                )
                return
            gave_up = delivery.attempts >= settings.webhook_max_attempts
            await session.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id == delivery.id)
                .values(
                    status="failed" if gave_up else "pending",
                    next_attempt_at=now + timedelta(seconds=backoff_s(delivery.attempts, settings.webhook_backoff_s, settings.webhook_backoff_max_s)),
                    last_status_code=status,
                    last_error=error,
                )
            )
            failures = subs.consecutive_failures + 1
            if status == 410:
                disable, reason = true(), "the receiver answered 410 Gone"
            else:
                disable, reason = failures >= settings.webhook_disable_after, f"{settings.webhook_disable_after} delivery attempts failed in a row"
            result = (
                await session.execute(
                    update(webhook_subscriptions)
                    .where(subs.id == delivery.subscription_id)
                    .values(
                        consecutive_failures=failures,
                        status=case((disable, "disabled"), else_=subs.status),
                        disabled_reason=case(((subs.status == "active") & disable, reason), else_=subs.disabled_reason),
                        updated_at=now,
                    )
                    .returning(subs.status)
                )
            ).first()
        log.warning("webhook delivery failed", delivery_id=delivery.id, subscription_id=str(delivery.subscription_id),
                    attempt=delivery.attempts, status_code=status, error=error, gave_up=gave_up,
                    subscription_status=result.status if result else None)

    async def purge(self) -> None:
        settings: Settings = self._app.state.settings
        self._last_purge = time.monotonic()
        cutoff = datetime.now(UTC) - timedelta(days=settings.webhook_retention_days)
        async with self._app.state.session_factory() as session, session.begin():
            await session.execute(
                webhook_deliveries.delete().where(webhook_deliveries.c.status != "pending", webhook_deliveries.c.created_at < cutoff)
            )

