"""Webhook subscriptions API (scope ``gateway:webhooks``; ``gateway:admin`` sees every client's).

A client subscribes to event types of services it holds a scope for; a regional client's
subscriptions are limited to its region. The secret that signs deliveries is returned once.
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy import func, select, update

from pilar_contracts.marks import province_public, region_fields
from pilar_kernel.auth import Principal, require_scopes
from pilar_kernel.db import SessionDep
from pilar_kernel.problems import Conflict, Forbidden, NotFound, RuleViolation

from ..events import platform_events, service_of
from ..gatekeeper import ADMIN_SCOPE, WEBHOOKS_SCOPE
from ..models import clients, webhook_attempts, webhook_deliveries, webhook_subscriptions
from ..schemas import CLIENT_ID_PATTERN, AttemptOut, DeliveryOut, EventTypeOut, SubscriptionCreate, SubscriptionOut, SubscriptionWithSecret
from ..state import gateway_of
from . import signing

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
Subscriber = Annotated[Principal, require_scopes(WEBHOOKS_SCOPE)]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
S = webhook_subscriptions.c
BIGINT_MAX = 2**63 - 1  # PostgreSQL bigint (delivery ids)
DeliveryId = Annotated[int, Path(ge=1, le=BIGINT_MAX)]


def check_callback_url(url: str, *, allow_local_http: bool) -> None:
    """HTTPS only (plain http to this machine in development and test); no credentials in
    the URL; no private or loopback IP literals outside development (a cheap SSRF guard)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise RuleViolation("body.callback_url", "not a URL", rule="url") from None
    if not host or parts.username or parts.password or parts.fragment:
        raise RuleViolation("body.callback_url", "an absolute URL with a host, without credentials or fragment", rule="url")
    if parts.scheme == "http" and allow_local_http and host in LOCAL_HOSTS:
        return
    if parts.scheme != "https":
        raise RuleViolation("body.callback_url", "must use https", rule="https-only")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return
    if not allow_local_http and (address.is_private or address.is_loopback or address.is_link_local or address.is_reserved):
        raise RuleViolation("body.callback_url", "must not point at a private or local address", rule="public-address")


