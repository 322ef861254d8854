"""HTTP route of a person's aid history (``GET /v1/persons/{person_id}/aid-history``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import text

from pilar_kernel.auth import Principal, require_scopes
from pilar_kernel.db import SessionDep
from pilar_kernel.pagination import encode_cursor

from .. import access
from ..fields import CURSOR_MAX, time_id_cursor
from ..persons.service import get_person

router = APIRouter(prefix="/v1", tags=["aid history"])

Reader = Annotated[Principal, require_scopes(access.READ)]


class AidOut(BaseModel):
    payment_id: uuid.UUID
    person_id: uuid.UUID
    programme_code: str
    round_id: uuid.UUID
    year: int
    stage: int
    amount: int
    channel: str
    status: str
    reason: str | None
    attempt: int
    returned_amount: int | None
    status_at: datetime
    first_seen_at: datetime


class AidPage(BaseModel):
    items: list[AidOut]
    next_cursor: str | None


@router.get("/persons/{person_id}/aid-history", response_model=AidPage,
            summary="Payments to the person (and to records merged into it): programme, round, amount, status, date; oldest first")
async def aid_history(
    person_id: uuid.UUID,
    session: SessionDep,
    principal: Reader,
    limit: int = Query(default=50, ge=1, le=500),
    cursor: str | None = Query(default=None, max_length=CURSOR_MAX),
):
    await get_person(session, principal, person_id)  # 404 outside the caller's region
    after = time_id_cursor(cursor)
    rows = (
        await session.execute(
            text(
                """
                WITH RECURSIVE records AS (
                    SELECT CAST(:p AS uuid) AS id
                    UNION SELECT person.id FROM person JOIN records ON person.merged_into = records.id
                )
                SELECT a.* FROM aid_history a JOIN records r ON a.person_id = r.id
                WHERE CAST(:after_at AS timestamptz) IS NULL
                   OR (a.first_seen_at, a.payment_id) > (CAST(:after_at AS timestamptz), CAST(:after_id AS uuid))
                ORDER BY a.first_seen_at, a.payment_id
                LIMIT :n
                """
            ),
            {"p": person_id, "after_at": after[0] if after else None, "after_id": after[1] if after else None, "n": limit + 1},
        )
    ).mappings().all()
    items = [dict(r) for r in rows[:limit]]
    next_cursor = encode_cursor([items[-1]["first_seen_at"].isoformat(), str(items[-1]["payment_id"])]) if len(rows) > limit else None
    return {"items": items, "next_cursor": next_cursor}
