"""Use cases of a case as a whole: intake, reading, editing, the workflow, transfer and beds.

Each runs in the caller's transaction, on a case the caller was allowed to load (see
:func:`shelter.access.load_case`; changes load it locked), records an audit entry and, where
the platform needs to know, an event in the outbox. Locks are taken case first, then the
shelter's bed counter, so concurrent requests queue instead of deadlocking.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from pilar_kernel.problems import Conflict, NotFound, RuleViolation

from . import audit, domain
from .access import Actor, find_staff, same_user
from .events import CaseAdmitted, CaseClosed, CaseDischarged, CaseOpened, CaseReopened, CaseTransferred, EconomicSupportReferral, emit
from .models import Assignment, Case, CasePlan, ClosureRequest, Consent, Incident, RiskAssessment, Shelter, Staff, Stay
from .privacy import Sealer
from .schemas import CaseIn, CasePatch, TransferIn

# Dates on events and in statistics are East Java's calendar days (WIB).
LOCAL = ZoneInfo("Asia/Jakarta")

PROFILE_FIELDS = ("name", "nik", "birth_date", "age_estimate", "address", "phone", "guardian_name", "guardian_contact", "notes")


def now() -> datetime:
    return datetime.now(UTC)


def local_date(moment: datetime) -> date:
    return moment.astimezone(LOCAL).date()


def touch(case: Case) -> None:
    case.version += 1
    case.updated_at = now()


def check_version(case: Case, version: int | None) -> None:
    if version is not None and version != case.version:
        raise Conflict(f"the case changed since you read it (version {case.version}, you sent {version})", current_version=case.version,
                       errors=[{"field": "version", "message": "stale version", "rule": "version.stale"}])


async def get_shelter(session, shelter_id: uuid.UUID) -> Shelter:
    shelter = await session.get(Shelter, shelter_id)
    if shelter is None:
        raise NotFound("no such shelter")
    return shelter


async def _caseworker_of(session, user_id: str, shelter_id: uuid.UUID, field: str) -> Staff:
    staff = await find_staff(session, user_id)
    if staff is None or not staff.active or staff.role != "caseworker" or staff.shelter_id != shelter_id:
        raise RuleViolation(field, "not an active caseworker of the shelter", rule="case.caseworker")
    return staff


async def consents_in_force(session, case_id: uuid.UUID) -> dict[str, Consent]:
    """The latest consent record of each kind."""
    rows = await session.exec(
        select(Consent).where(Consent.case_id == case_id).order_by(col(Consent.kind), col(Consent.id).desc()).ext(distinct_on(col(Consent.kind)))
    )
    return {c.kind: c for c in rows.all()}


async def consent_flags(session, case_id: uuid.UUID) -> dict[str, bool]:
    return {kind: c.granted for kind, c in (await consents_in_force(session, case_id)).items()}


async def violence_types(session, case_id: uuid.UUID) -> list[str]:
    rows = (await session.exec(select(Incident.violence_types).where(Incident.case_id == case_id))).all()
    seen = {t for types in rows for t in types}
    return [t for t in domain.VIOLENCE_TYPES if t in seen]


async def _open_stay(session, case_id: uuid.UUID, *, for_update: bool = False) -> Stay | None:
    stmt = select(Stay).where(Stay.case_id == case_id, col(Stay.discharged_at).is_(None))
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.exec(stmt)).first()


async def _event_facts(session, case: Case) -> dict[str, Any]:
    return {"case_id": case.id, "shelter_id": case.shelter_id, "regency_code": case.regency_code, "child": case.child,
            "ppks": domain.ppks_categories(case.child, await violence_types(session, case.id))}


# -- intake and reading -------------------------------------------------------------------


async def intake(session, actor: Actor, sealer: Sealer, body: CaseIn) -> Case:
    shelter = await get_shelter(session, actor.shelter_id)
    if not shelter.active:
        raise Conflict("the shelter is closed to new cases")
    if actor.is_supervisor:
        if not body.caseworker_id:
            raise RuleViolation("caseworker_id", "a supervisor assigns the case to a caseworker of the shelter", rule="case.caseworker")
        caseworker = (await _caseworker_of(session, body.caseworker_id, shelter.id, "caseworker_id")).user_id
    else:
        if body.caseworker_id is not None and not same_user(body.caseworker_id, actor.user_id):
            raise RuleViolation("caseworker_id", "a caseworker opens cases for themselves; a supervisor assigns others", rule="case.caseworker")
        caseworker = actor.user_id
    opened = now()
    survivor = body.survivor
    child = domain.is_child(birth_date=survivor.birth_date, age_estimate=survivor.age_estimate, on=local_date(opened))
    domain.check_placement(child=child, sex=survivor.sex, shelter_kind=shelter.kind)
    for consent in body.consents:
        domain.check_consent_giver(child, consent.given_by)
    case_id = uuid.uuid4()
    profile = {name: getattr(survivor, name) for name in PROFILE_FIELDS} | {"referral_note": body.referral_note}
    case = Case(
        id=case_id, shelter_id=shelter.id, caseworker_id=caseworker, child=child, sex=survivor.sex, regency_code=survivor.regency_code,
        referral_source=body.referral_source, profile_enc=sealer.seal_json(profile, case_id, "profile"),
        person_enc=sealer.seal(str(body.registry_person_id), case_id, "person") if body.registry_person_id else None,
        opened_by=actor.user_id, opened_at=opened, updated_at=opened,
    )
    session.add(case)
    await session.flush()  # the case row first: the unit of work does not order rows by foreign keys
    session.add(Assignment(case_id=case_id, shelter_id=shelter.id, caseworker_id=caseworker, assigned_by=actor.user_id, started_at=opened))
    for consent in body.consents:
        session.add(Consent(case_id=case_id, recorded_by=actor.user_id, **consent.model_dump()))
    await session.flush()
    audit.record(session, actor, case, "case.open", consents=[c.kind for c in body.consents])
    await emit(session, CaseOpened(**await _event_facts(session, case), opened_on=local_date(opened), referral_source=case.referral_source))
    return case


def receipt(case: Case) -> dict[str, Any]:
    return {"id": case.id, "status": case.status, "shelter_id": case.shelter_id, "caseworker_id": case.caseworker_id,
            "child": case.child, "version": case.version, "opened_at": case.opened_at}


async def summaries(session, cases: list[Case]) -> list[dict[str, Any]]:
    """Summaries of ``cases`` with their latest risk level and whether they hold a bed."""
    ids = [c.id for c in cases]
    levels: dict[uuid.UUID, str] = {}
    admitted: set[uuid.UUID] = set()
    if ids:
        rows = await session.exec(
            select(RiskAssessment.case_id, RiskAssessment.level).where(col(RiskAssessment.case_id).in_(ids))
            .order_by(col(RiskAssessment.case_id), col(RiskAssessment.assessed_at).desc()).ext(distinct_on(col(RiskAssessment.case_id)))
        )
        levels = dict(rows.all())
        admitted = set((await session.exec(select(Stay.case_id).where(col(Stay.case_id).in_(ids), col(Stay.discharged_at).is_(None)))).all())
    return [
        receipt(c) | {"sex": c.sex, "regency_code": c.regency_code, "referral_source": c.referral_source, "closed_at": c.closed_at,
                      "closure_reason": c.closure_reason, "risk_level": levels.get(c.id), "admitted": c.id in admitted}
        for c in cases
    ]


async def case_out(session, sealer: Sealer, case: Case) -> dict[str, Any]:
    profile = sealer.open_json(case.profile_enc, case.id, "profile")
    person = sealer.open(case.person_enc, case.id, "person")
    consents = await consents_in_force(session, case.id)
    return (await summaries(session, [case]))[0] | {
        "survivor": {name: profile.get(name) for name in PROFILE_FIELDS} | {"sex": case.sex, "regency_code": case.regency_code},
        "referral_note": profile.get("referral_note"),
        "registry_person_id": uuid.UUID(person) if person else None,
        "consents": {kind: {"granted": c.granted, "given_by": c.given_by, "recorded_by": c.recorded_by, "recorded_at": c.recorded_at}
                     for kind, c in consents.items()},
        "allowed_actions": domain.allowed_actions(case.status),
    }


async def edit(session, actor: Actor, sealer: Sealer, case: Case, body: CasePatch) -> Case:
    check_version(case, body.version)
    domain.check_open(case.status, "changes")
    profile = sealer.open_json(case.profile_enc, case.id, "profile")
    changed: list[str] = []
    if body.survivor is not None:
        for name in sorted(body.survivor.model_fields_set):
            value = getattr(body.survivor, name)
            if name == "regency_code":
                if value is None:
                    raise RuleViolation("survivor.regency_code", "the home regency cannot be removed")
                case.regency_code = value
            else:
                profile[name] = value.isoformat() if isinstance(value, date) else value
            changed.append(f"survivor.{name}")
        if {"birth_date", "age_estimate"} & body.survivor.model_fields_set:
            birth = date.fromisoformat(profile["birth_date"]) if profile.get("birth_date") else None
            child = domain.is_child(birth_date=birth, age_estimate=profile.get("age_estimate"), on=local_date(case.opened_at))
            domain.check_placement(child=child, sex=case.sex, shelter_kind=(await get_shelter(session, case.shelter_id)).kind)
            case.child = child
    if "referral_note" in body.model_fields_set:
        profile["referral_note"] = body.referral_note
        changed.append("referral_note")
    if "registry_person_id" in body.model_fields_set:
        pid = body.registry_person_id
        case.person_enc = sealer.seal(str(pid), case.id, "person") if pid else None
        changed.append("registry_person_id")
    if not changed:
        return case
    case.profile_enc = sealer.seal_json(profile, case.id, "profile")
    touch(case)
    session.add(case)
    await session.flush()
    audit.record(session, actor, case, "case.update", fields=changed)
    return case


# -- the workflow -------------------------------------------------------------------------


def move(case: Case, action: str) -> str:
    """Apply ``action`` to the case's status; returns the status it left."""
    before = case.status
    case.status = domain.next_status(case.status, action, paused=case.paused_status)
    touch(case)
    return before


