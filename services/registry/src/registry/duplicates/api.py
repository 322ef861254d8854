"""The duplicate review queue (``/v1/duplicates``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import select

from pilar_kernel.auth import Principal, require_scopes
from pilar_kernel.db import SessionDep
from pilar_kernel.idempotency import idempotent

from .. import access
from ..persons import service as persons
from ..privacy import PrivacyDep
from . import service
from ..persons.schemas import PersonOut
from .models import DuplicateCandidate

router = APIRouter(prefix="/v1", tags=["duplicates"])
Reviewer = Annotated[Principal, require_scopes(access.VERIFY)]


class DuplicateOut(BaseModel):
    id: uuid.UUID
    person_id: uuid.UUID = Field(description="the newer record")
    other_id: uuid.UUID = Field(description="the record it resembles")
    regency_code: str | None
    similarity: float
    status: Literal["open", "merged", "dismissed"]
    decided_by: str | None
    decided_at: datetime | None
    note: str | None
    created_at: datetime


class MergeDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keep: uuid.UUID = Field(description="the record that survives; the other is merged into it")
    note: str | None = Field(default=None, max_length=500)


class Dismissal(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(min_length=3, max_length=500, description="why these are different people")


@router.get("/duplicates", response_model=list[DuplicateOut], summary="Probable duplicates waiting for review (or decided ones)")
async def list_candidates(
    session: SessionDep, principal: Reviewer, status: str = Query(default="open", pattern="^(open|merged|dismissed)$"), limit: int = Query(default=100, ge=1, le=500)
):
    stmt = select(DuplicateCandidate).where(DuplicateCandidate.status == status)
    if principal.region:
        stmt = stmt.where(DuplicateCandidate.regency_code == principal.region)
    rows = (await session.exec(stmt.order_by(DuplicateCandidate.created_at, DuplicateCandidate.id).limit(limit))).all()
    return [c.model_dump() for c in rows]


@router.post("/duplicates/{candidate_id}/merge", response_model=PersonOut, summary="Merge the pair, keeping one record")
async def merge_candidate(candidate_id: uuid.UUID, body: MergeDecision, request: Request, session: SessionDep, privacy: PrivacyDep,
                          principal: Reviewer):
    async def produce():
        survivor = await service.merge(session, principal, privacy, candidate_id, body.keep, body.note)
        return PersonOut.model_validate(await persons.to_out(session, privacy, survivor, reveal=False)).model_dump(mode="json")

    return await idempotent(request, session, principal, produce, status_code=200)


@router.post("/duplicates/{candidate_id}/dismiss", response_model=DuplicateOut, summary="Different people: close the pair")
async def dismiss_candidate(candidate_id: uuid.UUID, body: Dismissal, request: Request, session: SessionDep, principal: Reviewer):
    async def produce():
        return DuplicateOut.model_validate((await service.dismiss(session, principal, candidate_id, body.note)).model_dump()).model_dump(mode="json")

    return await idempotent(request, session, principal, produce, status_code=200)
