"""HTTP routes of recipients named by hand (four eyes): a household whose emergency cash is
held because none of its members can receive it gets a registry person named by one officer
and confirmed by another. See ``people.recipients``."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from pilar_kernel.auth import Principal
from pilar_kernel.db import SessionDep
from pilar_kernel.idempotency import idempotent

from .. import access
from . import recipients, service
from .schemas import HouseholdOut, RecipientAssignmentOut, RecipientIn

router = APIRouter(prefix="/v1", tags=["assessment"])


def _out(assignment) -> dict:
    return RecipientAssignmentOut.model_validate(recipients.assignment_out(assignment)).model_dump(mode="json")


@router.get("/households/{household_id}/recipient-assignments", response_model=list[RecipientAssignmentOut],
            summary="Recipients named by hand for a household, oldest first (the record of who named whom, why, who confirmed)")
async def list_assignments(household_id: uuid.UUID, session: SessionDep, principal: Principal = access.require(access.READ)):
    return [_out(a) for a in await recipients.list_for(session, principal, household_id)]


@router.post("/households/{household_id}/recipient-assignments", status_code=201, response_model=RecipientAssignmentOut,
             summary="Name a registry person to receive the household's aid; another officer confirms",
             description="Replaces an open proposal for the household. The person must be active in the registry and not "
                         "recorded dead or missing in the incident. Honours Idempotency-Key.")
async def propose(household_id: uuid.UUID, body: RecipientIn, request: Request, session: SessionDep,
                  principal: Principal = access.require(access.WRITE)):
    async def produce():
        return _out(await recipients.propose(session, principal, household_id, body.person_id, body.reason))

    return await idempotent(request, session, principal, produce)


@router.post("/recipient-assignments/{assignment_id}/confirm", response_model=HouseholdOut,
             summary="Confirm a recipient named by hand (four eyes: not the officer who named them); releases held emergency cash",
             description="The household is announced again with the new recipient and its next version, so a held "
                         "emergency-cash grant is paid (once). Honours Idempotency-Key.")
async def confirm(assignment_id: uuid.UUID, request: Request, session: SessionDep, principal: Principal = access.require(access.APPROVE)):
    async def produce():
        _, household = await recipients.confirm(session, principal, assignment_id)
        out = service.household_out(household, await service.members_of(session, household.id))
        return HouseholdOut.model_validate(out).model_dump(mode="json")

    return await idempotent(request, session, principal, produce, status_code=200)