async def submit_plan(session, actor: Actor, sealer: Sealer, case: Case, goals: str, services: list[str]) -> CasePlan:
    move(case, "submit_plan")
    plan = CasePlan(id=uuid.uuid4(), case_id=case.id, goals_enc=b"", planned_services=sorted(set(services)), submitted_by=actor.user_id)
    plan.goals_enc = sealer.seal(goals, plan.id, "goals")
    session.add_all([case, plan])
    await session.flush()
    audit.record(session, actor, case, "plan.submit", plan_id=str(plan.id))
    return plan


async def _submitted_plan(session, case: Case) -> CasePlan:
    plan = (await session.exec(select(CasePlan).where(CasePlan.case_id == case.id, CasePlan.status == "submitted").with_for_update())).first()
    if plan is None:  # the status said plan_pending: cannot happen unless data was edited by hand
        raise Conflict("the case has no submitted plan")
    return plan


async def decide_plan(session, actor: Actor, sealer: Sealer, case: Case, *, approve: bool, note: str | None) -> CasePlan:
    actor.require_supervisor("approve or return a case plan")
    action = "approve_plan" if approve else "return_plan"
    domain.next_status(case.status, action)  # 409 before anything else when the case is not waiting
    if not approve and not note:
        raise RuleViolation("note", "say why the plan is returned", rule="plan.return_note")
    plan = await _submitted_plan(session, case)
    domain.check_four_eyes(actor.user_id, plan.submitted_by, "plan")
    move(case, action)
    plan.status, plan.decided_by, plan.decided_at = ("approved" if approve else "returned"), actor.user_id, now()
    plan.note_enc = sealer.seal(note, plan.id, "note")
    session.add_all([case, plan])
    await session.flush()
    audit.record(session, actor, case, "plan.approve" if approve else "plan.return", plan_id=str(plan.id))
    return plan


