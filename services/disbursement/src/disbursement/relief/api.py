"""HTTP routes of relief programmes (set up by the province) and the grants they made."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, Request
from sqlalchemy import or_
from sqlmodel import col, select

from pilar_kernel import regions
from pilar_kernel.auth import Principal, require_scopes
from pilar_kernel.db import SessionDep
from pilar_kernel.idempotency import idempotent
from pilar_kernel.problems import Conflict, NotFound, Problem

from .. import access
from ..rounds.models import PaymentRound
from .models import ReliefGrant, ReliefProgramme
from .schemas import GrantStatus, ReliefGrantOut, ReliefProgrammeIn, ReliefProgrammeOut, ReliefProgrammePatch

router = APIRouter(prefix="/v1", tags=["relief"])


def _invalid(field: str, message: str, rule: str) -> Problem:
    return Problem(f"invalid input: {field}", status=422, type="validation-error", title="Invalid input",
                   errors=[{"field": field, "message": message, "rule": rule}])


def _out(p: ReliefProgramme) -> dict:
    return ReliefProgrammeOut.model_validate(p, from_attributes=True).model_dump()


@router.post("/relief-programmes", status_code=201, response_model=ReliefProgrammeOut,
             summary="Pay emergency cash to disaster-affected households through an open round")
async def create(body: ReliefProgrammeIn, request: Request, session: SessionDep, principal: Principal = access.provincial(access.PROGRAMME_ADMIN)):
    async def produce():
        return _out(await _create(session, principal, body))

    return await idempotent(request, session, principal, produce)


async def _create(session, principal: Principal, body: ReliefProgrammeIn) -> ReliefProgramme:
    rnd = (await session.exec(select(PaymentRound).where(PaymentRound.id == body.round_id))).first()
    if rnd is None:
        raise _invalid("round_id", "no such round", "relief.round")
    if rnd.status in ("closed", "cancelled"):
        raise _invalid("round_id", f"the round is {rnd.status}", "relief.round")
    for i, code in enumerate(body.regency_codes):
        region = regions.get(code)
        if region is None or region.level != "regency" or not regions.is_jatim(code):
            raise _invalid(f"regency_codes.{i}", "not a regency of Jawa Timur", "region.regency")
    if max(body.amount_light, body.amount_moderate, body.amount_heavy) == 0:
        raise _invalid("amount_heavy", "set an amount for at least one damage level", "relief.amount")
    programme = ReliefProgramme(**body.model_dump(), created_by=access.acting_user(principal))
    programme.incident_categories = sorted(set(programme.incident_categories))
    programme.regency_codes = sorted({regions.normalise(c) for c in programme.regency_codes})
    session.add(programme)
    await session.flush()
    return programme


@router.get("/relief-programmes", response_model=list[ReliefProgrammeOut])
async def list_programmes(session: SessionDep, principal: Principal = require_scopes(access.READ)):
    programmes = (await session.exec(select(ReliefProgramme).order_by(ReliefProgramme.created_at))).all()
    # A regency office sees the programmes that can pay in its regency: province-wide ones
    # (no regency listed) and those naming it; not a neighbour's.
    return [_out(p) for p in programmes if not p.regency_codes or any(principal.may_access_region(c) for c in p.regency_codes)]


@router.patch("/relief-programmes/{programme_id}", response_model=ReliefProgrammeOut, summary="Change amounts or stop a relief programme")
async def update(programme_id: uuid.UUID, body: ReliefProgrammePatch, request: Request, session: SessionDep,
                 principal: Principal = access.provincial(access.PROGRAMME_ADMIN)):
    async def produce():
        return _out(await _update(session, programme_id, body))

    return await idempotent(request, session, principal, produce, status_code=200)


async def _update(session, programme_id: uuid.UUID, body: ReliefProgrammePatch) -> ReliefProgramme:
    programme = (await session.exec(select(ReliefProgramme).where(ReliefProgramme.id == programme_id).with_for_update())).first()
    if programme is None:
        raise NotFound("no such relief programme")
    if programme.version != body.version:
        raise Conflict(f"the relief programme changed since you read it (version {programme.version})", current_version=programme.version)
    for field, value in body.model_dump(exclude_unset=True, exclude={"version"}).items():
        if value is not None:
            setattr(programme, field, value)
    programme.version += 1
    session.add(programme)
    await session.flush()
    return programme


@router.get("/relief-grants", response_model=list[ReliefGrantOut], summary="Emergency-cash decisions per household")
async def list_grants(session: SessionDep, principal: Principal = require_scopes(access.READ), incident_id: uuid.UUID | None = Query(default=None),
                      status: GrantStatus | None = Query(default=None), limit: int = Query(default=500, ge=1, le=5000)):
    stmt = select(ReliefGrant)
    if incident_id is not None:
        stmt = stmt.where(ReliefGrant.incident_id == incident_id)
    if status:
        stmt = stmt.where(ReliefGrant.status == status)
    if principal.region:  # in the query, so that the limit counts the region's grants only
        stmt = stmt.where(or_(ReliefGrant.regency_code == principal.region, col(ReliefGrant.regency_code).startswith(principal.region + ".")))
    rows = (await session.exec(stmt.order_by(ReliefGrant.created_at, ReliefGrant.id).limit(limit))).all()
    return [ReliefGrantOut.model_validate(g, from_attributes=True).model_dump() for g in rows if principal.may_access_region(g.regency_code)]


