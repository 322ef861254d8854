"""HTTP routes of the programme catalogue (``/v1/programmes``) and of enrolments (``/v1/enrolments``)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from pilar_kernel.auth import Principal, require_scopes
from pilar_kernel.db import SessionDep
from pilar_kernel.idempotency import idempotent

from .. import access
from ..fields import CURSOR_MAX
from ..persons.service import get_person
from . import service
from .domain import CODE_PATTERN
from .schemas import (
    ApproveIn,
    EndIn,
    EnrolmentIn,
    EnrolmentOut,
    EnrolmentPage,
    ProgrammeAuditOut,
    ProgrammeIn,
    ProgrammeOut,
    ProgrammeUpdate,
    RejectIn,
    ResumeIn,
    Status,
    SuspendIn,
    VerifyIn,
)

router = APIRouter(prefix="/v1", tags=["programmes"])

Reader = Annotated[Principal, require_scopes(access.READ)]
Writer = Annotated[Principal, require_scopes(access.WRITE)]
Verifier = Annotated[Principal, require_scopes(access.VERIFY)]
Approver = Annotated[Principal, require_scopes(access.APPROVE)]
Admin = Annotated[Principal, require_scopes(access.PROGRAMME_ADMIN)]
Code = Annotated[str, Path(pattern=CODE_PATTERN, description="programme code (PKH_PLUS, ASPD...)")]

_LIFECYCLE = ("proposed → verified → active (approved) | rejected; active ⇄ suspended; open → ended. "
              "With an Idempotency-Key, a retry of the same request answers the first response again.")


async def _transition(request: Request, session, principal: Principal, step):
    """One enrolment transition, honouring ``Idempotency-Key`` (a retry gets the first answer, not a 409)."""
    async def produce():
        return EnrolmentOut.model_validate(service.enrolment_out(await step())).model_dump(mode="json")

    return await idempotent(request, session, principal, produce, status_code=200)


# -- catalogue ----------------------------------------------------------------------------


@router.get("/programmes", response_model=list[ProgrammeOut], summary="The programme catalogue")
async def list_programmes(session: SessionDep, principal: Reader, active: bool | None = Query(default=None, description="only open (true) or closed (false) programmes")):
    return [service.programme_out(p) for p in await service.list_programmes(session, active=active)]


@router.get("/programmes/{code}", response_model=ProgrammeOut, summary="One programme with its eligibility rules")
async def get_programme(code: Code, session: SessionDep, principal: Reader):
    return service.programme_out(await service.get_programme(session, code))


@router.post("/programmes", status_code=201, response_model=ProgrammeOut, summary="Add a programme to the catalogue (audited)")
async def create_programme(body: ProgrammeIn, request: Request, session: SessionDep, principal: Admin):
    async def produce():
        return ProgrammeOut.model_validate(service.programme_out(await service.create_programme(session, principal, body.model_dump()))).model_dump(mode="json")

    return await idempotent(request, session, principal, produce)


@router.put("/programmes/{code}", response_model=ProgrammeOut,
            summary="Replace a programme's name, rules, amount and flags (optimistic: send the version you read; audited)")
async def update_programme(code: Code, body: ProgrammeUpdate, request: Request, session: SessionDep, principal: Admin):
    async def produce():
        out = service.programme_out(await service.update_programme(session, principal, code, body.model_dump()))
        return ProgrammeOut.model_validate(out).model_dump(mode="json")

    return await idempotent(request, session, principal, produce, status_code=200)


@router.get("/programmes/{code}/audit", response_model=list[ProgrammeAuditOut], summary="Every change to a programme, oldest first")
async def programme_audit(code: Code, session: SessionDep, principal: Reader):
    return [row.model_dump() for row in await service.programme_audit(session, code)]


# -- enrolments ---------------------------------------------------------------------------


@router.post("/enrolments", status_code=201, response_model=EnrolmentOut,
             summary="Propose a person for a programme (eligibility checked: a refusal lists every failed rule)")
async def propose(body: EnrolmentIn, request: Request, session: SessionDep, principal: Writer):
    async def produce():
        out = service.enrolment_out(await service.propose(session, principal, body.person_id, body.programme_code))
        return EnrolmentOut.model_validate(out).model_dump(mode="json")

    return await idempotent(request, session, principal, produce)


@router.get("/enrolments", response_model=EnrolmentPage, summary="List enrolments (a regency office sees its own region's)")
async def list_enrolments(
    session: SessionDep,
    principal: Reader,
    person_id: uuid.UUID | None = None,
    programme_code: str | None = Query(default=None, pattern=CODE_PATTERN),
    status: Status | None = None,
    regency_code: str | None = Query(default=None, pattern=r"^35\.\d{2}$"),
    limit: int = Query(default=50, ge=1, le=500),
    cursor: str | None = Query(default=None, max_length=CURSOR_MAX),
):
    items, next_cursor = await service.list_enrolments(session, principal, person_id=person_id, programme_code=programme_code, status=status,
                                                       regency_code=regency_code, limit=limit, cursor=cursor)
    return {"items": [service.enrolment_out(e) for e in items], "next_cursor": next_cursor}


@router.get("/enrolments/{enrolment_id}", response_model=EnrolmentOut, summary="One enrolment")
async def get_enrolment(enrolment_id: uuid.UUID, session: SessionDep, principal: Reader):
    return service.enrolment_out(await service.get_enrolment(session, principal, enrolment_id))


@router.post("/enrolments/{enrolment_id}/verify", response_model=EnrolmentOut,
             summary="Record the field verification (by another user than the proposer)", description=_LIFECYCLE)
async def verify(enrolment_id: uuid.UUID, request: Request, session: SessionDep, principal: Verifier, body: VerifyIn | None = None):
    version = body.version if body else None
    return await _transition(request, session, principal, lambda: service.verify(session, principal, enrolment_id, version=version))


@router.post("/enrolments/{enrolment_id}/approve", response_model=EnrolmentOut,
             summary="Approve: eligibility is checked again; the person is payable from active_from", description=_LIFECYCLE)
async def approve(enrolment_id: uuid.UUID, request: Request, session: SessionDep, principal: Approver, body: ApproveIn | None = None):
    body = body or ApproveIn()
    return await _transition(request, session, principal,
                             lambda: service.approve(session, principal, enrolment_id, active_from=body.active_from, version=body.version))


@router.post("/enrolments/{enrolment_id}/reject", response_model=EnrolmentOut, summary="Reject, with the reason", description=_LIFECYCLE)
async def reject(enrolment_id: uuid.UUID, body: RejectIn, request: Request, session: SessionDep, principal: Approver):
    return await _transition(request, session, principal, lambda: service.reject(session, principal, enrolment_id, body.reason, version=body.version))


@router.post("/enrolments/{enrolment_id}/suspend", response_model=EnrolmentOut, summary="Suspend an active enrolment, with the reason",
             description=_LIFECYCLE)
async def suspend(enrolment_id: uuid.UUID, body: SuspendIn, request: Request, session: SessionDep, principal: Writer):
    return await _transition(request, session, principal, lambda: service.suspend(session, principal, enrolment_id, body.reason, version=body.version))


@router.post("/enrolments/{enrolment_id}/resume", response_model=EnrolmentOut,
             summary="Resume a suspended enrolment (eligibility is checked again)", description=_LIFECYCLE)
async def resume(enrolment_id: uuid.UUID, request: Request, session: SessionDep, principal: Approver, body: ResumeIn | None = None):
    version = body.version if body else None
    return await _transition(request, session, principal, lambda: service.resume(session, principal, enrolment_id, version=version))


@router.post("/enrolments/{enrolment_id}/end", response_model=EnrolmentOut,
             summary="End an enrolment: death, graduation, moved, no_longer_eligible or other", description=_LIFECYCLE)
async def end(enrolment_id: uuid.UUID, body: EndIn, request: Request, session: SessionDep, principal: Writer):
    return await _transition(request, session, principal,
                             lambda: service.end(session, principal, enrolment_id, body.reason, ended_on=body.ended_on, version=body.version))


@router.get("/persons/{person_id}/enrolments", response_model=EnrolmentPage, summary="A person's enrolments, oldest first")
async def person_enrolments(
    person_id: uuid.UUID,
    session: SessionDep,
    principal: Reader,
    limit: int = Query(default=50, ge=1, le=500),
    cursor: str | None = Query(default=None, max_length=CURSOR_MAX),
):
    await get_person(session, principal, person_id)  # 404 outside the caller's region
    items, next_cursor = await service.list_enrolments(session, principal, person_id=person_id, limit=limit, cursor=cursor, region_limited=False)
    return {"items": [service.enrolment_out(e) for e in items], "next_cursor": next_cursor}