async def _no_bed_held(session, case: Case) -> None:
    if await _open_stay(session, case.id) is not None:
        raise Conflict("the survivor still holds a bed: discharge first", errors=[{"field": "status", "message": "admitted", "rule": "case.admitted"}])


async def request_closure(session, actor: Actor, sealer: Sealer, case: Case, reason: str, note: str | None) -> ClosureRequest:
    domain.next_status(case.status, "request_closure")
    await _no_bed_held(session, case)
    case.paused_status = move(case, "request_closure")
    request = ClosureRequest(id=uuid.uuid4(), case_id=case.id, reason=reason, requested_by=actor.user_id)
    request.note_enc = sealer.seal(note, request.id, "note")
    session.add_all([case, request])
    await session.flush()
    audit.record(session, actor, case, "closure.request", reason=reason)
    return request


async def decide_closure(session, actor: Actor, case: Case, *, approve: bool) -> Case:
    actor.require_supervisor("approve or reject a closure")
    action = "approve_closure" if approve else "reject_closure"
    domain.next_status(case.status, action, paused=case.paused_status)
    request = (await session.exec(select(ClosureRequest).where(ClosureRequest.case_id == case.id, ClosureRequest.status == "pending")
                                  .with_for_update())).first()
    if request is None:
        raise Conflict("the case has no pending closure request")
    domain.check_four_eyes(actor.user_id, request.requested_by, "closure")
    request.status, request.decided_by, request.decided_at = ("approved" if approve else "rejected"), actor.user_id, now()
    if approve:
        await _no_bed_held(session, case)
        move(case, action)
        case.closed_at, case.closure_reason = now(), request.reason
    else:
        move(case, action)
    case.paused_status = None
    session.add_all([case, request])
    await session.flush()
    audit.record(session, actor, case, "closure.approve" if approve else "closure.reject", reason=request.reason)
    if approve:
        facts = await _event_facts(session, case)
        await emit(session, CaseClosed(**facts, opened_on=local_date(case.opened_at), closed_on=local_date(case.closed_at),
                                       closure_reason=case.closure_reason, violence_types=await violence_types(session, case.id)))
    return case


