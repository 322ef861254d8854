"""``Idempotency-Key`` for POSTs that create things.

The key is stored in the same transaction as the effect: the first request inserts the key,
runs, and saves its response; a repeat with the same body gets that response back
(``Idempotent-Replayed: true``); a repeat with another body is refused with 422. Two
concurrent requests with one key serialise on the key's primary key, so exactly one runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from .auth import Principal
from .problems import Problem
from .tables import idempotency_keys

HEADER = "Idempotency-Key"


async def idempotent(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    produce: Callable[[], Awaitable[Any]],
    *,
    status_code: int = 201,
) -> JSONResponse:
    key = request.headers.get(HEADER)
    if key is None:
        return JSONResponse(jsonable_encoder(await produce()), status_code=status_code)
    if not (1 <= len(key) <= 200):
        raise Problem("Idempotency-Key must be 1 to 200 characters", status=400, type="bad-idempotency-key", title="Bad Idempotency-Key")
    digest = hashlib.sha256(request.method.encode() + b" " + request.url.path.encode() + b"\n" + await request.body()).hexdigest()
    inserted = await session.execute(
        pg_insert(idempotency_keys)
        .values(owner=principal.subject, key=key, method=request.method, path=request.url.path, request_hash=digest, status_code=0)
        .on_conflict_do_nothing()
        .returning(idempotency_keys.c.key)
    )
    if inserted.first() is None:
        row = (
            await session.execute(
                select(idempotency_keys).where(idempotency_keys.c.owner == principal.subject, idempotency_keys.c.key == key)
            )
        ).one()
        if row.request_hash != digest:
            raise Problem(
                "this Idempotency-Key was used with a different request",
                status=422,
                type="idempotency-key-reused",
                title="Idempotency-Key reused",
            )
        return JSONResponse(row.response_body, status_code=row.status_code, headers={"Idempotent-Replayed": "true"})
    body = jsonable_encoder(await produce())
    await session.execute(
        update(idempotency_keys)
        .where(idempotency_keys.c.owner == principal.subject, idempotency_keys.c.key == key)
        .values(status_code=status_code, response_body=body)
    )
    return JSONResponse(body, status_code=status_code)
