"""Shelters and their staff (``/v1/shelters``, ``/v1/staff``): kept by the shelter admins.

A shelter is for women or for children, in one regency, with a number of beds. Staff are
caseworkers or supervisors of one shelter; their ``user_id`` is the ``user`` claim of the
tokens they act with, kept case-folded and unique in any case (``QA.PREP`` is ``qa.prep``).
Every change honours ``Idempotency-Key``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, select

from pilar_kernel.auth import Principal, PrincipalDep, require_scopes
from pilar_kernel.db import SessionDep
from pilar_kernel.idempotency import idempotent
from pilar_kernel.problems import Conflict, Forbidden, NotFound, RuleViolation

from . import access, domain
from .models import Case, Shelter, Staff
from .schemas import USER_ID_PATTERN, ShelterIn, ShelterKind, ShelterOut, ShelterPatch, StaffIn, StaffOut, StaffPatch

router = APIRouter(prefix="/v1", tags=["facilities"])

Admin = Annotated[Principal, require_scopes(access.ADMIN)]


async def _any_shelter_scope(principal: PrincipalDep) -> Principal:
    if not principal.scopes & set(access.ALL_SCOPES):
        raise Forbidden("missing a shelter scope", required_scopes=list(access.ALL_SCOPES))
    return principal


Anyone = Annotated[Principal, Depends(_any_shelter_scope)]


def _shelter_out(request: Request, principal: Principal, shelter: Shelter) -> ShelterOut:
    """Staff and admins see the beds in use; an analyst sees them as statistics do ("<5")."""
    out = ShelterOut.model_validate(shelter, from_attributes=True)
    if not principal.scopes & {access.ADMIN, access.CASEWORKER, access.SUPERVISOR}:
        out.occupied = domain.suppress(shelter.occupied, request.app.state.settings.small_count_threshold)
    return out


def _stale(what: str, current: int, sent: int) -> Conflict:
    return Conflict(f"the {what} changed since you read it (version {current}, you sent {sent})", current_version=current,
                    errors=[{"field": "version", "message": "stale version", "rule": "version.stale"}])


async def _shelter(session, shelter_id: uuid.UUID, *, for_update: bool = False, field: str | None = None) -> Shelter:
    """The shelter; a missing one is a 404, or a 422 naming ``field`` when the id came in the body."""
    stmt = select(Shelter).where(Shelter.id == shelter_id)
    if for_update:
        stmt = stmt.with_for_update()
    shelter = (await session.exec(stmt)).first()
    if shelter is None:
        if field:
            raise RuleViolation(field, "no such shelter", rule="shelter.exists")
        raise NotFound("no such shelter")
    return shelter


RegencyQuery = Annotated[str | None, Query(pattern=r"^[0-9]{2}\.[0-9]{2}$", description="regency/city code, e.g. 35.78")]
UserId = Annotated[str, Path(min_length=1, max_length=100, pattern=USER_ID_PATTERN, description="the staff member's user id (any case)")]


@router.post("/shelters", status_code=201, response_model=ShelterOut, summary="Add a shelter")
async def create_shelter(body: ShelterIn, request: Request, session: SessionDep, principal: Admin):
    async def produce():
        if (await session.exec(select(Shelter.id).where(Shelter.name == body.name))).first():
            raise Conflict("a shelter with this name exists", errors=[{"field": "name", "message": "already used", "rule": "shelter.unique"}])
        shelter = Shelter(**body.model_dump())
        session.add(shelter)
        await session.flush()
        return ShelterOut.model_validate(shelter, from_attributes=True)

    return await idempotent(request, session, principal, produce)


@router.get("/shelters", response_model=list[ShelterOut], summary="The shelters, with beds and occupancy")
async def list_shelters(request: Request, session: SessionDep, principal: Anyone, kind: ShelterKind | None = None,
                        regency_code: RegencyQuery = None, active: bool | None = None):
    stmt = select(Shelter).order_by(Shelter.name)
    if kind:
        stmt = stmt.where(Shelter.kind == kind)
    if regency_code:
        stmt = stmt.where(Shelter.regency_code == regency_code)
    if active is not None:
        stmt = stmt.where(Shelter.active == active)
    return [_shelter_out(request, principal, s) for s in (await session.exec(stmt)).all()]


@router.get("/shelters/{shelter_id}", response_model=ShelterOut, summary="One shelter")
async def get_shelter(shelter_id: uuid.UUID, request: Request, session: SessionDep, principal: Anyone):
    return _shelter_out(request, principal, await _shelter(session, shelter_id))


@router.patch("/shelters/{shelter_id}", response_model=ShelterOut, summary="Rename, resize or close a shelter")
async def update_shelter(shelter_id: uuid.UUID, body: ShelterPatch, request: Request, session: SessionDep, principal: Admin):
    return await idempotent(request, session, principal, lambda: _update_shelter(session, shelter_id, body), status_code=200)


async def _update_shelter(session, shelter_id: uuid.UUID, body: ShelterPatch) -> ShelterOut:
    shelter = await _shelter(session, shelter_id, for_update=True)
    if shelter.version != body.version:
        raise _stale("shelter", shelter.version, body.version)
    if body.capacity is not None and body.capacity < shelter.occupied:
        raise Conflict(f"{shelter.occupied} beds are occupied: discharge survivors before reducing capacity below that",
                       errors=[{"field": "capacity", "message": "below current occupancy", "rule": "shelter.capacity"}])
    for name in ("name", "capacity", "active"):
        value = getattr(body, name)
        if value is not None:
            setattr(shelter, name, value)
    shelter.version += 1
    shelter.updated_at = datetime.now(UTC)
    session.add(shelter)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("a shelter with this name exists", errors=[{"field": "name", "message": "already used", "rule": "shelter.unique"}]) from exc
    return ShelterOut.model_validate(shelter, from_attributes=True)


# -- staff --------------------------------------------------------------------------------


@router.post("/staff", status_code=201, response_model=StaffOut, summary="Register a caseworker or supervisor of a shelter")
async def create_staff(body: StaffIn, request: Request, session: SessionDep, principal: Admin):
    async def produce():
        await _shelter(session, body.shelter_id, field="shelter_id")
        if await access.find_staff(session, body.user_id) is not None:
            raise Conflict("this user is already registered as staff", errors=[{"field": "user_id", "message": "already registered", "rule": "staff.unique"}])
        staff = Staff(**body.model_dump())
        session.add(staff)
        await session.flush()
        return StaffOut.model_validate(staff, from_attributes=True)

    return await idempotent(request, session, principal, produce)


@router.get("/staff", response_model=list[StaffOut], summary="Staff: all for admins, their own shelter's for supervisors")
async def list_staff(request: Request, session: SessionDep, principal: PrincipalDep, shelter_id: uuid.UUID | None = None):
    if not principal.has(access.ADMIN):
        actor = await access.get_actor(request, principal, session)
        actor.require_supervisor("list the shelter's staff")
        if shelter_id is not None and shelter_id != actor.shelter_id:
            raise Forbidden("a supervisor lists the staff of their own shelter")
        shelter_id = actor.shelter_id
    stmt = select(Staff).order_by(Staff.user_id)
    if shelter_id is not None:
        stmt = stmt.where(Staff.shelter_id == shelter_id)
    return [StaffOut.model_validate(s, from_attributes=True) for s in (await session.exec(stmt)).all()]


@router.patch("/staff/{user_id}", response_model=StaffOut, summary="Change a staff member's role or shelter, or deactivate them")
async def update_staff(user_id: UserId, body: StaffPatch, request: Request, session: SessionDep, principal: Admin):
    return await idempotent(request, session, principal, lambda: _update_staff(session, user_id, body), status_code=200)


async def _update_staff(session, user_id: str, body: StaffPatch) -> StaffOut:
    staff = await access.find_staff(session, user_id, for_update=True)
    if staff is None:
        raise NotFound("no such staff member")
    if staff.version != body.version:
        raise _stale("staff record", staff.version, body.version)
    leaves = (body.shelter_id not in (None, staff.shelter_id)) or (body.role not in (None, staff.role)) or body.active is False
    if leaves and staff.role == "caseworker":
        open_cases = (await session.exec(
            select(func.count()).select_from(Case).where(Case.caseworker_id == staff.user_id, col(Case.status).in_(domain.OPEN_STATUSES))
        )).one()
        if open_cases:
            raise Conflict(f"the caseworker holds {open_cases} open case(s): transfer them first",
                           errors=[{"field": "user_id", "message": "holds open cases", "rule": "staff.open_cases"}])
    if body.shelter_id is not None:
        await _shelter(session, body.shelter_id, field="shelter_id")
    for name in ("name", "role", "shelter_id", "active"):
        value = getattr(body, name)
        if value is not None:
            setattr(staff, name, value)
    staff.version += 1
    staff.updated_at = datetime.now(UTC)
    session.add(staff)
    await session.flush()
    return StaffOut.model_validate(staff, from_attributes=True)