async def reopen(session, actor: Actor, case: Case, reason: str) -> Case:
    move(case, "reopen")
    case.closed_at, case.closure_reason = None, None
    session.add(case)
    await session.flush()
    audit.record(session, actor, case, "case.reopen", reason=reason)
    await emit(session, CaseReopened(**await _event_facts(session, case), reopened_on=local_date(now())))
    return case


# -- transfer -----------------------------------------------------------------------------


async def transfer(session, actor: Actor, sealer: Sealer, case: Case, body: TransferIn) -> Case:
    actor.require_supervisor("transfer a case")
    check_version(case, body.version)
    domain.check_open(case.status, "a transfer")
    target = await get_shelter(session, body.shelter_id or case.shelter_id)
    moving = target.id != case.shelter_id
    if moving:
        if not target.active:
            raise RuleViolation("shelter_id", "the shelter is closed", rule="transfer.shelter_active")
        domain.check_placement(child=case.child, sex=case.sex, shelter_kind=target.kind)
        await _no_bed_held(session, case)
    to_caseworker = (await _caseworker_of(session, body.caseworker_id, target.id, "caseworker_id")).user_id
    if not moving and same_user(to_caseworker, case.caseworker_id):
        raise Conflict("the case is already with this caseworker")
    at = now()
    current = (await session.exec(select(Assignment).where(Assignment.case_id == case.id, col(Assignment.ended_at).is_(None)).with_for_update())).one()
    current.ended_at = at
    session.add(current)
    await session.flush()  # end the current row before the new one (one current row per case)
    session.add(Assignment(case_id=case.id, shelter_id=target.id, caseworker_id=to_caseworker, assigned_by=actor.user_id,
                           reason_enc=sealer.seal(body.reason, case.id, "assignment.reason"), started_at=at))
    from_shelter, from_caseworker = case.shelter_id, case.caseworker_id
    audit.record(session, actor, case, "case.transfer_out", to_shelter=str(target.id), from_caseworker=from_caseworker, to_caseworker=to_caseworker)
    case.shelter_id, case.caseworker_id = target.id, to_caseworker
    touch(case)
    session.add(case)
    await session.flush()
    if moving:  # the receiving shelter's supervisors see the hand-over in their log too
        audit.record(session, actor, case, "case.transfer_in", from_shelter=str(from_shelter), to_caseworker=to_caseworker)
    await emit(session, CaseTransferred(**await _event_facts(session, case), from_shelter_id=from_shelter, transferred_on=local_date(at)))
    return case


