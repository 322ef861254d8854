"""HTTP routes of the rapid assessment: households with their members, single persons."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, Request

from pilar_kernel.auth import Principal
from pilar_kernel.db import SessionDep
from pilar_kernel.idempotency import idempotent

from .. import access
from ..fields import IDEMPOTENCY_KEY, CursorQuery, RegencyQuery
from . import service
from .schemas import Condition, DamageLevel, HouseholdIn, HouseholdOut, HouseholdPage, HouseholdPatch, PersonIn, PersonOut, PersonPage, PersonPatch

router = APIRouter(prefix="/v1", tags=["assessment"])


def _key(request: Request) -> str:
    return request.app.state.settings.nik_hash_key


@router.post("/incidents/{incident_id}/households", status_code=201, response_model=HouseholdOut,
             summary="Record an affected household and its members (rapid assessment)", dependencies=[IDEMPOTENCY_KEY])
async def assess_household(incident_id: uuid.UUID, body: HouseholdIn, request: Request, session: SessionDep,
                           principal: Principal = access.require(access.WRITE)):
    async def produce():
        household = await service.assess_household(session, principal, _key(request), incident_id, body.model_dump())
        return service.household_out(household, await service.members_of(session, household.id))

    return await idempotent(request, session, principal, produce)


@router.post("/incidents/{incident_id}/persons", status_code=201, response_model=PersonOut,
             summary="Record an affected person outside any assessed household", dependencies=[IDEMPOTENCY_KEY])
async def record_person(incident_id: uuid.UUID, body: PersonIn, request: Request, session: SessionDep,
                        principal: Principal = access.require(access.WRITE)):
    async def produce():
        return service.person_out(await service.record_person(session, principal, _key(request), incident_id, body.model_dump()))

    return await idempotent(request, session, principal, produce)


@router.get("/incidents/{incident_id}/households", response_model=HouseholdPage)
async def list_households(incident_id: uuid.UUID, session: SessionDep, principal: Principal = access.require(access.READ),
                          damage_level: DamageLevel | None = Query(default=None), regency_code: RegencyQuery = None,
                          limit: int = Query(default=100, ge=1, le=500), cursor: CursorQuery = None) -> dict:
    from ..incidents import service as incidents

    await incidents.get_incident(session, principal, incident_id)
    rows, next_cursor = await service.list_households(session, principal, incident_id, damage_level=damage_level,
                                                      regency_code=regency_code, limit=limit, cursor=cursor)
    return {"items": [service.household_out(h) for h in rows], "next_cursor": next_cursor}


@router.get("/incidents/{incident_id}/persons", response_model=PersonPage)
async def list_persons(incident_id: uuid.UUID, session: SessionDep, principal: Principal = access.require(access.READ),
                       condition: Condition | None = Query(default=None), displaced: bool | None = Query(default=None),
                       limit: int = Query(default=100, ge=1, le=500), cursor: CursorQuery = None) -> dict:
    from ..incidents import service as incidents

    await incidents.get_incident(session, principal, incident_id)
    rows, next_cursor = await service.list_persons(session, principal, incident_id, condition=condition, displaced=displaced,
                                                   limit=limit, cursor=cursor)
    return {"items": [service.person_out(p) for p in rows], "next_cursor": next_cursor}


@router.get("/households/{household_id}", response_model=HouseholdOut)
async def get_household(household_id: uuid.UUID, session: SessionDep, principal: Principal = access.require(access.READ)):
    household = await service.get_household(session, principal, household_id)
    return service.household_out(household, await service.members_of(session, household.id))


@router.patch("/households/{household_id}", response_model=HouseholdOut, summary="Re-assess damage or displacement",
              dependencies=[IDEMPOTENCY_KEY])
async def reassess_household(household_id: uuid.UUID, body: HouseholdPatch, request: Request, session: SessionDep,
                             principal: Principal = access.require(access.WRITE)):
    async def produce():
        household = await service.reassess_household(session, principal, household_id, body.model_dump(exclude_unset=True))
        return service.household_out(household, await service.members_of(session, household.id))

    return await idempotent(request, session, principal, produce, status_code=200)


@router.get("/persons/{person_id}", response_model=PersonOut)
async def get_person(person_id: uuid.UUID, session: SessionDep, principal: Principal = access.require(access.READ)):
    return service.person_out(await service.get_person(session, principal, person_id))


@router.patch("/persons/{person_id}", response_model=PersonOut, summary="Update condition, displacement or evacuation point",
              dependencies=[IDEMPOTENCY_KEY])
async def update_person(person_id: uuid.UUID, body: PersonPatch, request: Request, session: SessionDep,
                        principal: Principal = access.require(access.WRITE)):
    async def produce():
        return service.person_out(await service.update_person(session, principal, person_id, body.model_dump(exclude_unset=True)))

    return await idempotent(request, session, principal, produce, status_code=200)
