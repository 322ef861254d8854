"""Use cases of evacuation points: opening and closing, headcounts, public-kitchen portions."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from pilar_kernel.auth import Principal
from pilar_kernel.problems import Conflict, NotFound

from .. import access
from ..incidents import service as incidents
from ..places import address, invalid
from .models import EvacuationPoint, Headcount, KitchenDay


async def open_point(session: AsyncSession, principal: Principal, incident_id: uuid.UUID, data: dict[str, Any]) -> EvacuationPoint:
    incident = await incidents.get_incident(session, principal, incident_id)
    if incident.status == "closed":
        raise Conflict("the incident is closed")
    regency, district, village = address(data.get("village_code"), data.get("district_code"))
    incidents.writable(principal, incident, regency)
    if data["opened_on"] < incident.started_on:
        raise invalid([{"field": "opened_on", "message": "before the incident started", "rule": "point.opened_on"}])
    point = EvacuationPoint(incident_id=incident.id, name=data["name"], regency_code=regency, district_code=district, village_code=village,
                            latitude=data.get("latitude"), longitude=data.get("longitude"), capacity=data["capacity"],
                            opened_on=data["opened_on"], created_by=access.acting_user(principal))
    session.add(point)
    await session.flush()
    return point


async def get_point(session: AsyncSession, principal: Principal, point_id: uuid.UUID, *, for_update: bool = False) -> EvacuationPoint:
    stmt = select(EvacuationPoint).where(EvacuationPoint.id == point_id)
    if for_update:
        stmt = stmt.with_for_update()
    point = (await session.exec(stmt)).first()
    if point is None or not principal.may_access_region(point.regency_code):
        raise NotFound("no such evacuation point")
    return point


async def update_point(session: AsyncSession, principal: Principal, point_id: uuid.UUID, patch: dict[str, Any]) -> EvacuationPoint:
    point = await get_point(session, principal, point_id, for_update=True)
    access.ensure_own_region(principal, point.regency_code, "evacuation points")
    if point.version != patch["version"]:
        raise Conflict(f"the point changed since you read it (version {point.version})", current_version=point.version)
    if patch.get("capacity") is not None:
        point.capacity = patch["capacity"]
    if patch.get("closed_on") is not None:
        if patch["closed_on"] < point.opened_on:
            raise invalid([{"field": "closed_on", "message": "before the point opened", "rule": "point.closed_on"}])
        point.closed_on = patch["closed_on"]
    point.version += 1
    session.add(point)
    await session.flush()
    return point


async def report_headcount(session: AsyncSession, principal: Principal, point_id: uuid.UUID, data: dict[str, Any]) -> Headcount:
    point = await get_point(session, principal, point_id)
    access.ensure_own_region(principal, point.regency_code, "headcounts")
    errors = [{"field": g, "message": "more than the total", "rule": "headcount.group"}
              for g in ("elderly", "disabled", "children", "pregnant") if data[g] > data["total"]]
    day = data["reported_at"].date()
    if day < point.opened_on or (point.closed_on is not None and day > point.closed_on):
        errors.append({"field": "reported_at", "message": "outside the days the point was open", "rule": "headcount.period"})
    if data["reported_at"] > datetime.now(UTC):
        errors.append({"field": "reported_at", "message": "in the future", "rule": "headcount.future"})
    if errors:
        raise invalid(errors)
    row = Headcount(point_id=point.id, reported_by=access.acting_user(principal), **data)
    session.add(row)
    await session.flush()
    return row


async def headcounts(session: AsyncSession, point_id: uuid.UUID) -> list[Headcount]:
    stmt = select(Headcount).where(Headcount.point_id == point_id).order_by(Headcount.reported_at, Headcount.id)
    return list((await session.exec(stmt)).all())


async def latest(session: AsyncSession, point_id: uuid.UUID) -> Headcount | None:
    stmt = select(Headcount).where(Headcount.point_id == point_id).order_by(Headcount.reported_at.desc(), Headcount.id.desc()).limit(1)
    return (await session.exec(stmt)).first()


async def set_kitchen(session: AsyncSession, principal: Principal, point_id: uuid.UUID, day: date, portions: int) -> KitchenDay:
    point = await get_point(session, principal, point_id)
    access.ensure_own_region(principal, point.regency_code, "kitchen reports")
    if day < point.opened_on or day > date.today():
        raise invalid([{"field": "day", "message": "not a day the point has been open", "rule": "kitchen.day"}])
    stmt = pg_insert(KitchenDay.__table__).values(point_id=point.id, day=day, portions=portions, updated_by=access.acting_user(principal),
                                                  updated_at=datetime.now(UTC))
    await session.execute(stmt.on_conflict_do_update(index_elements=["point_id", "day"], set_={
        "portions": stmt.excluded.portions, "updated_by": stmt.excluded.updated_by, "updated_at": stmt.excluded.updated_at}))
    return KitchenDay(point_id=point.id, day=day, portions=portions, updated_by=access.acting_user(principal))


async def kitchen_days(session: AsyncSession, point_id: uuid.UUID) -> list[KitchenDay]:
    return list((await session.exec(select(KitchenDay).where(KitchenDay.point_id == point_id).order_by(KitchenDay.day))).all())


async def points_of(session: AsyncSession, principal: Principal, incident_id: uuid.UUID) -> list[EvacuationPoint]:
    rows = (await session.exec(select(EvacuationPoint).where(EvacuationPoint.incident_id == incident_id).order_by(EvacuationPoint.name))).all()
    return [p for p in rows if principal.may_access_region(p.regency_code)]


def headcount_out(h: Headcount | None, point: EvacuationPoint) -> dict[str, Any] | None:
    if h is None:
        return None
    out = h.model_dump(exclude={"id", "point_id"})
    out["over_capacity"] = h.total > point.capacity
    return out


def point_out(point: EvacuationPoint, last: Headcount | None = None) -> dict[str, Any]:
    out = point.model_dump(exclude={"created_by", "created_at"})
    out["latest"] = headcount_out(last, point)
    return out
