"""Use cases of Tagana volunteers and deployments. One volunteer's deployments never
overlap: checked first for a clear answer, and enforced by the database's exclusion
constraint when two deployments race."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from pilar_kernel import regions
from pilar_kernel.auth import Principal
from pilar_kernel.pagination import page
from pilar_kernel.problems import Conflict, NotFound

from .. import access
from ..fields import cursor_values
from ..incidents import service as incidents
from ..places import check_code, invalid
from .models import Deployment, Volunteer

EXCLUSION_VIOLATION = "23P01"


def _sqlstate(exc: IntegrityError) -> str | None:
    orig = exc.orig
    return getattr(orig, "sqlstate", None) or getattr(getattr(orig, "__cause__", None), "sqlstate", None)


async def register(session: AsyncSession, principal: Principal, data: dict[str, Any]) -> Volunteer:
    errors = check_code(data["regency_code"], "regency", "regency_code")
    if errors:
        raise invalid(errors)
    regency = regions.normalise(data["regency_code"])
    access.ensure_own_region(principal, regency, "volunteers")
    if (await session.exec(select(Volunteer.id).where(Volunteer.member_number == data["member_number"]))).first():
        raise Conflict("a volunteer with this member number is registered", errors=[
            {"field": "member_number", "message": "already registered", "rule": "volunteer.unique"}])
    volunteer = Volunteer(member_number=data["member_number"], name=data["name"], rank=data["rank"], regency_code=regency,
                          skills=sorted(set(data.get("skills") or [])))
    session.add(volunteer)
    await session.flush()
    return volunteer


async def get_volunteer(session: AsyncSession, principal: Principal, volunteer_id: uuid.UUID, *, for_update: bool = False) -> Volunteer:
    stmt = select(Volunteer).where(Volunteer.id == volunteer_id)
    if for_update:
        stmt = stmt.with_for_update()
    volunteer = (await session.exec(stmt)).first()
    if volunteer is None or not principal.may_access_region(volunteer.regency_code):
        raise NotFound("no such volunteer")
    return volunteer


async def update(session: AsyncSession, principal: Principal, volunteer_id: uuid.UUID, patch: dict[str, Any]) -> Volunteer:
    volunteer = await get_volunteer(session, principal, volunteer_id, for_update=True)
    if volunteer.version != patch["version"]:
        raise Conflict(f"the volunteer changed since you read it (version {volunteer.version})", current_version=volunteer.version)
    if patch.get("rank") is not None:
        volunteer.rank = patch["rank"]
    if patch.get("skills") is not None:
        volunteer.skills = sorted(set(patch["skills"]))
    if patch.get("active") is not None:
        volunteer.active = patch["active"]
    volunteer.version += 1
    session.add(volunteer)
    await session.flush()
    return volunteer


async def list_volunteers(session: AsyncSession, principal: Principal, *, regency_code: str | None, rank: str | None, skill: str | None,
                          limit: int, cursor: str | None):
    stmt = select(Volunteer)
    if principal.region:
        stmt = stmt.where(access.in_region(Volunteer.regency_code, principal.region))
    if regency_code:
        stmt = stmt.where(Volunteer.regency_code == regions.normalise(regency_code))
    if rank:
        stmt = stmt.where(Volunteer.rank == rank)
    if skill:
        stmt = stmt.where(Volunteer.skills.contains([skill]))  # text[] @> ARRAY[skill] (the column is PostgreSQL's ARRAY)
    after = cursor_values(cursor, str)
    if after:
        stmt = stmt.where(Volunteer.member_number > after[0])
    rows = list((await session.exec(stmt.order_by(Volunteer.member_number).limit(limit + 1))).all())
    return page(rows, limit, lambda v: [v.member_number])


def _overlap_problem() -> Conflict:
    return Conflict("the volunteer is deployed elsewhere in that period", errors=[
        {"field": "started_on", "message": "overlaps another deployment of this volunteer", "rule": "deployment.overlap"}])


def _check_period(started_on: date, ended_on: date | None, hours: int, incident_started: date) -> list[dict[str, str]]:
    errors = []
    if started_on < incident_started:
        errors.append({"field": "started_on", "message": "before the incident started", "rule": "deployment.period"})
    if ended_on is not None and ended_on < started_on:
        errors.append({"field": "ended_on", "message": "before the deployment started", "rule": "deployment.period"})
    if ended_on is not None and hours > 24 * ((ended_on - started_on).days + 1):
        errors.append({"field": "hours", "message": "more hours than the deployment's days hold", "rule": "deployment.hours"})
    return errors


async def _flush_deployment(session: AsyncSession, deployment: Deployment) -> None:
    try:
        async with session.begin_nested():
            session.add(deployment)
            await session.flush()
    except IntegrityError as exc:
        if _sqlstate(exc) == EXCLUSION_VIOLATION:
            raise _overlap_problem() from exc
        raise


async def _overlaps(session: AsyncSession, volunteer_id: uuid.UUID, started_on: date, ended_on: date | None,
                    other_than: uuid.UUID | None = None) -> bool:
    row = (await session.execute(text(
        "SELECT 1 FROM deployment WHERE volunteer_id = :v AND id <> :me "
        "AND daterange(started_on, ended_on, '[]') && daterange(:s, :e, '[]') LIMIT 1"),
        {"v": volunteer_id, "me": other_than or uuid.UUID(int=0), "s": started_on, "e": ended_on})).first()
    return row is not None


async def deploy(session: AsyncSession, principal: Principal, incident_id: uuid.UUID, data: dict[str, Any]) -> Deployment:
    incident = await incidents.get_incident(session, principal, incident_id)
    incidents.writable(principal, incident)
    volunteer = await get_volunteer(session, principal, data["volunteer_id"])
    if not volunteer.active:
        raise Conflict("the volunteer is not active")
    errors = _check_period(data["started_on"], data.get("ended_on"), data.get("hours") or 0, incident.started_on)
    if errors:
        raise invalid(errors)
    if await _overlaps(session, volunteer.id, data["started_on"], data.get("ended_on")):
        raise _overlap_problem()
    deployment = Deployment(volunteer_id=volunteer.id, incident_id=incident.id, role=data["role"], started_on=data["started_on"],
                            ended_on=data.get("ended_on"), hours=data.get("hours") or 0, note=data.get("note"),
                            recorded_by=access.acting_user(principal))
    await _flush_deployment(session, deployment)
    return deployment


async def get_deployment(session: AsyncSession, principal: Principal, deployment_id: uuid.UUID) -> Deployment:
    deployment = (await session.exec(select(Deployment).where(Deployment.id == deployment_id).with_for_update())).first()
    if deployment is None:
        raise NotFound("no such deployment")
    await incidents.get_incident(session, principal, deployment.incident_id)
    return deployment


async def end_or_log_hours(session: AsyncSession, principal: Principal, deployment_id: uuid.UUID, patch: dict[str, Any]) -> Deployment:
    deployment = await get_deployment(session, principal, deployment_id)
    await get_volunteer(session, principal, deployment.volunteer_id)
    if deployment.version != patch["version"]:
        raise Conflict(f"the deployment changed since you read it (version {deployment.version})", current_version=deployment.version)
    ended_on = patch["ended_on"] if patch.get("ended_on") is not None else deployment.ended_on
    hours = patch["hours"] if patch.get("hours") is not None else deployment.hours
    errors = _check_period(deployment.started_on, ended_on, hours, deployment.started_on)
    if errors:
        raise invalid(errors)
    deployment.ended_on, deployment.hours = ended_on, hours
    deployment.version += 1
    await _flush_deployment(session, deployment)
    return deployment


async def deployments_of(session: AsyncSession, principal: Principal, *, incident_id: uuid.UUID | None = None,
                         volunteer_id: uuid.UUID | None = None) -> list[Deployment]:
    """Deployments of an incident or a volunteer. A regency office sees those of its own
    volunteers only (as in the incident's statistics), not its neighbour's in a shared incident."""
    stmt = select(Deployment)
    if principal.region is not None:
        own = select(Volunteer.id).where(access.in_region(Volunteer.regency_code, principal.region))
        stmt = stmt.where(Deployment.volunteer_id.in_(own))
    if incident_id is not None:
        stmt = stmt.where(Deployment.incident_id == incident_id)
    if volunteer_id is not None:
        stmt = stmt.where(Deployment.volunteer_id == volunteer_id)
    return list((await session.exec(stmt.order_by(Deployment.started_on, Deployment.id))).all())
