"""Agency clients: stored with argon2-hashed secrets, scopes, an optional region and rate limits.

``ClientDirectory`` is each gateway process's in-memory copy (reloaded every few seconds and
updated at once by this process's own admin calls): the gateway refuses tokens of unknown
or revoked clients without a database round trip per request.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from pilar_kernel.problems import Conflict, NotFound, RuleViolation

from .models import clients, webhook_subscriptions

CLIENT_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")
REGION = re.compile(r"^35\.\d{2}$")
SCOPE = re.compile(r"^[a-z0-9-]+:[a-z0-9-]+$")

# OWASP's minimum argon2id profile: client secrets are long random strings, so the hash only
# has to make a stolen table useless, not to stretch a weak password. Verifying costs ~20 ms.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_dummy_hash: str | None = None


def new_secret() -> str:
    return "pcs_" + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def _verify(hashed: str, secret: str) -> bool:
    try:
        return _hasher.verify(hashed, secret)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_secret(hashed: str | None, secret: str) -> bool:
    """Check a secret off the event loop; an unknown client costs the same time as a known one."""
    global _dummy_hash
    if hashed is None:
        if _dummy_hash is None:
            _dummy_hash = hash_secret(new_secret())
        await asyncio.to_thread(_verify, _dummy_hash, secret)
        return False
    return await asyncio.to_thread(_verify, hashed, secret)


def validate(client_id: str | None = None, scopes: list[str] | None = None, region: str | None = None) -> None:
    if client_id is not None and not CLIENT_ID.match(client_id):
        raise RuleViolation("client_id", "2-63 characters: lower-case letters, digits, '.', '_' or '-'", rule="client-id")
    for scope in scopes or ():
        if not SCOPE.match(scope):
            raise RuleViolation("scopes", f"{scope!r} is not '<service>:<permission>'", rule="scope-format")
    if region is not None and not REGION.match(region):
        raise RuleViolation("region", "a regency/city code such as 35.15", rule="region-format")


@dataclass(frozen=True)
class ClientInfo:
    client_id: str
    scopes: frozenset[str]
    region: str | None
    rate_per_s: float | None
    rate_burst: int | None
    revoked: bool


def _info(row: Any) -> ClientInfo:
    return ClientInfo(row.client_id, frozenset(row.scopes), row.region, row.rate_per_s, row.rate_burst, row.revoked_at is not None)


def public_view(row: Any) -> dict[str, Any]:
    """A client as the admin API shows it (never the hash)."""
    return {
        "client_id": row.client_id,
        "name": row.name,
        "scopes": sorted(row.scopes),
        "region": row.region,
        "rate_limit": {"per_second": row.rate_per_s, "burst": row.rate_burst},
        "status": "revoked" if row.revoked_at is not None else "active",
        "created_at": row.created_at,
        "secret_rotated_at": row.secret_rotated_at,
        "revoked_at": row.revoked_at,
    }


class ClientDirectory:
    def __init__(self) -> None:
        self._clients: dict[str, ClientInfo] = {}

    async def load(self, session: AsyncSession) -> None:
        rows = (await session.execute(select(clients))).all()
        self._clients = {r.client_id: _info(r) for r in rows}

    def get(self, client_id: str) -> ClientInfo | None:
        return self._clients.get(client_id)

    def put(self, row: Any) -> None:
        self._clients[row.client_id] = _info(row)


async def get_row(session: AsyncSession, client_id: str, *, lock: bool = False) -> Any:
    query = select(clients).where(clients.c.client_id == client_id)
    row = (await session.execute(query.with_for_update() if lock else query)).first()
    if row is None:
        raise NotFound(f"no client {client_id}")
    return row


async def list_rows(session: AsyncSession) -> list[Any]:
    return list((await session.execute(select(clients).order_by(clients.c.client_id))).all())


async def create(
    session: AsyncSession,
    *,
    client_id: str,
    name: str,
    scopes: list[str],
    region: str | None = None,
    rate_per_s: float | None = None,
    rate_burst: int | None = None,
    secret: str | None = None,
) -> tuple[Any, str]:
    """A new client; returns its row and its secret (shown once, never stored in clear)."""
    validate(client_id, scopes, region)
    secret = secret or new_secret()
    row = (
        await session.execute(
            pg_insert(clients)
            .values(
                client_id=client_id,
                name=name,
                secret_hash=await asyncio.to_thread(hash_secret, secret),
                scopes=sorted(set(scopes)),
                region=region,
                rate_per_s=rate_per_s,
                rate_burst=rate_burst,
            )
            .on_conflict_do_nothing()
            .returning(*clients.c)
        )
    ).first()
    if row is None:
        raise Conflict(f"client {client_id} already exists")
    return row, secret


async def change(session: AsyncSession, client_id: str, **values: Any) -> Any:
    """Update scopes, region, name or rate limits (only the keys given)."""
    validate(None, values.get("scopes"), values.get("region"))
    if "scopes" in values:
        values["scopes"] = sorted(set(values["scopes"]))
    await get_row(session, client_id, lock=True)
    row = (
        await session.execute(
            update(clients).where(clients.c.client_id == client_id).values(**values, updated_at=datetime.now(UTC)).returning(*clients.c)
        )
    ).one()
    return row


async def rotate_secret(session: AsyncSession, client_id: str) -> tuple[Any, str]:
    """A new secret; the old one stops working at once (tokens already issued run out)."""
    current = await get_row(session, client_id, lock=True)
    if current.revoked_at is not None:
        raise Conflict(f"client {client_id} is revoked")
    secret = new_secret()
    now = datetime.now(UTC)
    row = (
        await session.execute(
            update(clients)
            .where(clients.c.client_id == client_id)
            .values(secret_hash=await asyncio.to_thread(hash_secret, secret), secret_rotated_at=now, updated_at=now)
            .returning(*clients.c)
        )
    ).one()
    return row, secret


async def revoke(session: AsyncSession, client_id: str) -> Any:
    """Revoke a client (for good): no new tokens, its tokens refused by the gateway, webhooks off."""
    current = await get_row(session, client_id, lock=True)
    if current.revoked_at is not None:
        return current
    now = datetime.now(UTC)
    row = (
        await session.execute(
            update(clients).where(clients.c.client_id == client_id).values(revoked_at=now, updated_at=now).returning(*clients.c)
        )
    ).one()
    await session.execute(
        update(webhook_subscriptions)
        .where(webhook_subscriptions.c.client_id == client_id, webhook_subscriptions.c.status == "active")
        .values(status="disabled", disabled_reason="client revoked", updated_at=now)
    )
    return row


async def authenticate(session: AsyncSession, client_id: str, secret: str) -> Any | None:
    """The client's row when the secret matches and the client is not revoked, else None."""
    row = (await session.execute(select(clients).where(clients.c.client_id == client_id))).first() if CLIENT_ID.match(client_id) else None
    ok = await verify_secret(row.secret_hash if row is not None else None, secret)
    if not ok or row is None or row.revoked_at is not None:
        return None
    return row
