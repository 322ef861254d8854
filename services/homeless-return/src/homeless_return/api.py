"""HTTP routes of the homeless-return service (``/v1/...``).

Every route that changes something honours ``Idempotency-Key``: a retried request with the
same key and body gets the first answer again (``Idempotent-Replayed: true``) instead of a
409 from the status machine."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from sqlalchemy import tuple_
from sqlmodel import select

from pilar_kernel.auth import Principal, PrincipalDep, require_scopes
from pilar_kernel.db import SessionDep
from pilar_kernel.idempotency import idempotent
from pilar_kernel.pagination import page
from pilar_kernel.problems import Forbidden, Problem

from . import domain, service
from .models import ReturnCase
from .privacy import Privacy
from .schemas import (
    MAX_LEGS,
    REGION_PATTERN,
    CareStayEnd,
    CareStayIn,
    CounsellingIn,
    Day,
    DepartureIn,
    DestinationIn,
    HandoverIn,
    HolidayIn,
    HolidayOut,
    HopOut,
    IntakeIn,
    OverdueOut,
    RefusalIn,
    ReturnOut,
    ReturnPage,
    ScheduleIn,
    StatsOut,
    UnresolvedIn,
    VerificationIn,
)

READ = "homeless-return:read"
WRITE = "homeless-return:write"
VERIFY = "homeless-return:verify"
ADMIN = "homeless-return:admin"

router = APIRouter(prefix="/v1", tags=["homeless-return"])

Reader = Annotated[Principal, require_scopes(READ)]
Writer = Annotated[Principal, require_scopes(WRITE)]
Verifier = Annotated[Principal, require_scopes(VERIFY)]
Admin = Annotated[Principal, require_scopes(ADMIN)]


async def _writer_or_verifier(principal: PrincipalDep) -> Principal:
    if not (principal.has(WRITE) or principal.has(VERIFY)):
        raise Forbidden(f"needs {WRITE} or {VERIFY}", required_scopes=[WRITE, VERIFY])
    return principal


WriterOrVerifier = Annotated[Principal, Depends(_writer_or_verifier)]


def _if_match(if_match: Annotated[str | None, Header(alias="If-Match", description="the version you read; a stale one is refused with 409")] = None) -> int | None:
    if if_match is None:
        return None
    try:
        return int(if_match.strip().strip('"').removeprefix('W/"').strip('"'))
    except ValueError:
        raise Problem("If-Match carries the version number of the return", status=422, type="validation-error", title="Invalid input",
                      errors=[{"field": "header.If-Match", "message": "not a version number", "rule": "if-match"}]) from None


Version = Annotated[int | None, Depends(_if_match)]


def _settings(request: Request):
    return request.app.state.settings


def _privacy(request: Request) -> Privacy:
    return request.app.state.privacy


PrivacyDep = Annotated[Privacy, Depends(_privacy)]


def _today() -> date:
    return domain.local_date(service.now())


ReturnId = Annotated[uuid.UUID, Path(description="the return's id")]
LegSeq = Annotated[int, Path(ge=1, le=MAX_LEGS, description=f"the leg's number on the route, 1 to {MAX_LEGS}")]
HolidayDay = Annotated[Day, Path(description="the day, 2000-01-01 to 2099-12-31")]


async def _once(request: Request, session, principal: Principal, produce, status_code: int = 200):
    """Run a step once per ``Idempotency-Key``: a retry gets the first answer again."""
    response = await idempotent(request, session, principal, produce, status_code=status_code)
    if status_code == 204:
        replayed = response.headers.get("Idempotent-Replayed")
        return Response(status_code=204, headers={"Idempotent-Replayed": replayed} if replayed else None)
    return response


# -- cases -----------------------------------------------------------------------------


@router.post("/returns", status_code=201, response_model=ReturnOut, summary="Report a stranded person (intake)")
async def report(body: IntakeIn, request: Request, session: SessionDep, privacy: PrivacyDep, principal: Writer):
    async def produce():
        case = await service.intake(session, principal, _settings(request), privacy, body.model_dump())
        return await service.to_out(session, privacy, case)

    return await _once(request, session, principal, produce, 201)


@router.get("/returns", response_model=ReturnPage, summary="List returns, oldest first")
async def list_returns(
    session: SessionDep,
    principal: Reader,
    status: str | None = Query(default=None, pattern="^(" + "|".join(domain.STATUSES) + ")$"),
    direction: str | None = Query(default=None, pattern="^(outbound|inbound)$"),
    flag: str | None = Query(default=None, pattern="^(suspected_trafficking|repeat_claimant)$"),
    destination_province: str | None = Query(default=None, pattern=r"^[0-9]{2}$"),
    person_id: uuid.UUID | None = None,
    limit: int = Query(default=50, ge=1, le=500),
    cursor: str | None = Query(default=None, max_length=200, pattern=r"^[A-Za-z0-9_-]+$", description="next_cursor of the previous page"),
):
    stmt = service.region_filter(select(ReturnCase), principal)
    if status:
        stmt = stmt.where(ReturnCase.status == status)
    if direction:
        stmt = stmt.where(ReturnCase.direction == direction)
    if flag == domain.TRAFFICKING:
        stmt = stmt.where(ReturnCase.suspected_trafficking.is_(True))
    elif flag == domain.REPEAT:
        stmt = stmt.where(ReturnCase.repeat_claimant.is_(True))
    if destination_province:
        stmt = stmt.where(ReturnCase.destination_province_code == destination_province)
    if person_id:
        stmt = stmt.where(ReturnCase.person_id == person_id)
    after = service.list_cursor(cursor)
    if after:
        stmt = stmt.where(tuple_(ReturnCase.created_at, ReturnCase.id) > after)
    cases = (await session.exec(stmt.order_by(ReturnCase.created_at, ReturnCase.id).limit(limit + 1))).all()
    cases, next_cursor = page(list(cases), limit, lambda c: [c.created_at.isoformat(), str(c.id)])
    today = _today()
    return {"items": [service.summary(c, today) for c in cases], "next_cursor": next_cursor}


@router.get("/returns/overdue", response_model=OverdueOut, summary="Returns past the one-working-day departure standard")
async def list_overdue(session: SessionDep, principal: Reader):
    today = _today()
    cases = await service.overdue(session, principal, today)
    return {"today": today, "count": len(cases), "items": [service.summary(c, today) for c in cases]}


@router.get("/returns/{return_id}", response_model=ReturnOut, summary="One return with its care, counselling and legs")
async def get_return(return_id: ReturnId, response: Response, session: SessionDep, privacy: PrivacyDep, principal: Reader):
    case = await service.get_case(session, principal, return_id)
    response.headers["ETag"] = f'"{case.version}"'
    return await service.to_out(session, privacy, case)


@router.put("/returns/{return_id}/destination", response_model=ReturnOut, summary="Set the destination and the family contact")
async def put_destination(return_id: ReturnId, body: DestinationIn, request: Request, session: SessionDep, privacy: PrivacyDep, principal: Writer, version: Version):
    async def produce():
        case = await service.set_destination(session, principal, privacy, return_id, body.model_dump(exclude_unset=True), version)
        return await service.to_out(session, privacy, case)

    return await _once(request, session, principal, produce)


@router.post("/returns/{return_id}/care-stays", status_code=201, response_model=ReturnOut, summary="Admit to a shelter or UPT (a later stay is a transfer)")
async def post_care_stay(return_id: ReturnId, body: CareStayIn, request: Request, session: SessionDep, privacy: PrivacyDep, principal: Writer, version: Version):
    async def produce():
        await service.admit(session, principal, return_id, body.model_dump(), version)
        return await service.to_out(session, privacy, await service.get_case(session, principal, return_id))

    return await _once(request, session, principal, produce, 201)


@router.patch("/returns/{return_id}/care-stays/{stay_id}", response_model=ReturnOut, summary="End a care stay")
async def end_care_stay(
    return_id: ReturnId, stay_id: Annotated[uuid.UUID, Path(description="the care stay's id")], body: CareStayEnd, request: Request,
    session: SessionDep, privacy: PrivacyDep, principal: Writer,
):
    async def produce():
        await service.end_stay(session, principal, return_id, stay_id, body.left_on)
        return await service.to_out(session, privacy, await service.get_case(session, principal, return_id))

    return await _once(request, session, principal, produce)


@router.post("/returns/{return_id}/counselling", status_code=201, response_model=ReturnOut, summary="Record a counselling session")
async def post_counselling(return_id: ReturnId, body: CounsellingIn, request: Request, session: SessionDep, privacy: PrivacyDep, principal: Writer):
    async def produce():
        await service.add_counselling(session, principal, return_id, body.model_dump())
        return await service.to_out(session, privacy, await service.get_case(session, principal, return_id))

    return await _once(request, session, principal, produce, 201)


@router.post(
    "/returns/{return_id}/verification",
    response_model=ReturnOut,
    summary="Confirm the destination (a Jatim destination by its regency office, others by the province)",
)
async def post_verification(return_id: ReturnId, body: VerificationIn, request: Request, session: SessionDep, privacy: PrivacyDep, principal: Verifier, version: Version):
    async def produce():
        case = await service.verify(session, principal, return_id, body.note, version)
        return await service.to_out(session, privacy, case)

    return await _once(request, session, principal, produce)


@router.post("/returns/{return_id}/schedule", response_model=ReturnOut, summary="Book the legs of the planned route")
async def post_schedule(return_id: ReturnId, body: ScheduleIn, request: Request, session: SessionDep, privacy: PrivacyDep, principal: Writer, version: Version):
    async def produce():
        legs = [leg.model_dump() for leg in body.legs]
        case = await service.schedule(session, principal, _settings(request), return_id, legs, version)
        return await service.to_out(session, privacy, case)

    return await _once(request, session, principal, produce)


@router.post("/returns/{return_id}/legs/{seq}/departure", response_model=ReturnOut, summary="A leg left")
async def post_departure(return_id: ReturnId, seq: LegSeq, body: DepartureIn, request: Request, session: SessionDep, privacy: PrivacyDep, principal: Writer):
    async def produce():
        case = await service.depart(session, principal, return_id, seq, body.departed_at)
        return await service.to_out(session, privacy, case)

    return await _once(request, session, principal, produce)


@router.post("/returns/{return_id}/legs/{seq}/handover", response_model=ReturnOut, summary="A leg ended with a handover to the receiving Dinsos")
async def post_handover(return_id: ReturnId, seq: LegSeq, body: HandoverIn, request: Request, session: SessionDep, privacy: PrivacyDep, principal: Writer):
    async def produce():
        case = await service.handover(session, principal, return_id, seq, body.model_dump())
        return await service.to_out(session, privacy, case)

    return await _once(request, session, principal, produce)


@router.post("/returns/{return_id}/refusal", response_model=ReturnOut, summary="The family or home government refused")
async def post_refusal(return_id: ReturnId, body: RefusalIn, request: Request, session: SessionDep, privacy: PrivacyDep, principal: WriterOrVerifier):
    async def produce():
        case = await service.refuse(session, principal, return_id, body.refused_by, body.reason)
        return await service.to_out(session, privacy, case)

    return await _once(request, session, principal, produce)


@router.post("/returns/{return_id}/unresolved", response_model=ReturnOut, summary="Close the case without a return")
async def post_unresolved(return_id: ReturnId, body: UnresolvedIn, request: Request, session: SessionDep, privacy: PrivacyDep, principal: Writer):
    async def produce():
        case = await service.close_unresolved(session, principal, return_id, body.reason)
        return await service.to_out(session, privacy, case)

    return await _once(request, session, principal, produce)


# -- routes, statistics, holidays ---------------------------------------------------------


@router.get("/routes/{destination_code}", response_model=list[HopOut], summary="The legs a return to this region takes")
async def get_route(
    destination_code: Annotated[str, Path(pattern=REGION_PATTERN, description="region code, dotted or bare digits")], request: Request, principal: Reader,
):
    return [hop.__dict__ for hop in service.route(_settings(request), destination_code)]


@router.get("/stats", response_model=StatsOut, summary="Returns per month, destination and cause; share departing within the standard; costs")
async def get_stats(
    session: SessionDep,
    principal: Reader,
    from_: Annotated[Day | None, Query(alias="from", description="first day (default: 1 January of this year)")] = None,
    to: Annotated[Day | None, Query(description="last day (default: today)")] = None,
):
    today = _today()
    start, end = from_ or date(today.year, 1, 1), to or today
    if end < start:
        raise Problem("the period ends before it starts", status=422, type="validation-error", title="Invalid input",
                      errors=[{"field": "query.to", "message": "before from", "rule": "period"}])
    return await service.statistics(session, principal, start, end)


@router.get("/holidays", response_model=list[HolidayOut], summary="Dated holidays of a year (yearly fixed ones are settings)")
async def list_holidays(session: SessionDep, principal: Reader, year: int = Query(ge=2000, le=2099)):
    return [r.model_dump() for r in await service.holidays_of(session, year)]


@router.put("/holidays/{day}", response_model=HolidayOut, summary="Add or rename a holiday; due days of waiting returns are recomputed")
async def put_holiday(day: HolidayDay, body: HolidayIn, request: Request, session: SessionDep, principal: Admin):
    async def produce():
        row = await service.set_holiday(session, _settings(request), day, body.name)
        return row.model_dump()

    return await _once(request, session, principal, produce)


@router.delete("/holidays/{day}", status_code=204, summary="Remove a holiday; due days of waiting returns are recomputed")
async def delete_holiday(day: HolidayDay, request: Request, session: SessionDep, principal: Admin):
    async def produce():
        await service.remove_holiday(session, _settings(request), day)

    return await _once(request, session, principal, produce, 204)