def _view(row: Any) -> dict:
    return {
        "id": row.id,
        "client_id": row.client_id,
        "callback_url": row.callback_url,
        "event_types": list(row.event_types),
        "region": row.region,
        "status": row.status,
        "disabled_reason": row.disabled_reason,
        "consecutive_failures": row.consecutive_failures,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def _delivery_view(row: Any) -> dict:
    return {
        "id": row.id,
        "ce_id": row.ce_id,
        "ce_type": row.ce_type,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at if row.status == "pending" else None,
        "last_status_code": row.last_status_code,
        "last_error": row.last_error,
        "created_at": row.created_at,
        "delivered_at": row.delivered_at,
    }


async def _owned(session, principal: Principal, subscription_id: uuid.UUID, *, lock: bool = False) -> Any:
    query = select(webhook_subscriptions).where(S.id == subscription_id)
    row = (await session.execute(query.with_for_update() if lock else query)).first()
    if row is None or (row.client_id != principal.subject and not principal.has(ADMIN_SCOPE)):
        raise NotFound("no such subscription")
    return row


@router.get("/event-types", response_model=list[EventTypeOut], summary="Event types this client may subscribe to")
async def event_types(request: Request, principal: Subscriber) -> list[dict]:
    gateway = gateway_of(request)
    out = []
    for cls in platform_events(gateway.settings.event_services):
        service = service_of(cls.ce_type)
        if gateway.gatekeeper.may_use_service(principal, service):
            fields = region_fields(cls)
            out.append({"type": cls.ce_type, "service": service, "topic": cls.topic,
                        "summary": (cls.__doc__ or "").strip().split("\n")[0],
                        "regional": bool(fields) or province_public(cls),
                        "region_fields": list(fields),
                        "province_public": province_public(cls)})
    return out


@router.post("/subscriptions", status_code=201, response_model=SubscriptionWithSecret, summary="Subscribe a callback URL to event types")
async def subscribe(body: SubscriptionCreate, request: Request, session: SessionDep, principal: Subscriber):
    gateway = gateway_of(request)
    settings = gateway.settings
    check_callback_url(body.callback_url, allow_local_http=settings.local_http_callbacks)
    known = {cls.ce_type: cls for cls in platform_events(settings.event_services)}
    unknown = [t for t in body.event_types if t not in known]
    if unknown:
        raise RuleViolation("body.event_types", f"not in the catalogue: {', '.join(unknown)}", rule="known-event-type")
    denied = sorted({service_of(t) for t in body.event_types if not gateway.gatekeeper.may_use_service(principal, service_of(t))})
    if denied:
        raise Forbidden(f"this client holds no scope of {', '.join(denied)}")
    region = body.region
    if principal.region is not None:
        if region is not None and not principal.may_access_region(region):
            raise Forbidden(f"this client may only subscribe within region {principal.region}")
        region = region or principal.region
    if region is not None:
        # A regional subscription receives an event only when one of the event's regions is
        # within it: an event type naming no region would be accepted and never delivered.
        for index, ce_type in enumerate(body.event_types):
            cls = known[ce_type]
            if not region_fields(cls) and not province_public(cls):
                raise RuleViolation(
                    f"body.event_types.{index}",
                    f"{ce_type} names no region, so a subscription for region {region} would never receive it; "
                    "only province-wide subscriptions may take it",
                    rule="regional-event-type",
                )

    async def produce() -> dict:
        secret = signing.new_secret()
        subscription_id = uuid.uuid4()
        row = (
            await session.execute(
                webhook_subscriptions.insert()
                .values(
                    id=subscription_id,
                    client_id=principal.subject,
                    callback_url=body.callback_url,
                    event_types=sorted(set(body.event_types)),
                    region=region,
                    secret=gateway.cipher.encrypt(secret, aad=f"webhook:{subscription_id}"),
                )
                .returning(*webhook_subscriptions.c)
            )
        ).one()
        return {**_view(row), "secret": secret}

    # No Idempotency-Key here: a replayed response would have to keep the secret in clear.
    return await produce()


@router.get("/subscriptions", response_model=list[SubscriptionOut], summary="This client's subscriptions (every client's for an admin)")
async def list_subscriptions(
    session: SessionDep,
    principal: Subscriber,
    client_id: Annotated[str | None, Query(pattern=CLIENT_ID_PATTERN, max_length=63, description="admin only: one client's")] = None,
) -> list[dict]:
    query = select(webhook_subscriptions).order_by(S.created_at)
    if not principal.has(ADMIN_SCOPE):
        query = query.where(S.client_id == principal.subject)
    elif client_id:
        query = query.where(S.client_id == client_id)
    return [_view(r) for r in (await session.execute(query)).all()]


@router.get("/subscriptions/{subscription_id}", response_model=SubscriptionOut, summary="One subscription")
async def get_subscription(subscription_id: uuid.UUID, session: SessionDep, principal: Subscriber) -> dict:
    return _view(await _owned(session, principal, subscription_id))


@router.delete("/subscriptions/{subscription_id}", status_code=204, summary="Unsubscribe (its delivery log goes too)")
async def delete_subscription(subscription_id: uuid.UUID, session: SessionDep, principal: Subscriber) -> None:
    await _owned(session, principal, subscription_id, lock=True)
    await session.execute(webhook_subscriptions.delete().where(S.id == subscription_id))


@router.post("/subscriptions/{subscription_id}/enable", response_model=SubscriptionOut, summary="Re-enable a disabled subscription")
async def enable_subscription(subscription_id: uuid.UUID, session: SessionDep, principal: Subscriber) -> dict:
    await _owned(session, principal, subscription_id, lock=True)
    revoked = (
        await session.execute(
            select(clients.c.revoked_at).join(webhook_subscriptions, S.client_id == clients.c.client_id).where(S.id == subscription_id)
        )
    ).scalar_one()
    if revoked is not None:
        raise Conflict("the subscription's client is revoked")
    row = (
        await session.execute(
            update(webhook_subscriptions)
            .where(S.id == subscription_id)
            .values(status="active", disabled_reason=None, consecutive_failures=0, updated_at=func.now())
            .returning(*webhook_subscriptions.c)
        )
    ).one()
    # Pending deliveries waited while it was disabled: send them now.
    await session.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.subscription_id == subscription_id, webhook_deliveries.c.status == "pending")
        .values(next_attempt_at=func.now())
    )
    return _view(row)


