"""HTTP routes of the homeless-return service (``/v1/...``)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from sqlalchemy import tuple_
from sqlmodel import select

from pilar_kernel.auth import Principal, PrincipalDep, require_scopes
from pilar_kernel.db import SessionDep
from pilar_kernel.idempotency import idempotent
from pilar_kernel.pagination import decode_cursor, page
from pilar_kernel.problems import Forbidden, NotFound, Problem

from . import domain, service
from .models import Holiday, ReturnCase
from .privacy import Privacy
from .schemas import (
    CareStayEnd,
    CareStayIn,
    CounsellingIn,
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


# -- cases -----------------------------------------------------------------------------


@router.post("/returns", status_code=201, response_model=ReturnOut, summary="Report a stranded person (intake)")
async def report(body: IntakeIn, request: Request, session: SessionDep, privacy: PrivacyDep, principal: Writer):
    async def produce():
        case = await service.intake(session, principal, _settings(request), privacy, body.model_dump())
        return await service.to_out(session, privacy, case)

    return await idempotent(request, session, principal, produce)


@router.get("/returns", response_model=ReturnPage, summary="List returns, oldest first")
async def list_returns(
    session: SessionDep,
    principal: Reader,
    status: str | None = Query(default=None, pattern="^(" + "|".join(domain.STATUSES) + ")$"),
    direction: str | None = Query(default=None, pattern="^(outbound|inbound)$"),
    flag: str | None = Query(default=None, pattern="^(suspected_trafficking|repeat_claimant)$"),
    destination_province: str | None = Query(default=None, pattern=r"^\d{2}$"),
    person_id: uuid.UUID | None = None,
    limit: int = Query(default=50, ge=1, le=500),
    cursor: str | None = None,
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
    after = decode_cursor(cursor)
    if after:
        try:
            key = (datetime.fromisoformat(after[0]), uuid.UUID(after[1]))
        except (ValueError, IndexError, TypeError):
            raise Problem("cursor is not one this service issued", status=422, type="validation-error", title="Invalid input",
                          errors=[{"field": "query.cursor", "message": "unknown cursor", "rule": "cursor"}]) from None
        stmt = stmt.where(tuple_(ReturnCase.created_at, ReturnCase.id) > key)
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
async def get_return(return_id: uuid.UUID, response: Response, session: SessionDep, privacy: PrivacyDep, principal: Reader):
    case = await service.get_case(session, principal, return_id)
    response.headers["ETag"] = f'"{case.version}"'
    return await service.to_out(session, privacy, case)


@router.put("/returns/{return_id}/destination", response_model=ReturnOut, summary="Set the destination and the family contact")
async def put_destination(return_id: uuid.UUID, body: DestinationIn, session: SessionDep, privacy: PrivacyDep, principal: Writer, version: Version):
    case = await service.set_destination(session, principal, privacy, return_id, body.model_dump(exclude_unset=True), version)
    return await service.to_out(session, privacy, case)


@router.post("/returns/{return_id}/care-stays", status_code=201, response_model=ReturnOut, summary="Admit to a shelter or UPT (a later stay is a transfer)")
async def post_care_stay(return_id: uuid.UUID, body: CareStayIn, request: Request, session: SessionDep, privacy: PrivacyDep, principal: Writer, version: Version):
    async def produce():
        await service.admit(session, principal, return_id, body.model_dump(), version)
        return await service.to_out(session, privacy, await service.get_case(session, principal, return_id))

    return await idempotent(request, session, principal, produce)


@router.patch("/returns/{return_id}/care-stays/{stay_id}", response_model=ReturnOut, summary="End a care stay")
async def end_care_stay(return_id: uuid.UUID, stay_id: uuid.UUID, body: CareStayEnd, session: SessionDep, privacy: PrivacyDep, principal: Writer):
    await service.end_stay(session, principal, return_id, stay_id, body.left_on)
    return await service.to_out(session, privacy, await service.get_case(session, principal, return_id))


@router.post("/returns/{return_id}/counselling", status_code=201, response_model=ReturnOut, summary="Record a counselling session")
async def post_counselling(return_id: uuid.UUID, body: CounsellingIn, request: Request, session: SessionDep, privacy: PrivacyDep, principal: Writer):
    async def produce():
        await service.add_counselling(session, principal, return_id, body.model_dump())
        return await service.to_out(session, privacy, await service.get_case(session, principal, return_id))

    return await idempotent(request, session, principal, produce)


@router.post(
    "/returns/{return_id}/verification",
    response_model=ReturnOut,
    summary="Confirm the destination (a Jatim destination by its regency office, others by the province)",
)
async def post_verification(return_id: uuid.UUID, body: VerificationIn, session: SessionDep, privacy: PrivacyDep, principal: Verifier, version: Version):
    case = await service.verify(session, principal, return_id, body.note, version)
    return await service.to_out(session, privacy, case)


@router.post("/returns/{return_id}/schedule", response_model=ReturnOut, summary="Book the legs of the planned route")
async def post_schedule(return_id: uuid.UUID, body: ScheduleIn, request: Request, session: SessionDep, privacy: PrivacyDep, principal: Writer, version: Version):
    legs = [leg.model_dump() for leg in body.legs]
    case = await service.schedule(session, principal, _settings(request), return_id, legs, version)
    return await service.to_out(session, privacy, case)


@router.post("/returns/{return_id}/legs/{seq}/departure", response_model=ReturnOut, summary="A leg left")
async def post_departure(return_id: uuid.UUID, seq: int, body: DepartureIn, session: SessionDep, privacy: PrivacyDep, principal: Writer):
    case = await service.depart(session, principal, return_id, seq, body.departed_at)
    return await service.to_out(session, privacy, case)


@router.post("/returns/{return_id}/legs/{seq}/handover", response_model=ReturnOut, summary="A leg ended with a handover to the receiving Dinsos")
async def post_handover(return_id: uuid.UUID, seq: int, body: HandoverIn, session: SessionDep, privacy: PrivacyDep, principal: Writer):
    case = await service.handover(session, principal, return_id, seq, body.model_dump())
    return await service.to_out(session, privacy, case)


@router.post("/returns/{return_id}/refusal", response_model=ReturnOut, summary="The family or home government refused")
async def post_refusal(return_id: uuid.UUID, body: RefusalIn, session: SessionDep, privacy: PrivacyDep, principal: WriterOrVerifier):
    case = await service.refuse(session, principal, return_id, body.refused_by, body.reason)
    return await service.to_out(session, privacy, case)


@router.post("/returns/{return_id}/unresolved", response_model=ReturnOut, summary="Close the case without a return")
async def post_unresolved(return_id: uuid.UUID, body: UnresolvedIn, session: SessionDep, privacy: PrivacyDep, principal: Writer):
    case = await service.close_unresolved(session, principal, return_id, body.reason)
    return await service.to_out(session, privacy, case)


# -- routes, statistics, holidays ---------------------------------------------------------


@router.get("/routes/{destination_code}", response_model=list[HopOut], summary="The legs a return to this region takes")
async def get_route(destination_code: str, request: Request, principal: Reader):
    return [hop.__dict__ for hop in service.route(_settings(request), destination_code)]


@router.get("/stats", response_model=StatsOut, summary="Returns per month, destination and cause; share departing within the standard; costs")
async def get_stats(
    session: SessionDep,
    principal: Reader,
    from_: Annotated[date | None, Query(alias="from", description="first day (default: 1 January of this year)")] = None,
    to: Annotated[date | None, Query(description="last day (default: today)")] = None,
):
    today = _today()
    start, end = from_ or date(today.year, 1, 1), to or today
    if end < start:
        raise Problem("the period ends before it starts", status=422, type="validation-error", title="Invalid input",
                      errors=[{"field": "query.to", "message": "before from", "rule": "period"}])
    return await service.statistics(session, principal, start, end)


@router.get("/holidays", response_model=list[HolidayOut], summary="Dated holidays of a year (yearly fixed ones are settings)")
async def list_holidays(session: SessionDep, principal: Reader, year: int = Query(ge=2000, le=2100)):
    rows = (await session.exec(select(Holiday).where(Holiday.day >= date(year, 1, 1), Holiday.day <= date(year, 12, 31)).order_by(Holiday.day))).all()
    return [r.model_dump() for r in rows]


@router.put("/holidays/{day}", response_model=HolidayOut, summary="Add or rename a holiday; due days of waiting returns are recomputed")
async def put_holiday(day: date, body: HolidayIn, request: Request, session: SessionDep, principal: Admin):
    row = await session.get(Holiday, day)
    if row is None:
        row = Holiday(day=day, name=body.name)
    row.name = body.name
    session.add(row)
    await session.flush()
    await service.refresh_due_dates(session, _settings(request))
    return row.model_dump()


@router.delete("/holidays/{day}", status_code=204, summary="Remove a holiday; due days of waiting returns are recomputed")
async def delete_holiday(day: date, request: Request, session: SessionDep, principal: Admin):
    row = await session.get(Holiday, day)
    if row is None:
        raise NotFound("no such holiday")
    await session.delete(row)
    await session.flush()
    await service.refresh_due_dates(session, _settings(request))
    return Response(status_code=204)
