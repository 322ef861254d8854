"""Use cases of incidents. Each runs inside the caller's transaction and records its events
in the outbox there; a status change locks the incident row first (per-incident order)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import literal, text, tuple_
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from pilar_kernel import regions
from pilar_kernel.auth import Principal
from pilar_kernel.pagination import page
from pilar_kernel.problems import Conflict, Forbidden, NotFound

from .. import access
from ..events import IncidentDeclared, IncidentStatusChanged, emit
from ..fields import cursor_values
from ..places import check_code, invalid
from . import domain
from .models import Incident, IncidentStatus


def _now() -> datetime:
    return datetime.now(UTC)


async def get_incident(session: AsyncSession, principal: Principal, incident_id: uuid.UUID, *, for_update: bool = False) -> Incident:
    stmt = select(Incident).where(Incident.id == incident_id)
    if for_update:
        stmt = stmt.with_for_update()
    incident = (await session.exec(stmt)).first()
    if incident is None:
        raise NotFound("no such incident")
    access.ensure_visible(principal, incident.regency_codes, "incident")
    return incident


def writable(principal: Principal, incident: Incident, regency_code: str | None = None) -> None:
    """A regency office writes only to incidents touching its region, and only records located there."""
    if not access.sees_any(principal, incident.regency_codes):
        raise Forbidden("this incident is outside your region")
    if regency_code is not None:
        if regency_code not in incident.regency_codes:
            raise invalid([{"field": "village_code", "message": f"{regency_code} is not an affected regency of this incident", "rule": "incident.area"}])
        access.ensure_own_region(principal, regency_code, "records")


def _check_areas(data: dict[str, Any]) -> tuple[list[str], list[str]]:
    errors: list[dict[str, str]] = []
    regencies: list[str] = []
    for i, code in enumerate(data["regency_codes"]):
        e = check_code(code, "regency", f"regency_codes.{i}")
        errors += e
        if not e:
            regencies.append(regions.normalise(code))
    districts: list[str] = []
    for i, code in enumerate(data.get("district_codes") or []):
        e = check_code(code, "district", f"district_codes.{i}")
        if not e and regions.regency_of(code) not in regencies:
            e = [{"field": f"district_codes.{i}", "message": "the district lies outside the affected regencies", "rule": "incident.area"}]
        errors += e
        if not e:
            districts.append(regions.normalise(code))
    if errors:
        raise invalid(errors)
    return sorted(set(regencies)), sorted(set(districts))


async def declare(session: AsyncSession, principal: Principal, data: dict[str, Any]) -> Incident:
    errors = domain.check_kind(data["category"], data["hazard"])
    effective_from = data.get("effective_from") or data["started_on"]
    errors += domain.check_decree(data["status"], data.get("decree_number"), data.get("authority"), effective_from, data.get("effective_until"))
    if data["started_on"] > date.today():
        errors.append({"field": "started_on", "message": "the incident cannot start in the future", "rule": "incident.started_on"})
    if errors:
        raise invalid(errors)
    regencies, districts = _check_areas(data)
    for code in regencies:
        access.ensure_own_region(principal, code, "incidents")
    user = access.acting_user(principal)
    incident = Incident(
        name=data["name"], category=data["category"], hazard=data["hazard"], regency_codes=regencies, district_codes=districts,
        started_on=data["started_on"], description=data.get("description"), status=data["status"],
        decree_number=data.get("decree_number"), authority=data.get("authority"), status_from=effective_from,
        status_until=data.get("effective_until"), created_by=user,
    )
    session.add(incident)
    await session.flush()
    session.add(IncidentStatus(incident_id=incident.id, seq=1, from_status=None, to_status=incident.status, decree_number=incident.decree_number,
                               authority=incident.authority, effective_from=effective_from, effective_until=incident.status_until,
                               recorded_by=user))
    await session.flush()
    await emit(session, IncidentDeclared(
        incident_id=incident.id, category=incident.category, hazard=incident.hazard, regency_codes=regencies, district_codes=districts,
        started_on=incident.started_on, status=incident.status, decree_number=incident.decree_number, authority=incident.authority,
        effective_from=effective_from, effective_until=incident.status_until, version=1,
    ))
    return incident


async def change_status(session: AsyncSession, principal: Principal, incident_id: uuid.UUID, data: dict[str, Any]) -> Incident:
    incident = await get_incident(session, principal, incident_id, for_update=True)
    writable(principal, incident)
    if incident.version != data["version"]:
        raise Conflict(f"the incident changed since you read it (version {incident.version}, you sent {data['version']})",
                       current_version=incident.version)
    target = data["status"]
    if not domain.can_move(incident.status, target):
        raise Conflict(f"an incident in {incident.status} cannot move to {target}", rule="status.transition")
    errors = domain.check_decree(target, data.get("decree_number"), data.get("authority"), data["effective_from"], data.get("effective_until"))
    if data["effective_from"] < incident.status_from:
        errors.append({"field": "effective_from", "message": f"before the current status began ({incident.status_from})", "rule": "status.order"})
    if errors:
        raise invalid(errors)
    before = incident.status
    incident.status, incident.decree_number, incident.authority = target, data.get("decree_number"), data.get("authority")
    incident.status_from, incident.status_until = data["effective_from"], data.get("effective_until")
    incident.version += 1
    incident.updated_at = _now()
    session.add(incident)
    session.add(IncidentStatus(incident_id=incident.id, seq=incident.version, from_status=before, to_status=target,
                               decree_number=incident.decree_number, authority=incident.authority, effective_from=incident.status_from,
                               effective_until=incident.status_until, note=data.get("note"), recorded_by=access.acting_user(principal)))
    await session.flush()
    await emit(session, IncidentStatusChanged(
        incident_id=incident.id, category=incident.category, hazard=incident.hazard, regency_codes=incident.regency_codes,
        status=target, from_status=before, decree_number=incident.decree_number, authority=incident.authority,
        effective_from=incident.status_from, effective_until=incident.status_until, version=incident.version,
    ))
    return incident


async def history(session: AsyncSession, incident_id: uuid.UUID) -> list[IncidentStatus]:
    stmt = select(IncidentStatus).where(IncidentStatus.incident_id == incident_id).order_by(IncidentStatus.seq)
    return list((await session.exec(stmt)).all())


async def list_incidents(session: AsyncSession, principal: Principal, *, status: str | None, regency_code: str | None,
                         hazard: str | None, limit: int, cursor: str | None) -> tuple[list[Incident], str | None]:
    stmt = select(Incident)
    if principal.region:
        stmt = stmt.where(text("EXISTS (SELECT 1 FROM unnest(incident.regency_codes) r WHERE r = :reg OR r LIKE :reg || '.%')")
                          .bindparams(reg=principal.region))
    if regency_code:
        stmt = stmt.where(Incident.regency_codes.contains([regions.normalise(regency_code)]))
    if status:
        stmt = stmt.where(Incident.status == status)
    if hazard:
        stmt = stmt.where(Incident.hazard == hazard)
    after = cursor_values(cursor, date, uuid.UUID)
    if after:
        stmt = stmt.where(tuple_(Incident.started_on, Incident.id) < tuple_(literal(after[0]), literal(after[1])))
    rows = list((await session.exec(stmt.order_by(Incident.started_on.desc(), Incident.id.desc()).limit(limit + 1))).all())
    return page(rows, limit, lambda r: [r.started_on.isoformat(), str(r.id)])
