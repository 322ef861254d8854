"""The duplicate review queue (``/v1/duplicates``)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import select

from pilar_kernel.auth import Principal, require_scopes
from pilar_kernel.db import SessionDep

from .. import access
from ..persons import service as persons
from ..privacy import PrivacyDep
from . import service
from .models import DuplicateCandidate

router = APIRouter(prefix="/v1", tags=["duplicates"])
Reviewer = Annotated[Principal, require_scopes(access.VERIFY)]


class MergeDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keep: uuid.UUID = Field(description="the record that survives; the other is merged into it")
    note: str | None = Field(default=None, max_length=500)


class Dismissal(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(min_length=3, max_length=500, description="why these are different people")


@router.get("/duplicates", summary="Probable duplicates waiting for review (or decided ones)")
async def list_candidates(
    session: SessionDep, principal: Reviewer, status: str = Query(default="open", pattern="^(open|merged|dismissed)$"), limit: int = Query(default=100, ge=1, le=500)
) -> list[dict]:
    stmt = select(DuplicateCandidate).where(DuplicateCandidate.status == status)
    if principal.region:
        stmt = stmt.where(DuplicateCandidate.regency_code == principal.region)
    rows = (await session.exec(stmt.order_by(DuplicateCandidate.created_at, DuplicateCandidate.id).limit(limit))).all()
    return [c.model_dump() for c in rows]


@router.post("/duplicates/{candidate_id}/merge", summary="Merge the pair, keeping one record")
async def merge_candidate(candidate_id: uuid.UUID, body: MergeDecision, session: SessionDep, privacy: PrivacyDep, principal: Reviewer) -> dict:
    survivor = await service.merge(session, principal, privacy, candidate_id, body.keep, body.note)
    return await persons.to_out(session, privacy, survivor, reveal=False)


@router.post("/duplicates/{candidate_id}/dismiss", summary="Different people: close the pair")
async def dismiss_candidate(candidate_id: uuid.UUID, body: Dismissal, session: SessionDep, principal: Reviewer) -> dict:
    return (await service.dismiss(session, principal, candidate_id, body.note)).model_dump()
