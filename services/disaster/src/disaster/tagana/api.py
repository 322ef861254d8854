"""HTTP routes of Tagana volunteers and their deployments."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, Request

from pilar_kernel.auth import Principal
from pilar_kernel.db import SessionDep
from pilar_kernel.idempotency import idempotent

from .. import access
from ..fields import IDEMPOTENCY_KEY, CursorQuery, RegencyQuery
from . import service
from .schemas import DeploymentIn, DeploymentOut, DeploymentPatch, Rank, Skill, VolunteerIn, VolunteerOut, VolunteerPage, VolunteerPatch

router = APIRouter(prefix="/v1", tags=["tagana"])


def _v(v) -> dict:
    return VolunteerOut.model_validate(v, from_attributes=True).model_dump()


def _d(d) -> dict:
    return DeploymentOut.model_validate(d, from_attributes=True).model_dump()


@router.post("/volunteers", status_code=201, response_model=VolunteerOut, summary="Register a Tagana volunteer",
             dependencies=[IDEMPOTENCY_KEY])
async def register(body: VolunteerIn, request: Request, session: SessionDep, principal: Principal = access.require(access.WRITE)):
    async def produce():
        return _v(await service.register(session, principal, body.model_dump()))

    return await idempotent(request, session, principal, produce)


@router.get("/volunteers", response_model=VolunteerPage)
async def list_volunteers(session: SessionDep, principal: Principal = access.require(access.READ),
                          regency_code: RegencyQuery = None, rank: Rank | None = Query(default=None),
                          skill: Skill | None = Query(default=None, description="volunteers having this skill"),
                          limit: int = Query(default=100, ge=1, le=500), cursor: CursorQuery = None) -> dict:
    rows, next_cursor = await service.list_volunteers(session, principal, regency_code=regency_code, rank=rank, skill=skill,
                                                      limit=limit, cursor=cursor)
    return {"items": [_v(v) for v in rows], "next_cursor": next_cursor}


@router.get("/volunteers/{volunteer_id}", response_model=VolunteerOut)
async def get_volunteer(volunteer_id: uuid.UUID, session: SessionDep, principal: Principal = access.require(access.READ)):
    return _v(await service.get_volunteer(session, principal, volunteer_id))


@router.patch("/volunteers/{volunteer_id}", response_model=VolunteerOut, dependencies=[IDEMPOTENCY_KEY])
async def update_volunteer(volunteer_id: uuid.UUID, body: VolunteerPatch, request: Request, session: SessionDep,
                           principal: Principal = access.require(access.WRITE)):
    async def produce():
        return _v(await service.update(session, principal, volunteer_id, body.model_dump(exclude_unset=True)))

    return await idempotent(request, session, principal, produce, status_code=200)


@router.get("/volunteers/{volunteer_id}/deployments", response_model=list[DeploymentOut])
async def volunteer_deployments(volunteer_id: uuid.UUID, session: SessionDep, principal: Principal = access.require(access.READ)):
    await service.get_volunteer(session, principal, volunteer_id)
    return [_d(d) for d in await service.deployments_of(session, principal, volunteer_id=volunteer_id)]


@router.post("/incidents/{incident_id}/deployments", status_code=201, response_model=DeploymentOut,
             summary="Deploy a volunteer to an incident (never overlapping another deployment)", dependencies=[IDEMPOTENCY_KEY])
async def deploy(incident_id: uuid.UUID, body: DeploymentIn, request: Request, session: SessionDep,
                 principal: Principal = access.require(access.WRITE)):
    async def produce():
        return _d(await service.deploy(session, principal, incident_id, body.model_dump()))

    return await idempotent(request, session, principal, produce)


@router.get("/incidents/{incident_id}/deployments", response_model=list[DeploymentOut])
async def incident_deployments(incident_id: uuid.UUID, session: SessionDep, principal: Principal = access.require(access.READ)):
    from ..incidents import service as incidents

    await incidents.get_incident(session, principal, incident_id)
    return [_d(d) for d in await service.deployments_of(session, principal, incident_id=incident_id)]


@router.patch("/deployments/{deployment_id}", response_model=DeploymentOut, summary="End a deployment or log its hours",
              dependencies=[IDEMPOTENCY_KEY])
async def end_deployment(deployment_id: uuid.UUID, body: DeploymentPatch, request: Request, session: SessionDep,
                         principal: Principal = access.require(access.WRITE)):
    async def produce():
        return _d(await service.end_or_log_hours(session, principal, deployment_id, body.model_dump(exclude_unset=True)))

    return await idempotent(request, session, principal, produce, status_code=200)
