"""Use cases of a return: each runs inside the caller's transaction, locks the case row
before changing it, and records its events in the outbox there."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import select

from pilar_kernel import regions
from pilar_kernel.auth import Principal
from pilar_kernel.pagination import decode_cursor
from pilar_kernel.pii import nik_hash as hash_nik
from pilar_kernel.problems import Conflict, Forbidden, NotFound, Problem

from . import domain
from .events import (
    ReturnCompleted,
    ReturnDeparted,
    ReturnLegHandedOver,
    ReturnRefused,
    ReturnReported,
    ReturnUnresolved,
    ReturnVerified,
    emit,
    person_for,
)
from .models import CareStay, CounsellingSession, Holiday, ReturnCase, ReturnLeg
from .privacy import Privacy
from .settings import Settings


def now() -> datetime:
    return datetime.now(UTC)


def invalid(errors: list[dict[str, str]]) -> Problem:
    fields = ", ".join(sorted({e["field"] for e in errors}))
    return Problem(f"invalid input: {fields}", status=422, type="validation-error", title="Invalid input", errors=errors)


def rule(field: str, message: str, name: str) -> Problem:
    return invalid([domain.error(field, message, name)])


# -- holidays ------------------------------------------------------------------------------


async def holiday_calendar(session: AsyncSession, settings: Settings, since: date) -> domain.HolidayCalendar:
    """The calendar from ``since`` on: dated holidays from the table, yearly ones from settings."""
    days = (await session.exec(select(Holiday.day).where(Holiday.day >= since))).all()
    return domain.HolidayCalendar.of(days, settings.yearly_holidays)


async def _first_sea_leg_on(session: AsyncSession, case: ReturnCase) -> date | None:
    first = (await session.exec(select(ReturnLeg).where(ReturnLeg.return_id == case.id, ReturnLeg.seq == 1))).first()
    return domain.local_date(first.departure_at) if first is not None and first.mode == "ship" else None


async def _due_on(session: AsyncSession, settings: Settings, case: ReturnCase, intake_day: date) -> date:
    cal = await holiday_calendar(session, settings, intake_day)
    return domain.departure_due_on(intake_day, cal, first_sea_leg_on=await _first_sea_leg_on(session, case))


async def refresh_due_dates(session: AsyncSession, settings: Settings) -> int:
    """Recompute the due day of every case not yet departed (after the calendar changed)."""
    cases = (await session.exec(select(ReturnCase).where(ReturnCase.status.in_(domain.WAITING)).with_for_update())).all()
    for case in cases:
        due = await _due_on(session, settings, case, domain.local_date(case.created_at))
        if due != case.departure_due_on:
            case.departure_due_on = due
            session.add(case)
    await session.flush()
    return len(cases)


async def set_holiday(session: AsyncSession, settings: Settings, day: date, name: str) -> Holiday:
    row = await session.get(Holiday, day)
    if row is None:
        row = Holiday(day=day, name=name)
    row.name = name
    session.add(row)
    await session.flush()
    await refresh_due_dates(session, settings)
    return row


async def remove_holiday(session: AsyncSession, settings: Settings, day: date) -> None:
    row = await session.get(Holiday, day)
    if row is None:
        raise NotFound("no such holiday")
    await session.delete(row)
    await session.flush()
    await refresh_due_dates(session, settings)


async def holidays_of(session: AsyncSession, year: int) -> list[Holiday]:
    stmt = select(Holiday).where(Holiday.day >= date(year, 1, 1), Holiday.day <= date(year, 12, 31)).order_by(Holiday.day)
    return list((await session.exec(stmt)).all())


# -- reading -----------------------------------------------------------------------------


def may_see(principal: Principal, case: ReturnCase) -> bool:
    """A regency office sees the cases found in its region and those going home to it."""
    if principal.region is None:
        return True
    return any(principal.may_access_region(code) for code in (case.found_regency_code, case.destination_regency_code) if code)


async def get_case(
    session: AsyncSession, principal: Principal, return_id: uuid.UUID, *, for_update: bool = False, version: int | None = None
) -> ReturnCase:
    stmt = select(ReturnCase).where(ReturnCase.id == return_id)
    if for_update:
        stmt = stmt.with_for_update()
    case = (await session.exec(stmt)).first()
    if case is None or not may_see(principal, case):
        raise NotFound("no such return")
    if version is not None and case.version != version:
        raise Conflict(f"the return changed since you read it (version {case.version}, you sent {version})", current_version=case.version)
    return case


def list_cursor(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    """The ``(created_at, id)`` after which a page of ``GET /returns`` starts. A cursor of
    another endpoint's shape, or one whose moment PostgreSQL cannot compare (no offset, or
    outside the years a case can have), is a 422 naming ``query.cursor``."""
    after = decode_cursor(cursor, datetime, uuid.UUID)
    if after is None:
        return None
    moment, case_id = after
    try:
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("no offset")
        moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise invalid([domain.error("query.cursor", "unknown cursor", "cursor")]) from None
    return moment, case_id


def region_filter(stmt, principal: Principal):
    if principal.region is None:
        return stmt
    prefix = principal.region + ".%"
    return stmt.where(
        or_(
            ReturnCase.found_regency_code == principal.region,
            ReturnCase.found_regency_code.like(prefix),
            ReturnCase.destination_regency_code == principal.region,
            ReturnCase.destination_regency_code.like(prefix),
        )
    )


def flags(case: ReturnCase) -> list[str]:
    return domain.flags_of(suspected_trafficking=case.suspected_trafficking, repeat_claimant=case.repeat_claimant)


def summary(case: ReturnCase, today: date) -> dict[str, Any]:
    out = {k: getattr(case, k) for k in (
        "id", "status", "direction", "cause", "found_at", "found_place_code", "destination_code", "departure_due_on", "person_id", "created_at")}
    out["flags"] = flags(case)
    out["overdue"] = domain.is_overdue(case.status, case.departure_due_on, today)
    return out


async def legs_of(session: AsyncSession, case: ReturnCase) -> list[ReturnLeg]:
    return list((await session.exec(select(ReturnLeg).where(ReturnLeg.return_id == case.id).order_by(ReturnLeg.seq))).all())


def _cost(legs: list[ReturnLeg]) -> int:
    # A ticket is spent once its leg has departed.
    return sum(leg.ticket_cost for leg in legs if leg.status != "planned")


async def to_out(session: AsyncSession, privacy: Privacy, case: ReturnCase) -> dict[str, Any]:
    stays = (await session.exec(select(CareStay).where(CareStay.return_id == case.id).order_by(CareStay.admitted_on, CareStay.created_at))).all()
    sessions = (
        await session.exec(select(CounsellingSession).where(CounsellingSession.return_id == case.id).order_by(CounsellingSession.held_on))
    ).all()
    legs = await legs_of(session, case)
    out = summary(case, domain.local_date(now()))
    out.update({k: getattr(case, k) for k in (
        "version", "found_place_note", "referred_by", "sending_province_code", "documents", "photo_ref",
        "previous_return_id", "birth_date", "sex", "origin_code", "family_relationship", "verified_at", "verified_by", "verification_note", "departed_at", "within_standard", "returned_at",
        "closed_at", "refused_by", "close_reason", "updated_at")})
    for field in ("name", "health_note", "family_contact_name", "family_contact_phone"):
        out[field] = privacy.open(getattr(case, field + "_enc"), case.id)
    out["nik_known"] = case.nik_hash is not None
    out["total_cost"] = _cost(legs)
    out["care_stays"] = [s.model_dump() for s in stays]
    out["counselling"] = [s.model_dump() for s in sessions]
    out["legs"] = [leg.model_dump() for leg in legs]
    return out


# -- events ------------------------------------------------------------------------------


def _base(case: ReturnCase) -> dict[str, Any]:
    return {
        "return_id": case.id,
        "person_id": case.person_id,
        "nik_hash": case.nik_hash,
        "direction": case.direction,
        "origin_code": case.origin_code,
        "destination_code": case.destination_code,
        "cause": case.cause,
        "flags": flags(case),
    }


def _change(case: ReturnCase, target: str | None = None) -> None:
    if target is not None:
        if not domain.can_transition(case.status, target):
            raise Conflict(f"a return that is {case.status} cannot become {target}", status_now=case.status)
        case.status = target
    case.version += 1
    case.updated_at = now()


def _not_future(field: str, moment: datetime, *, slack: timedelta = timedelta(minutes=5)) -> None:
    if moment > now() + slack:
        raise rule(field, "is in the future", "date.future")


# -- intake ------------------------------------------------------------------------------


async def _previous_return(session: AsyncSession, settings: Settings, case: ReturnCase) -> ReturnCase | None:
    """The latest completed return of the same person within the repeat window, if any."""
    same = []
    if case.nik_hash:
        same.append(ReturnCase.nik_hash == case.nik_hash)
    if case.person_id:
        same.append(ReturnCase.person_id == case.person_id)
    if case.identity_index:
        same.append(ReturnCase.identity_index == case.identity_index)
    if not same:
        return None
    since = domain.months_before(domain.local_date(case.found_at), settings.repeat_window_months)
    stmt = (
        select(ReturnCase)
        .where(or_(*same), ReturnCase.status == domain.RETURNED, ReturnCase.returned_at >= datetime.combine(since, datetime.min.time(), domain.WIB))
        .order_by(ReturnCase.returned_at.desc())
        .limit(1)
    )
    return (await session.exec(stmt)).first()


def _set_destination(case: ReturnCase, code: str) -> None:
    dotted = regions.normalise(code)
    case.destination_code = dotted
    case.destination_province_code = regions.province_of(dotted)
    case.destination_regency_code = regions.regency_of(dotted)


async def intake(session: AsyncSession, principal: Principal, settings: Settings, privacy: Privacy, data: dict[str, Any]) -> ReturnCase:
    moment = now()
    errors = domain.check_intake(data, now=moment)
    if errors:
        raise invalid(errors)
    found_place = regions.normalise(data["found_place_code"])
    if not principal.may_access_region(found_place):
        raise Forbidden(f"your token may only report persons found in {principal.region}")
    nik = data.get("nik")
    digest = hash_nik(nik, settings.nik_hash_key) if nik else None
    intake_day = domain.local_date(moment)
    case_id = uuid.uuid4()
    case = ReturnCase(
        id=case_id,
        direction=data["direction"],
        found_at=data["found_at"],
        found_place_code=found_place,
        found_regency_code=regions.regency_of(found_place),
        found_place_note=data.get("found_place_note"),
        referred_by=data["referred_by"],
        sending_province_code=regions.normalise(data["sending_province_code"]) if data.get("sending_province_code") else None,
        documents=data["documents"],
        photo_ref=data.get("photo_ref"),
        cause=data["cause"],
        health_note_enc=privacy.seal(data.get("health_note"), case_id),
        suspected_trafficking=data["cause"] == "suspected_trafficking" or bool(data.get("suspected_trafficking")),
        name_enc=privacy.seal(data["name"], case_id),
        identity_index=privacy.identity_index(data["name"], data.get("birth_date")),
        birth_date=data.get("birth_date"),
        sex=data["sex"],
        origin_code=regions.normalise(data["origin_code"]) if data.get("origin_code") else None,
        nik_hash=digest,
        person_id=await person_for(session, digest) if digest else None,
        intake_by=principal.actor,
        departure_due_on=domain.departure_due_on(intake_day, await holiday_calendar(session, settings, intake_day)),
        created_at=moment,
        updated_at=moment,
    )
    if data.get("destination_code"):
        _set_destination(case, data["destination_code"])
    previous = await _previous_return(session, settings, case)
    if previous is not None:
        case.repeat_claimant, case.previous_return_id = True, previous.id
    session.add(case)
    await session.flush()
    await emit(
        session,
        ReturnReported(
            **_base(case), found_on=domain.local_date(case.found_at), found_regency_code=case.found_regency_code,
            referred_by=case.referred_by, sending_province_code=case.sending_province_code, departure_due_on=case.departure_due_on,
        ),
    )
    return case


# -- care --------------------------------------------------------------------------------

_CARE_OPEN = (domain.IN_CARE, domain.VERIFIED, domain.SCHEDULED)


def _day_in_case(case: ReturnCase, field: str, day: date) -> None:
    if day < domain.local_date(case.found_at):
        raise rule(field, "is before the person was found", "date.before_found")
    if day > domain.local_date(now()):
        raise rule(field, "is in the future", "date.future")


async def admit(session: AsyncSession, principal: Principal, return_id: uuid.UUID, data: dict[str, Any], version: int | None = None) -> CareStay:
    """A stay in a shelter or UPT: the first one puts a reported case in care; a later one is a
    transfer and closes the stay before it."""
    case = await get_case(session, principal, return_id, for_update=True, version=version)
    if case.status == domain.REPORTED:
        _change(case, domain.IN_CARE)
    elif case.status in _CARE_OPEN:
        _change(case)
    else:
        raise Conflict(f"a return that is {case.status} cannot take a care stay", status_now=case.status)
    _day_in_case(case, "admitted_on", data["admitted_on"])
    open_stays = (await session.exec(select(CareStay).where(CareStay.return_id == case.id, CareStay.left_on.is_(None)))).all()
    for stay in open_stays:
        if stay.admitted_on > data["admitted_on"]:
            raise rule("admitted_on", "is before the current stay began", "care.order")
        stay.left_on = data["admitted_on"]
        session.add(stay)
    stay = CareStay(id=uuid.uuid4(), return_id=case.id, **data)
    session.add_all([case, stay])
    await session.flush()
    return stay


async def end_stay(session: AsyncSession, principal: Principal, return_id: uuid.UUID, stay_id: uuid.UUID, left_on: date) -> CareStay:
    case = await get_case(session, principal, return_id, for_update=True)
    stay = (await session.exec(select(CareStay).where(CareStay.id == stay_id, CareStay.return_id == case.id))).first()
    if stay is None:
        raise NotFound("no such care stay")
    if stay.left_on is not None:
        raise Conflict("this stay has already ended")
    if left_on < stay.admitted_on:
        raise rule("left_on", "is before the admission", "care.dates")
    _day_in_case(case, "left_on", left_on)
    stay.left_on = left_on
    _change(case)
    session.add_all([stay, case])
    await session.flush()
    return stay


async def add_counselling(session: AsyncSession, principal: Principal, return_id: uuid.UUID, data: dict[str, Any]) -> CounsellingSession:
    case = await get_case(session, principal, return_id, for_update=True)
    if case.status not in _CARE_OPEN:
        raise Conflict(f"counselling is recorded while the person is in care, not when the return is {case.status}", status_now=case.status)
    _day_in_case(case, "held_on", data["held_on"])
    record = CounsellingSession(id=uuid.uuid4(), return_id=case.id, **data)
    _change(case)
    session.add_all([case, record])
    await session.flush()
    return record


# -- destination and verification ----------------------------------------------------------


async def set_destination(
    session: AsyncSession, principal: Principal, privacy: Privacy, return_id: uuid.UUID, data: dict[str, Any], version: int | None = None
) -> ReturnCase:
    case = await get_case(session, principal, return_id, for_update=True, version=version)
    if case.status not in (domain.REPORTED, domain.IN_CARE):
        raise Conflict(f"the destination is fixed once the return is {case.status}", status_now=case.status)
    errors = domain.check_destination(data["destination_code"])
    if not errors and case.direction == "inbound" and not regions.is_jatim(data["destination_code"]):
        errors.append(domain.error("destination_code", "an inbound return goes to a Jawa Timur regency", "inbound.destination"))
    if errors:
        raise invalid(errors)
    _set_destination(case, data["destination_code"])
    for key in ("family_contact_name", "family_contact_phone"):
        if key in data:
            setattr(case, key + "_enc", privacy.seal(data[key], case.id))
    if "family_relationship" in data:
        case.family_relationship = data["family_relationship"]
    _change(case)
    session.add(case)
    await session.flush()
    return case


def _check_destination_authority(principal: Principal, case: ReturnCase) -> None:
    """A Jatim destination is confirmed by its regency office with its own token; any other
    destination by the province (a token without a region)."""
    if regions.is_jatim(case.destination_code):
        if principal.region != case.destination_regency_code:
            raise Forbidden(f"a destination in Jawa Timur is confirmed by the office of {case.destination_regency_code} with its own token")
    elif principal.region is not None:
        raise Forbidden("a destination outside Jawa Timur is confirmed by the province")


async def verify(session: AsyncSession, principal: Principal, return_id: uuid.UUID, note: str | None, version: int | None = None) -> ReturnCase:
    case = await get_case(session, principal, return_id, for_update=True, version=version)
    if not domain.can_transition(case.status, domain.VERIFIED):
        raise Conflict(f"a return that is {case.status} cannot become verified", status_now=case.status)
    if case.destination_code is None:
        raise rule("destination_code", "set the destination before verifying it", "destination.required")
    _check_destination_authority(principal, case)
    _change(case, domain.VERIFIED)
    case.verified_at, case.verified_by, case.verification_note = now(), principal.actor, note
    session.add(case)
    await session.flush()
    await emit(session, ReturnVerified(**_base(case), verified_at=case.verified_at, verified_by=case.verified_by))
    return case


# -- the trip ------------------------------------------------------------------------------


def route(settings: Settings, destination_code: str) -> list[domain.Hop]:
    errors = domain.check_destination(destination_code)
    if errors:
        raise invalid(errors)
    try:
        return domain.plan_route(regions.normalise(destination_code), settings.relay_partners)
    except ValueError as exc:
        raise rule("destination_code", str(exc), "route.partner") from exc


async def schedule(
    session: AsyncSession, principal: Principal, settings: Settings, return_id: uuid.UUID, legs: list[dict[str, Any]], version: int | None = None
) -> ReturnCase:
    case = await get_case(session, principal, return_id, for_update=True, version=version)
    if not domain.can_transition(case.status, domain.SCHEDULED):
        raise Conflict(f"a return that is {case.status} cannot be scheduled", status_now=case.status)
    hops = route(settings, case.destination_code)
    if len(legs) != len(hops):
        raise rule("legs", f"the route to {case.destination_code} has {len(hops)} leg(s): " + ", ".join(f"{h.from_code}->{h.to_code}" for h in hops), "route.legs")
    for i in range(1, len(legs)):
        if legs[i]["departure_at"] < legs[i - 1]["departure_at"]:
            raise rule(f"legs.{i}.departure_at", "a leg cannot leave before the one before it", "route.order")
    for hop, plan in zip(hops, legs):
        session.add(ReturnLeg(id=uuid.uuid4(), return_id=case.id, seq=hop.seq, from_code=hop.from_code, to_code=hop.to_code,
                              receiving_office=hop.receiving_office, **plan))
    await session.flush()
    _change(case, domain.SCHEDULED)
    # A first leg by ship moves the due day to the ship's schedule.
    case.departure_due_on = await _due_on(session, settings, case, domain.local_date(case.created_at))
    session.add(case)
    await session.flush()
    return case


async def _leg(session: AsyncSession, case: ReturnCase, seq: int) -> ReturnLeg:
    leg = (await session.exec(select(ReturnLeg).where(ReturnLeg.return_id == case.id, ReturnLeg.seq == seq).with_for_update())).first()
    if leg is None:
        raise NotFound("no such leg")
    return leg


async def depart(session: AsyncSession, principal: Principal, return_id: uuid.UUID, seq: int, departed_at: datetime) -> ReturnCase:
    case = await get_case(session, principal, return_id, for_update=True)
    leg = await _leg(session, case, seq)
    if leg.status != "planned":
        raise Conflict(f"leg {seq} has already {leg.status.replace('_', ' ')}")
    _not_future("departed_at", departed_at)
    if departed_at < case.found_at:
        raise rule("departed_at", "is before the person was found", "date.before_found")
    legs = await legs_of(session, case)
    if seq == 1:
        _change(case, domain.IN_TRANSIT)
        case.departed_at = departed_at
        case.within_standard = domain.local_date(departed_at) <= case.departure_due_on
    else:
        before = legs[seq - 2]
        if case.status != domain.IN_TRANSIT or before.status != "handed_over":
            raise Conflict(f"leg {seq} leaves after leg {seq - 1} was handed over")
        if departed_at < before.handed_over_at:
            raise rule("departed_at", f"is before leg {seq - 1} was handed over", "route.order")
        _change(case)
    leg.status, leg.departed_at = "departed", departed_at
    session.add_all([leg, case])
    await session.flush()
    if seq == 1:
        await emit(
            session,
            ReturnDeparted(**_base(case), departed_at=departed_at, departure_due_on=case.departure_due_on,
                           within_standard=bool(case.within_standard), leg_count=len(legs)),
        )
    return case


async def handover(session: AsyncSession, principal: Principal, return_id: uuid.UUID, seq: int, data: dict[str, Any]) -> ReturnCase:
    case = await get_case(session, principal, return_id, for_update=True)
    leg = await _leg(session, case, seq)
    if leg.status != "departed" or case.status != domain.IN_TRANSIT:
        raise Conflict(f"leg {seq} is {leg.status} and the return {case.status}: only a departed leg is handed over")
    at = data["handed_over_at"]
    _not_future("handed_over_at", at)
    if at < leg.departed_at:
        raise rule("handed_over_at", "is before the leg departed", "route.order")
    leg.status, leg.handed_over_at = "handed_over", at
    leg.handover_document_no, leg.received_by = data["handover_document_no"], data["received_by"]
    legs = await legs_of(session, case)
    final = seq == len(legs)
    _change(case, domain.RETURNED if final else None)
    if final:
        case.returned_at = at
    session.add_all([leg, case])
    await session.flush()
    await emit(
        session,
        ReturnLegHandedOver(**_base(case), seq=seq, from_code=leg.from_code, to_code=leg.to_code, mode=leg.mode, handed_over_at=at,
                            handover_document_no=leg.handover_document_no, final=final),
    )
    if final:
        await emit(
            session,
            ReturnCompleted(**_base(case), returned_at=at, departed_at=case.departed_at, within_standard=bool(case.within_standard),
                            leg_count=len(legs), total_cost=_cost(legs)),
        )
    return case


async def refuse(session: AsyncSession, principal: Principal, return_id: uuid.UUID, refused_by: str, reason: str) -> ReturnCase:
    case = await get_case(session, principal, return_id, for_update=True)
    if not domain.can_transition(case.status, domain.REFUSED):
        raise Conflict(f"a return that is {case.status} cannot become refused", status_now=case.status)
    if principal.region is not None and principal.region != case.destination_regency_code:
        raise Forbidden("only the receiving regency office or the province records a refusal")
    _change(case, domain.REFUSED)
    case.closed_at, case.refused_by, case.close_reason = now(), refused_by, reason
    session.add(case)
    await session.flush()
    await emit(session, ReturnRefused(**_base(case), refused_at=case.closed_at, refused_by=refused_by))
    return case


async def close_unresolved(session: AsyncSession, principal: Principal, return_id: uuid.UUID, reason: str) -> ReturnCase:
    case = await get_case(session, principal, return_id, for_update=True)
    if not domain.can_transition(case.status, domain.UNRESOLVED):
        raise Conflict(f"a return that is {case.status} cannot become unresolved", status_now=case.status)
    _change(case, domain.UNRESOLVED)
    case.closed_at, case.close_reason = now(), reason
    session.add(case)
    await session.flush()
    await emit(
        session,
        ReturnUnresolved(**_base(case), unresolved_at=case.closed_at, sex=case.sex, birth_date=case.birth_date,
                         found_regency_code=case.found_regency_code),
    )
    return case


# -- the standard and statistics -------------------------------------------------------------


def _overdue_stmt(today: date):
    return select(ReturnCase).where(ReturnCase.status.in_(domain.WAITING), ReturnCase.departure_due_on < today)


async def overdue(session: AsyncSession, principal: Principal, today: date) -> list[ReturnCase]:
    stmt = region_filter(_overdue_stmt(today), principal).order_by(ReturnCase.departure_due_on, ReturnCase.created_at)
    return list((await session.exec(stmt)).all())


async def count_overdue(session: AsyncSession, today: date) -> int:
    return (await session.exec(select(func.count()).select_from(_overdue_stmt(today).subquery()))).one()


def _month(moment: datetime) -> str:
    return domain.local_date(moment).strftime("%Y-%m")


async def statistics(session: AsyncSession, principal: Principal, start: date, end: date) -> dict[str, Any]:
    """Figures for ``start``..``end`` (inclusive, local days)."""
    lo = datetime.combine(start, datetime.min.time(), domain.WIB)
    hi = datetime.combine(end + timedelta(days=1), datetime.min.time(), domain.WIB)

    def within(column):
        return (column >= lo) & (column < hi)

    cases = (
        await session.exec(
            region_filter(
                select(ReturnCase).where(
                    or_(within(ReturnCase.created_at), within(ReturnCase.returned_at), within(ReturnCase.departed_at), within(ReturnCase.closed_at))
                ),
                principal,
            )
        )
    ).all()
    returned = [c for c in cases if c.returned_at is not None and lo <= c.returned_at < hi]
    departed = [c for c in cases if c.departed_at is not None and lo <= c.departed_at < hi]
    closed = [c for c in cases if c.closed_at is not None and lo <= c.closed_at < hi]
    leg_rows = (
        await session.exec(
            region_filter(
                select(ReturnLeg.departed_at, ReturnLeg.ticket_cost).join(ReturnCase, ReturnCase.id == ReturnLeg.return_id).where(within(ReturnLeg.departed_at)),
                principal,
            )
        )
    ).all()
    cost_per_month: Counter[str] = Counter()
    for departed_at, cost in leg_rows:
        cost_per_month[_month(departed_at)] += cost
    on_time = sum(1 for c in departed if c.within_standard)
    return {
        "period_from": start,
        "period_to": end,
        "reported": sum(1 for c in cases if lo <= c.created_at < hi),
        "returned": len(returned),
        "refused": sum(1 for c in closed if c.status == domain.REFUSED),
        "unresolved": sum(1 for c in closed if c.status == domain.UNRESOLVED),
        "returned_per_month": dict(sorted(Counter(_month(c.returned_at) for c in returned).items())),
        "returned_per_destination_province": dict(sorted(Counter(c.destination_province_code for c in returned).items())),
        "returned_per_cause": dict(sorted(Counter(c.cause for c in returned).items())),
        "departed": len(departed),
        "departed_within_standard": on_time,
        "share_within_standard": round(on_time / len(departed), 4) if departed else None,
        "overdue_now": len(await overdue(session, principal, domain.local_date(now()))),
        "cost_total": sum(cost_per_month.values()),
        "cost_per_month": dict(sorted(cost_per_month.items())),
    }
