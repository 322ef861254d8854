"""HTTP routes of incidents: declaration, status changes with their history, lists, statistics."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, Request

from pilar_kernel.auth import Principal
from pilar_kernel.db import SessionDep
from pilar_kernel.idempotency import idempotent

from .. import access, statistics
from ..fields import IDEMPOTENCY_KEY, CursorQuery, RegencyQuery
from . import domain, service
from .schemas import Hazard, IncidentIn, IncidentOut, IncidentPage, Status, StatusChangeIn, StatusOut

router = APIRouter(prefix="/v1", tags=["incidents"])


def _out(incident) -> dict:
    return IncidentOut.model_validate(incident, from_attributes=True).model_dump()


@router.get("/reference/hazards", summary="Hazards by disaster category (UU 24/2007)")
async def hazards(principal: Principal = access.require(access.READ)) -> dict:
    return {"categories": {k: list(v) for k, v in domain.HAZARDS.items()}, "statuses": list(domain.STATUSES)}


@router.post("/incidents", status_code=201, response_model=IncidentOut, summary="Record an incident with its first status",
             dependencies=[IDEMPOTENCY_KEY])
async def declare(body: IncidentIn, request: Request, session: SessionDep, principal: Principal = access.require(access.WRITE)):
    async def produce():
        return _out(await service.declare(session, principal, body.model_dump()))

    return await idempotent(request, session, principal, produce)


@router.get("/incidents", response_model=IncidentPage, summary="Incidents, newest first")
async def list_incidents(
    session: SessionDep,
    principal: Principal = access.require(access.READ),
    status: Status | None = Query(default=None),
    regency_code: RegencyQuery = None,
    hazard: Hazard | None = Query(default=None),
    limit: int = Query(default=50, ge=1, le=500),
    cursor: CursorQuery = None,
) -> dict:
    rows, next_cursor = await service.list_incidents(session, principal, status=status, regency_code=regency_code, hazard=hazard,
                                                     limit=limit, cursor=cursor)
    return {"items": [_out(r) for r in rows], "next_cursor": next_cursor}


@router.get("/incidents/{incident_id}", response_model=IncidentOut)
async def get_incident(incident_id: uuid.UUID, session: SessionDep, principal: Principal = access.require(access.READ)):
    return _out(await service.get_incident(session, principal, incident_id))


@router.post("/incidents/{incident_id}/status", response_model=IncidentOut, summary="Change (or extend) the status under a decree",
             dependencies=[IDEMPOTENCY_KEY])
async def change_status(incident_id: uuid.UUID, body: StatusChangeIn, request: Request, session: SessionDep,
                        principal: Principal = access.require(access.WRITE)):
    async def produce():
        return _out(await service.change_status(session, principal, incident_id, body.model_dump()))

    return await idempotent(request, session, principal, produce, status_code=200)


@router.get("/incidents/{incident_id}/status-history", response_model=list[StatusOut], summary="Every status the incident had")
async def status_history(incident_id: uuid.UUID, session: SessionDep, principal: Principal = access.require(access.READ)):
    await service.get_incident(session, principal, incident_id)
    return [StatusOut.model_validate(h, from_attributes=True).model_dump() for h in await service.history(session, incident_id)]


@router.get("/incidents/{incident_id}/statistics", summary="Affected, displaced, casualties, evacuation, stock and volunteers")
async def incident_statistics(incident_id: uuid.UUID, session: SessionDep, principal: Principal = access.require(access.READ)) -> dict:
    incident = await service.get_incident(session, principal, incident_id)
    return await statistics.of_incident(session, incident, principal.region)


@router.get("/stats", summary="Across incidents: incidents by status and hazard, affected households and persons")
async def overview_statistics(session: SessionDep, principal: Principal = access.require(access.READ)) -> dict:
    return await statistics.overview(session, principal.region)
