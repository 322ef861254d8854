"""HTTP routes of programmes, budgets and rounds (``/v1/programmes``, ``/v1/rounds``)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Path, Query, Request

from pilar_kernel.auth import Principal, require_scopes
from pilar_kernel.db import SessionDep
from pilar_kernel.idempotency import idempotent
from pilar_kernel.problems import problem_responses

from .. import access
from . import service
from .schemas import (
    CODE_PATTERN,
    ApproveIn,
    BudgetIn,
    BudgetOut,
    CancelRoundIn,
    EntryOut,
    EntryPage,
    PayeeIn,
    ProgrammeIn,
    ProgrammeOut,
    ProgrammeUpdate,
    Reason,
    RoundIn,
    RoundOut,
    RoundPage,
    RoundPatch,
    RoundStatus,
    SnapshotOut,
    YEAR_MAX,
    YEAR_MIN,
)

router = APIRouter(prefix="/v1", tags=["rounds"])


Reader = Annotated[Principal, require_scopes(access.READ)]
Preparer = Annotated[Principal, access.provincial(access.PREPARE)]
Approver = Annotated[Principal, access.provincial(access.APPROVE)]
Admin = Annotated[Principal, access.provincial(access.PROGRAMME_ADMIN)]
Code = Annotated[str, Path(pattern=CODE_PATTERN)]

_LIFECYCLE = "draft → snapshot (may be taken again) → approved (another officer, SK number) → disbursing → closed; cancelled before disbursing"


def wake_sender(request: Request, tasks: BackgroundTasks) -> None:
    """After the commit (background tasks run after the response), nudge the bank sender."""
    sender = getattr(request.app.state, "bank_sender", None)
    if sender is not None:
        tasks.add_task(sender.wake)


# -- programmes and budgets ---------------------------------------------------------------


async def _programme_out(session, programme) -> dict:
    budgets = await service.budgets_of(session, programme.code)
    return {
        **programme.model_dump(exclude={"updated_at"}),
        "budgets": [{"year": b.year, "amount": b.amount, "allocated": b.allocated, "remaining": b.amount - b.allocated, "version": b.version}
                    for b in budgets],
    }


@router.get("/programmes", response_model=list[ProgrammeOut], summary="Programmes as this service pays them, with their yearly budgets")
async def list_programmes(session: SessionDep, principal: Reader):
    return [await _programme_out(session, p) for p in await service.list_programmes(session)]


@router.get("/programmes/{code}", response_model=ProgrammeOut, summary="One programme and its yearly budgets")
async def get_programme(code: Code, session: SessionDep, principal: Reader):
    return await _programme_out(session, await service.get_programme(session, code))


@router.post("/programmes", status_code=201, response_model=ProgrammeOut, summary="Set up a programme for payment")
async def create_programme(body: ProgrammeIn, request: Request, session: SessionDep, principal: Admin):
    async def produce():
        return await _programme_out(session, await service.create_programme(session, body.model_dump()))

    return await idempotent(request, session, principal, produce)


@router.put("/programmes/{code}", response_model=ProgrammeOut, summary="Change a programme's settings (send the version you read)")
async def update_programme(code: Code, body: ProgrammeUpdate, request: Request, session: SessionDep, principal: Admin):
    async def produce():
        return await _programme_out(session, await service.update_programme(session, code, body.model_dump()))

    return await idempotent(request, session, principal, produce, status_code=200)


@router.put("/programmes/{code}/budgets/{year}", response_model=BudgetOut,
            summary="Set a programme's budget for a year (never below what its rounds already take)")
async def set_budget(code: Code, year: Annotated[int, Path(ge=YEAR_MIN, le=YEAR_MAX)], body: BudgetIn, request: Request, session: SessionDep,
                     principal: Admin):
    async def produce():
        b = await service.set_budget(session, code, year, body.amount, body.version)
        return {"year": b.year, "amount": b.amount, "allocated": b.allocated, "remaining": b.amount - b.allocated, "version": b.version}

    return await idempotent(request, session, principal, produce, status_code=200)


# -- rounds -------------------------------------------------------------------------------


@router.post("/rounds", status_code=201, response_model=RoundOut, summary="Plan a round (tahap): amount, ceiling, period, channel",
             responses=problem_responses(404), description="404: the programme is not set up for payment.")
async def create_round(body: RoundIn, request: Request, session: SessionDep, principal: Preparer):
    async def produce():
        return service.round_out(await service.create_round(session, principal, body.model_dump()))

    return await idempotent(request, session, principal, produce)


@router.get("/rounds", response_model=RoundPage, summary="List rounds")
async def list_rounds(
    session: SessionDep,
    principal: Reader,
    programme_code: str | None = Query(default=None, pattern=CODE_PATTERN),
    year: int | None = Query(default=None, ge=YEAR_MIN, le=YEAR_MAX),
    status: RoundStatus | None = None,
    limit: int = Query(default=50, ge=1, le=500),
    cursor: str | None = None,
):
    items, next_cursor = await service.list_rounds(session, programme_code=programme_code, year=year, status=status, limit=limit, cursor=cursor)
    return {"items": [service.round_out(r) for r in items], "next_cursor": next_cursor}


@router.get("/rounds/{round_id}", response_model=RoundOut, summary="One round", description=_LIFECYCLE)
async def get_round(round_id: uuid.UUID, session: SessionDep, principal: Reader):
    return service.round_out(await service.get_round(session, round_id))


@router.patch("/rounds/{round_id}", response_model=RoundOut, summary="Change a draft round (send the version you read)")
async def patch_round(round_id: uuid.UUID, body: RoundPatch, request: Request, session: SessionDep, principal: Preparer):
    async def produce():
        return service.round_out(await service.update_round(session, round_id, body.model_dump(exclude_unset=True)))

    return await idempotent(request, session, principal, produce, status_code=200)


@router.post("/rounds/{round_id}/snapshot", response_model=RoundOut, description=_LIFECYCLE,
             summary="Take the population snapshot: every payee and every exclusion with its reason")
async def take_snapshot(round_id: uuid.UUID, request: Request, session: SessionDep, principal: Preparer):
    async def produce():
        return service.round_out(await service.take_snapshot(session, principal, round_id))

    return await idempotent(request, session, principal, produce, status_code=200)


@router.get("/rounds/{round_id}/snapshot", response_model=SnapshotOut, summary="Counts of the snapshot: payees, and exclusions by reason")
async def snapshot_summary(round_id: uuid.UUID, session: SessionDep, principal: Reader):
    return await service.snapshot_summary(session, await service.get_round(session, round_id), principal.region)


@router.get("/rounds/{round_id}/entries", response_model=EntryPage, summary="The snapshot's lines (a regency office sees its own region's)")
async def list_entries(
    round_id: uuid.UUID,
    session: SessionDep,
    principal: Reader,
    outcome: str | None = Query(default=None, pattern="^(payee|excluded)$"),
    reason: Reason | None = None,
    regency_code: str | None = Query(default=None, pattern=r"^\d{2}\.\d{2}$"),
    limit: int = Query(default=100, ge=1, le=1000),
    cursor: str | None = None,
):
    rnd = await service.get_round(session, round_id)
    items, next_cursor = await service.list_entries(session, principal, rnd, outcome=outcome, reason=reason, regency_code=regency_code,
                                                    limit=limit, cursor=cursor)
    return {"items": [EntryOut.model_validate(e) for e in items], "next_cursor": next_cursor}


@router.post("/rounds/{round_id}/approve", response_model=RoundOut, description=_LIFECYCLE,
             summary="Approve the snapshot you reviewed under a decree (SK); not by the officer who prepared it")
async def approve(round_id: uuid.UUID, body: ApproveIn, request: Request, session: SessionDep, principal: Approver):
    async def produce():
        return service.round_out(await service.approve(session, principal, round_id, body.sk_number, body.snapshot_version))

    return await idempotent(request, session, principal, produce, status_code=200)


@router.post("/rounds/{round_id}/disburse", response_model=RoundOut, description=_LIFECYCLE,
             summary="Start paying an approved round: one payment per payee (a repeat creates none)")
async def disburse(round_id: uuid.UUID, request: Request, tasks: BackgroundTasks, session: SessionDep, principal: Preparer):
    async def produce():
        return service.round_out(await service.start_disbursing(session, principal, round_id))

    wake_sender(request, tasks)
    return await idempotent(request, session, principal, produce, status_code=200)


@router.post("/rounds/{round_id}/payees", status_code=201, response_model=EntryOut,
             summary="Add an eligible person to a round within its ceiling (adding a payee again changes nothing)")
async def add_payee(round_id: uuid.UUID, body: PayeeIn, request: Request, tasks: BackgroundTasks, session: SessionDep, principal: Preparer):
    async def produce():
        return EntryOut.model_validate(await service.add_payee(session, principal, round_id, body.person_id, body.note)).model_dump()

    wake_sender(request, tasks)
    return await idempotent(request, session, principal, produce)


@router.post("/rounds/{round_id}/close", response_model=RoundOut, description=_LIFECYCLE,
             summary="Close a round once every payment is settled; payments still failed are cancelled")
async def close(round_id: uuid.UUID, request: Request, session: SessionDep, principal: Preparer):
    async def produce():
        return service.round_out(await service.close(session, principal, round_id))

    return await idempotent(request, session, principal, produce, status_code=200)


@router.post("/rounds/{round_id}/cancel", response_model=RoundOut, description=_LIFECYCLE, summary="Cancel a round before it disburses")
async def cancel(round_id: uuid.UUID, body: CancelRoundIn, request: Request, session: SessionDep, principal: Preparer):
    async def produce():
        return service.round_out(await service.cancel(session, principal, round_id, body.reason))

    return await idempotent(request, session, principal, produce, status_code=200)
