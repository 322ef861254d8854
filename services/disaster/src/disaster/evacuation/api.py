"""HTTP routes of evacuation points."""

from __future__ import annotations

import uuid
from datetime import date

from fastapi import APIRouter, Request

from pilar_kernel.auth import Principal
from pilar_kernel.db import SessionDep
from pilar_kernel.idempotency import idempotent

from .. import access
from ..fields import IDEMPOTENCY_KEY
from . import service
from .schemas import HeadcountIn, HeadcountOut, KitchenIn, KitchenOut, PointIn, PointOut, PointPatch

router = APIRouter(prefix="/v1", tags=["evacuation"])


@router.post("/incidents/{incident_id}/evacuation-points", status_code=201, response_model=PointOut, summary="Open an evacuation point",
             dependencies=[IDEMPOTENCY_KEY])
async def open_point(incident_id: uuid.UUID, body: PointIn, request: Request, session: SessionDep,
                     principal: Principal = access.require(access.WRITE)):
    async def produce():
        return service.point_out(await service.open_point(session, principal, incident_id, body.model_dump()))

    return await idempotent(request, session, principal, produce)


@router.get("/incidents/{incident_id}/evacuation-points", response_model=list[PointOut], summary="Points with their latest headcount")
async def list_points(incident_id: uuid.UUID, session: SessionDep, principal: Principal = access.require(access.READ)):
    from ..incidents import service as incidents

    await incidents.get_incident(session, principal, incident_id)
    return [service.point_out(p, await service.latest(session, p.id)) for p in await service.points_of(session, principal, incident_id)]


@router.get("/evacuation-points/{point_id}", response_model=PointOut)
async def get_point(point_id: uuid.UUID, session: SessionDep, principal: Principal = access.require(access.READ)):
    point = await service.get_point(session, principal, point_id)
    return service.point_out(point, await service.latest(session, point.id))


@router.patch("/evacuation-points/{point_id}", response_model=PointOut, summary="Change capacity or close the point",
              dependencies=[IDEMPOTENCY_KEY])
async def update_point(point_id: uuid.UUID, body: PointPatch, request: Request, session: SessionDep,
                       principal: Principal = access.require(access.WRITE)):
    async def produce():
        point = await service.update_point(session, principal, point_id, body.model_dump(exclude_unset=True))
        return service.point_out(point, await service.latest(session, point.id))

    return await idempotent(request, session, principal, produce, status_code=200)


@router.post("/evacuation-points/{point_id}/headcounts", status_code=201, response_model=HeadcountOut, summary="Report who stays there now",
             dependencies=[IDEMPOTENCY_KEY])
async def report_headcount(point_id: uuid.UUID, body: HeadcountIn, request: Request, session: SessionDep,
                           principal: Principal = access.require(access.WRITE)):
    async def produce():
        row = await service.report_headcount(session, principal, point_id, body.model_dump())
        return service.headcount_out(row, await service.get_point(session, principal, point_id))

    return await idempotent(request, session, principal, produce)


@router.get("/evacuation-points/{point_id}/headcounts", response_model=list[HeadcountOut], summary="Headcounts over time")
async def list_headcounts(point_id: uuid.UUID, session: SessionDep, principal: Principal = access.require(access.READ)):
    point = await service.get_point(session, principal, point_id)
    return [service.headcount_out(h, point) for h in await service.headcounts(session, point.id)]


@router.put("/evacuation-points/{point_id}/kitchen/{day}", response_model=KitchenOut, summary="Public-kitchen portions served on a day")
async def set_kitchen(point_id: uuid.UUID, day: date, body: KitchenIn, session: SessionDep, principal: Principal = access.require(access.WRITE)):
    row = await service.set_kitchen(session, principal, point_id, day, body.portions)
    return {"day": row.day, "portions": row.portions}


@router.get("/evacuation-points/{point_id}/kitchen", response_model=list[KitchenOut])
async def list_kitchen(point_id: uuid.UUID, session: SessionDep, principal: Principal = access.require(access.READ)):
    point = await service.get_point(session, principal, point_id)
    return [{"day": k.day, "portions": k.portions} for k in await service.kitchen_days(session, point.id)]