# -- beds ---------------------------------------------------------------------------------


async def admit(session, actor: Actor, case: Case) -> Stay:
    """Take a bed in the case's shelter. The bed counter is decremented with a conditional
    UPDATE: of two admissions racing for the last bed, the second finds it taken."""
    domain.check_open(case.status, "an admission")
    if await _open_stay(session, case.id) is not None:
        raise Conflict("the survivor is already admitted", errors=[{"field": "case_id", "message": "already admitted", "rule": "bed.admitted"}])
    taken = await session.execute(
        update(Shelter)
        .where(Shelter.id == case.shelter_id, Shelter.active, Shelter.occupied < Shelter.capacity)
        .values(occupied=Shelter.occupied + 1)
        .returning(Shelter.id)
    )
    if taken.first() is None:
        raise Conflict("no free bed in the shelter", errors=[{"field": "shelter_id", "message": "every bed is occupied", "rule": "bed.full"}])
    stay = Stay(case_id=case.id, shelter_id=case.shelter_id, admitted_by=actor.user_id)
    session.add(stay)
    try:
        await session.flush()
    except IntegrityError as exc:  # ux_stay_open: cannot happen while the case row is locked
        raise Conflict("the survivor is already admitted") from exc
    audit.record(session, actor, case, "bed.admit", stay_id=str(stay.id))
    await emit(session, CaseAdmitted(**await _event_facts(session, case), stay_id=stay.id, admitted_on=local_date(stay.admitted_at)))
    return stay


async def discharge(session, actor: Actor, sealer: Sealer, case: Case, programme: str | None) -> Stay:
    stay = await _open_stay(session, case.id, for_update=True)
    if stay is None:
        raise Conflict("the survivor holds no bed", errors=[{"field": "case_id", "message": "not admitted", "rule": "bed.not_admitted"}])
    support = None
    if programme:
        domain.require_consent(await consent_flags(session, case.id), "economic_support")
        person = sealer.open(case.person_enc, case.id, "person")
        support = EconomicSupportReferral(person_id=uuid.UUID(person) if person else None, programme_code=programme)
    stay.discharged_at, stay.discharged_by, stay.economic_support_programme = now(), actor.user_id, programme
    session.add(stay)
    await session.execute(update(Shelter).where(Shelter.id == stay.shelter_id).values(occupied=Shelter.occupied - 1))
    await session.flush()
    audit.record(session, actor, case, "bed.discharge", stay_id=str(stay.id), economic_support=programme)
    await emit(session, CaseDischarged(**await _event_facts(session, case), stay_id=stay.id, admitted_on=local_date(stay.admitted_at),
                                       discharged_on=local_date(stay.discharged_at), economic_support=support))
    return stay