@router.post("/subscriptions/{subscription_id}/rotate-secret", response_model=SubscriptionWithSecret, summary="Replace the signing secret")
async def rotate_secret(subscription_id: uuid.UUID, request: Request, session: SessionDep, principal: Subscriber) -> dict:
    await _owned(session, principal, subscription_id, lock=True)
    secret = signing.new_secret()
    row = (
        await session.execute(
            update(webhook_subscriptions)
            .where(S.id == subscription_id)
            .values(secret=gateway_of(request).cipher.encrypt(secret, aad=f"webhook:{subscription_id}"), updated_at=func.now())
            .returning(*webhook_subscriptions.c)
        )
    ).one()
    return {**_view(row), "secret": secret}


@router.get("/subscriptions/{subscription_id}/deliveries", response_model=list[DeliveryOut], summary="The delivery log, newest first")
async def deliveries(
    subscription_id: uuid.UUID,
    session: SessionDep,
    principal: Subscriber,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_id: Annotated[int | None, Query(ge=1, le=BIGINT_MAX, description="cursor: the last id of the previous page")] = None,
    status: Annotated[str | None, Query(pattern="^(pending|delivered|failed)$")] = None,
) -> list[dict]:
    await _owned(session, principal, subscription_id)
    d = webhook_deliveries.c
    query = select(webhook_deliveries).where(d.subscription_id == subscription_id).order_by(d.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(d.id < before_id)
    if status:
        query = query.where(d.status == status)
    return [_delivery_view(r) for r in (await session.execute(query)).all()]


@router.get("/subscriptions/{subscription_id}/deliveries/{delivery_id}/attempts", response_model=list[AttemptOut], summary="Every attempt of one delivery")
async def attempts(subscription_id: uuid.UUID, delivery_id: DeliveryId, session: SessionDep, principal: Subscriber) -> list[dict]:
    await _owned(session, principal, subscription_id)
    a = webhook_attempts.c
    rows = (
        await session.execute(
            select(a.attempt, a.at, a.status_code, a.error, a.duration_ms)
            .join(webhook_deliveries, webhook_deliveries.c.id == a.delivery_id)
            .where(a.delivery_id == delivery_id, webhook_deliveries.c.subscription_id == subscription_id)
            .order_by(a.attempt)
        )
    ).all()
    return [dict(r._mapping) for r in rows]


@router.post("/subscriptions/{subscription_id}/deliveries/{delivery_id}/redeliver", response_model=DeliveryOut, summary="Send a delivery again")
async def redeliver(subscription_id: uuid.UUID, delivery_id: DeliveryId, session: SessionDep, principal: Subscriber) -> dict:
    await _owned(session, principal, subscription_id)
    d = webhook_deliveries.c
    row = (
        await session.execute(
            update(webhook_deliveries)
            .where(d.id == delivery_id, d.subscription_id == subscription_id)
            .values(status="pending", next_attempt_at=func.now())
            .returning(*webhook_deliveries.c)
        )
    ).first()
    if row is None:
        raise NotFound("no such delivery")
    return _delivery_view(row)
