"""Use cases of the programme catalogue and of enrolments. Each runs inside the caller's
transaction and records its events in the outbox there.

Locks are always taken in the same order, so that concurrent requests queue instead of
deadlocking: person → household → enrolment (the persons module locks the person before it
calls :func:`end_all_enrolments` or :func:`move_enrolments`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import tuple_
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from pilar_kernel.auth import Principal
from pilar_kernel.pagination import page
from pilar_kernel.problems import Conflict, Forbidden, NotFound, Problem

from .. import access
from ..fields import time_id_cursor
from ..events import EnrolmentApproved, EnrolmentEnded, EnrolmentProposed, EnrolmentRejected, EnrolmentResumed, EnrolmentSuspended
from ..persons.models import Household, HouseholdMember, Person
from ..persons.service import current_membership, emit, get_person, invalid
from . import domain
from .domain import IllegalTransition, PersonFacts, ProgrammeFacts, ProgrammeRules
from .models import Enrolment, Programme, ProgrammeAudit

SYSTEM_ACTOR = "system"


acting_user = access.acting_user  # the officer acting, case-folded (four-eyes rule)


def _now() -> datetime:
    return datetime.now(UTC)


def _error(field: str, message: str, rule: str) -> dict[str, str]:
    return {"field": field, "message": message, "rule": rule}


def not_eligible(errors: list[dict[str, str]]) -> Problem:
    rules = ", ".join(e["rule"] for e in errors)
    return Problem(f"the person fails {len(errors)} eligibility rule(s): {rules}", status=422, type="not-eligible",
                   title="Not eligible for the programme", errors=errors)


# -- the catalogue ------------------------------------------------------------------------


def snapshot(programme: Programme) -> dict[str, Any]:
    """The audited form of a catalogue entry (JSON-ready)."""
    return {
        "code": programme.code,
        "name": programme.name,
        "description": programme.description,
        "rules": ProgrammeRules.model_validate(programme.rules).model_dump(mode="json"),
        "amount_per_stage": programme.amount_per_stage,
        "provincial": programme.provincial,
        "active": programme.active,
        "version": programme.version,
    }


def programme_out(programme: Programme) -> dict[str, Any]:
    return {**snapshot(programme), "created_at": programme.created_at, "updated_at": programme.updated_at}


def _ensure_catalogue_admin(principal: Principal) -> None:
    if principal.region is not None:
        raise Forbidden("the programme catalogue is provincial: a regency/city office's token may not change it")


async def list_programmes(session: AsyncSession, *, active: bool | None = None) -> list[Programme]:
    stmt = select(Programme).order_by(Programme.code)
    if active is not None:
        stmt = stmt.where(Programme.active == active)
    return list((await session.exec(stmt)).all())


async def get_programme(session: AsyncSession, code: str, *, for_update: bool = False) -> Programme:
    stmt = select(Programme).where(Programme.code == code)
    if for_update:
        stmt = stmt.with_for_update()
    programme = (await session.exec(stmt)).first()
    if programme is None:
        raise NotFound(f"no programme {code}")
    return programme


async def _check_references(session: AsyncSession, code: str, rules: ProgrammeRules) -> None:
    errors = []
    if code in rules.exclusive_with:
        errors.append(_error("rules.exclusive_with", "a programme cannot exclude itself", "programme.exclusive_self"))
    others = [c for c in rules.exclusive_with if c != code]
    if others:
        known = set((await session.exec(select(Programme.code).where(col(Programme.code).in_(others)))).all())
        for missing in sorted(set(others) - known):
            errors.append(_error("rules.exclusive_with", f"no programme {missing} in the catalogue", "programme.unknown"))
    if errors:
        raise invalid(errors)


async def _audit(session: AsyncSession, principal: Principal, programme: Programme, action: str, before: dict | None) -> None:
    user = principal.claims.get("user")
    session.add(ProgrammeAudit(subject=principal.subject, acting_user=acting_user(principal) if user else None, programme_code=programme.code,
                               action=action, before=before, after=snapshot(programme)))
    await session.flush()


async def create_programme(session: AsyncSession, principal: Principal, data: dict[str, Any]) -> Programme:
    _ensure_catalogue_admin(principal)
    rules = ProgrammeRules.model_validate(data["rules"])
    duplicate = Conflict(f"programme {data['code']} already exists", errors=[_error("code", "already exists", "programme.unique")])
    if (await session.exec(select(Programme.code).where(Programme.code == data["code"]))).first():
        raise duplicate
    await _check_references(session, data["code"], rules)
    programme = Programme(
        code=data["code"], name=data["name"], description=data.get("description"), rules=rules.model_dump(mode="json"),
        amount_per_stage=data.get("amount_per_stage"), provincial=data.get("provincial", False), active=data.get("active", True),
    )
    session.add(programme)
    try:
        await session.flush()
    except IntegrityError as exc:  # created concurrently under the same code
        raise duplicate from exc
    await _audit(session, principal, programme, "created", None)
    return programme


async def update_programme(session: AsyncSession, principal: Principal, code: str, data: dict[str, Any]) -> Programme:
    _ensure_catalogue_admin(principal)
    programme = await get_programme(session, code, for_update=True)
    if programme.version != data["version"]:
        raise Conflict(f"the programme changed since you read it (version {programme.version}, you sent {data['version']})",
                       current_version=programme.version, errors=[_error("version", "stale version", "version.stale")])
    rules = ProgrammeRules.model_validate(data["rules"])
    await _check_references(session, code, rules)
    before = snapshot(programme)
    programme.name, programme.description = data["name"], data.get("description")
    programme.rules = rules.model_dump(mode="json")
    programme.amount_per_stage = data.get("amount_per_stage")
    programme.provincial, programme.active = data.get("provincial", False), data.get("active", True)
    after = snapshot(programme)
    if {**after, "version": None} == {**before, "version": None}:
        return programme  # nothing changed: no new version, no audit row
    programme.version += 1
    programme.updated_at = _now()
    session.add(programme)
    await session.flush()
    await _audit(session, principal, programme, "updated", before)
    return programme


async def programme_audit(session: AsyncSession, code: str) -> list[ProgrammeAudit]:
    await get_programme(session, code)
    stmt = select(ProgrammeAudit).where(ProgrammeAudit.programme_code == code).order_by(col(ProgrammeAudit.id))
    return list((await session.exec(stmt)).all())


# -- eligibility --------------------------------------------------------------------------


async def programme_facts(session: AsyncSession, programme: Programme) -> ProgrammeFacts:
    """The programme as eligibility sees it; exclusivity is symmetric, so programmes that
    name this one in their ``exclusive_with`` are added to its own list."""
    rules = ProgrammeRules.model_validate(programme.rules)
    naming_us = (
        await session.exec(select(Programme.code).where(col(Programme.rules)["exclusive_with"].contains([programme.code])))
    ).all()
    exclusive = sorted(set(rules.exclusive_with) | set(naming_us))
    return ProgrammeFacts(code=programme.code, name=programme.name, provincial=programme.provincial, active=programme.active,
                          rules=rules.model_copy(update={"exclusive_with": exclusive}))


async def _current_holdings(session: AsyncSession, person_id: uuid.UUID) -> list[tuple[str, bool]]:
    rows = await session.exec(
        select(Enrolment.programme_code, Programme.provincial)
        .join(Programme, col(Programme.code) == col(Enrolment.programme_code))
        .where(Enrolment.person_id == person_id, col(Enrolment.status).in_(domain.CURRENT))
    )
    return [(code, provincial) for code, provincial in rows.all()]


async def _household_holds(session: AsyncSession, household_id: uuid.UUID | None, person_id: uuid.UUID, code: str) -> bool:
    """Another current member of the KK holds ``code`` (active or suspended)."""
    if household_id is None:
        return False
    stmt = (
        select(Enrolment.id)
        .join(HouseholdMember, col(HouseholdMember.person_id) == col(Enrolment.person_id))
        .where(
            HouseholdMember.household_id == household_id,
            col(HouseholdMember.valid_to).is_(None),
            Enrolment.person_id != person_id,
            Enrolment.programme_code == code,
            col(Enrolment.status).in_(domain.CURRENT),
        )
        .limit(1)
    )
    return (await session.exec(stmt)).first() is not None


async def evaluate(session: AsyncSession, person: Person, programme: Programme, household_id: uuid.UUID | None, *, today: date) -> list[dict[str, str]]:
    return domain.check_eligibility(
        PersonFacts.of(person),
        await programme_facts(session, programme),
        today=today,
        other_active_enrolments=await _current_holdings(session, person.id),
        household_has_active=await _household_holds(session, household_id, person.id, programme.code),
    )


# -- enrolments ---------------------------------------------------------------------------


def enrolment_out(enrolment: Enrolment) -> dict[str, Any]:
    out = enrolment.model_dump()
    out["allowed_actions"] = domain.allowed_actions(enrolment.status)
    return out


def _event_fields(enrolment: Enrolment, person: Person) -> dict[str, Any]:
    return {"enrolment_id": enrolment.id, "person_id": enrolment.person_id, "nik_hash": person.nik_hash,
            "programme_code": enrolment.programme_code, "regency_code": enrolment.regency_code}


async def _open_in(session: AsyncSession, person_id: uuid.UUID, code: str) -> Enrolment | None:
    stmt = select(Enrolment).where(Enrolment.person_id == person_id, Enrolment.programme_code == code, col(Enrolment.status).in_(domain.OPEN))
    return (await session.exec(stmt)).first()


def _already_open(code: str, existing_id: uuid.UUID | None = None) -> Conflict:
    extra = {"enrolment_id": str(existing_id)} if existing_id else {}
    return Conflict(f"the person already has an open enrolment in {code}",
                    errors=[_error("programme_code", "an open enrolment in this programme exists", "enrolment.unique_open")], **extra)


async def propose(session: AsyncSession, principal: Principal, person_id: uuid.UUID, programme_code: str, *, today: date | None = None) -> Enrolment:
    today = today or date.today()
    person = await get_person(session, principal, person_id, for_update=True)  # 404 outside the caller's region
    programme = (await session.exec(select(Programme).where(Programme.code == programme_code))).first()
    if programme is None:
        raise invalid([_error("programme_code", f"no programme {programme_code} in the catalogue", "programme.unknown")])
    existing = await _open_in(session, person.id, programme.code)
    if existing is not None:
        raise _already_open(programme.code, existing.id)
    membership = await current_membership(session, person.id)
    household_id = membership[1].id if membership else None
    errors = await evaluate(session, person, programme, household_id, today=today)
    if errors:
        raise not_eligible(errors)
    enrolment = Enrolment(person_id=person.id, programme_code=programme.code, household_id=household_id, regency_code=person.regency_code,
                          status=domain.PROPOSED, proposed_by=acting_user(principal))
    session.add(enrolment)
    try:
        await session.flush()
    except IntegrityError as exc:  # the partial unique index: a concurrent proposal won
        raise _already_open(programme.code) from exc
    await emit(session, EnrolmentProposed(**_event_fields(enrolment, person)))
    return enrolment


async def get_enrolment(session: AsyncSession, principal: Principal, enrolment_id: uuid.UUID) -> Enrolment:
    enrolment = (await session.exec(select(Enrolment).where(Enrolment.id == enrolment_id))).first()
    if enrolment is None or not principal.may_access_region(enrolment.regency_code):
        raise NotFound("no such enrolment")
    return enrolment


async def _lock(session: AsyncSession, principal: Principal, enrolment_id: uuid.UUID, version: int | None) -> tuple[Enrolment, Person]:
    """Lock the person, then the enrolment (the module's lock order); 404 outside the caller's region."""
    head = (await session.exec(select(Enrolment.person_id, Enrolment.regency_code).where(Enrolment.id == enrolment_id))).first()
    if head is None or not principal.may_access_region(head[1]):
        raise NotFound("no such enrolment")
    person_stmt = select(Person).where(Person.id == head[0]).with_for_update().execution_options(populate_existing=True)
    person = (await session.exec(person_stmt)).one()
    stmt = select(Enrolment).where(Enrolment.id == enrolment_id).with_for_update().execution_options(populate_existing=True)
    enrolment = (await session.exec(stmt)).one()
    if enrolment.person_id != person.id:  # moved to another record by a merge meanwhile
        raise Conflict("the enrolment moved to another person record (a merge); read it again",
                       errors=[_error("person_id", "changed by a merge", "enrolment.moved")])
    if version is not None and enrolment.version != version:
        raise Conflict(f"the enrolment changed since you read it (version {enrolment.version}, you sent {version})",
                       current_version=enrolment.version, errors=[_error("version", "stale version", "version.stale")])
    return enrolment, person


def _check(enrolment: Enrolment, action: str) -> str:
    """The status ``action`` leads to; 409 naming the status when the lifecycle forbids it."""
    try:
        return domain.next_status(enrolment.status, action)
    except IllegalTransition as exc:
        raise Conflict(str(exc), current_status=enrolment.status, errors=[_error("status", str(exc), "enrolment.transition")]) from exc


def _move(enrolment: Enrolment, action: str) -> None:
    enrolment.status = _check(enrolment, action)
    enrolment.version += 1
    enrolment.updated_at = _now()


async def _save(session: AsyncSession, enrolment: Enrolment) -> None:
    session.add(enrolment)
    await session.flush()


def _four_eyes(rule: str, detail: str) -> Forbidden:
    return Forbidden(f"four-eyes rule: {rule}", type="four-eyes", title="Four-eyes rule",
                     errors=[_error("user", detail, "enrolment.four_eyes")])


async def verify(session: AsyncSession, principal: Principal, enrolment_id: uuid.UUID, *, version: int | None = None) -> Enrolment:
    enrolment, _person = await _lock(session, principal, enrolment_id, version)
    _check(enrolment, "verify")
    user = acting_user(principal)
    if access.same_user(user, enrolment.proposed_by):
        raise _four_eyes("the field verification must be done by another user than the one who proposed the enrolment",
                         f"{user} proposed this enrolment and cannot verify it")
    _move(enrolment, "verify")
    enrolment.verified_by, enrolment.verified_at = user, _now()
    await _save(session, enrolment)
    return enrolment


async def _reevaluate(session: AsyncSession, enrolment: Enrolment, person: Person, today: date) -> uuid.UUID | None:
    """Eligibility again with today's facts; returns the person's current household."""
    programme = await get_programme(session, enrolment.programme_code)
    membership = await current_membership(session, person.id)
    household_id = membership[1].id if membership else None
    if household_id is not None and ProgrammeRules.model_validate(programme.rules).one_per_household:
        # Two members approved at once: the household lock makes the second see the first.
        await session.exec(select(Household.id).where(Household.id == household_id).with_for_update())
    errors = await evaluate(session, person, programme, household_id, today=today)
    if errors:
        raise not_eligible(errors)
    return household_id


async def approve(session: AsyncSession, principal: Principal, enrolment_id: uuid.UUID, *, active_from: date | None = None,
                  version: int | None = None, today: date | None = None) -> Enrolment:
    today = today or date.today()
    enrolment, person = await _lock(session, principal, enrolment_id, version)
    if active_from is not None and active_from < today:
        raise invalid([_error("active_from", "cannot be in the past", "enrolment.active_from")])
    _check(enrolment, "approve")
    user = acting_user(principal)
    # Three people: who proposed, who verified in the field, who approves.
    if access.same_user(user, enrolment.proposed_by):
        raise _four_eyes("the approval must be given by another user than the one who proposed the enrolment",
                         f"{user} proposed this enrolment and cannot approve it")
    if access.same_user(user, enrolment.verified_by):
        raise _four_eyes("the approval must be given by another user than the one who verified the enrolment",
                         f"{user} verified this enrolment and cannot approve it")
    household_id = await _reevaluate(session, enrolment, person, today)
    _move(enrolment, "approve")
    enrolment.household_id = household_id
    enrolment.decided_by, enrolment.decided_at = user, _now()
    enrolment.active_from = active_from or today
    await _save(session, enrolment)
    await emit(session, EnrolmentApproved(**_event_fields(enrolment, person), household_id=enrolment.household_id, active_from=enrolment.active_from))
    return enrolment


async def reject(session: AsyncSession, principal: Principal, enrolment_id: uuid.UUID, reason: str, *, version: int | None = None) -> Enrolment:
    enrolment, person = await _lock(session, principal, enrolment_id, version)
    _move(enrolment, "reject")
    enrolment.decided_by, enrolment.decided_at, enrolment.reason = acting_user(principal), _now(), reason
    await _save(session, enrolment)
    await emit(session, EnrolmentRejected(**_event_fields(enrolment, person), reason=reason))
    return enrolment


async def suspend(session: AsyncSession, principal: Principal, enrolment_id: uuid.UUID, reason: str, *, version: int | None = None) -> Enrolment:
    enrolment, person = await _lock(session, principal, enrolment_id, version)
    _move(enrolment, "suspend")
    enrolment.suspend_reason = reason
    await _save(session, enrolment)
    await emit(session, EnrolmentSuspended(**_event_fields(enrolment, person), reason=reason))
    return enrolment


async def resume(session: AsyncSession, principal: Principal, enrolment_id: uuid.UUID, *, version: int | None = None,
                 today: date | None = None) -> Enrolment:
    enrolment, person = await _lock(session, principal, enrolment_id, version)
    _check(enrolment, "resume")
    household_id = await _reevaluate(session, enrolment, person, today or date.today())
    _move(enrolment, "resume")
    enrolment.household_id = household_id
    enrolment.suspend_reason = None
    await _save(session, enrolment)
    await emit(session, EnrolmentResumed(**_event_fields(enrolment, person)))
    return enrolment


def _close(enrolment: Enrolment, reason: str, ended_on: date, by: str) -> None:
    _move(enrolment, "end")
    enrolment.ended_on, enrolment.end_reason, enrolment.ended_by = ended_on, reason, by


async def end(session: AsyncSession, principal: Principal, enrolment_id: uuid.UUID, reason: str, *, ended_on: date | None = None,
              version: int | None = None) -> Enrolment:
    today = date.today()
    enrolment, person = await _lock(session, principal, enrolment_id, version)
    ended_on = ended_on or today
    if ended_on > today:
        raise invalid([_error("ended_on", "cannot be in the future", "enrolment.ended_on")])
    _close(enrolment, reason, ended_on, acting_user(principal))
    await _save(session, enrolment)
    await emit(session, EnrolmentEnded(**_event_fields(enrolment, person), reason=reason, ended_on=ended_on))
    return enrolment


async def _open_of(session: AsyncSession, person_id: uuid.UUID) -> list[Enrolment]:
    stmt = (
        select(Enrolment)
        .where(Enrolment.person_id == person_id, col(Enrolment.status).in_(domain.OPEN))
        .order_by(col(Enrolment.proposed_at), col(Enrolment.id))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list((await session.exec(stmt)).all())


async def end_all_enrolments(session: AsyncSession, person: Person, *, reason: str, ended_on: date) -> None:
    """End every open enrolment of ``person`` (death, move out of the province...), one
    ``EnrolmentEnded`` each. The caller holds the person's row lock."""
    if reason not in domain.SYSTEM_END_REASONS:
        raise ValueError(f"unknown end reason {reason!r}")
    for enrolment in await _open_of(session, person.id):
        _close(enrolment, reason, ended_on, SYSTEM_ACTOR)
        await _save(session, enrolment)
        await emit(session, EnrolmentEnded(**_event_fields(enrolment, person), reason=reason, ended_on=ended_on))


async def move_enrolments(session: AsyncSession, loser: Person, survivor: Person) -> None:
    """On a merge, the loser's open enrolments go to the survivor, except where the survivor
    already has an open one in that programme: the loser's is then ended ("merged").

    A moved enrolment keeps its id and status and is announced again under the survivor
    (``EnrolmentProposed`` while proposed or verified, ``EnrolmentApproved`` once active or
    suspended), so consumers keyed by ``enrolment_id`` re-point it. The caller holds both
    persons' row locks."""
    survivor_open = {e.programme_code for e in await _open_of(session, survivor.id)}
    membership = await current_membership(session, survivor.id)
    today = date.today()
    for enrolment in await _open_of(session, loser.id):
        if enrolment.programme_code in survivor_open:
            _close(enrolment, "merged", today, SYSTEM_ACTOR)
            await _save(session, enrolment)
            await emit(session, EnrolmentEnded(**_event_fields(enrolment, loser), reason="merged", ended_on=today))
            continue
        enrolment.person_id = survivor.id
        enrolment.household_id = membership[1].id if membership else None
        enrolment.regency_code = survivor.regency_code or enrolment.regency_code
        enrolment.version += 1
        enrolment.updated_at = _now()
        await _save(session, enrolment)
        survivor_open.add(enrolment.programme_code)
        if enrolment.status in domain.CURRENT:
            await emit(session, EnrolmentApproved(**_event_fields(enrolment, survivor), household_id=enrolment.household_id,
                                                  active_from=enrolment.active_from))
        else:
            await emit(session, EnrolmentProposed(**_event_fields(enrolment, survivor)))


async def list_enrolments(
    session: AsyncSession,
    principal: Principal,
    *,
    person_id: uuid.UUID | None = None,
    programme_code: str | None = None,
    status: str | None = None,
    regency_code: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    region_limited: bool = True,
) -> tuple[list[Enrolment], str | None]:
    """A page of enrolments in proposal order. A regency office sees only its region's."""
    stmt = select(Enrolment)
    if region_limited and principal.region:
        if regency_code and not principal.may_access_region(regency_code):
            return [], None
        regency_code = principal.region
    if regency_code:
        stmt = stmt.where(Enrolment.regency_code == regency_code)
    if person_id:
        stmt = stmt.where(Enrolment.person_id == person_id)
    if programme_code:
        stmt = stmt.where(Enrolment.programme_code == programme_code)
    if status:
        stmt = stmt.where(Enrolment.status == status)
    after = time_id_cursor(cursor)
    if after:
        stmt = stmt.where(tuple_(col(Enrolment.proposed_at), col(Enrolment.id)) > after)
    rows = (await session.exec(stmt.order_by(col(Enrolment.proposed_at), col(Enrolment.id)).limit(limit + 1))).all()
    return page(list(rows), limit, lambda e: [e.proposed_at.isoformat(), str(e.id)])

