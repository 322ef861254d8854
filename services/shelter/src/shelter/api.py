"""HTTP routes of cases (``/v1/cases/...``) and of a shelter's audit log.

Every route acts for a staff member (:data:`~shelter.access.ActorDep`) on a case that
member may see; any other case answers 404. Reads and changes are audited in the same
transaction. Every route that changes something honours ``Idempotency-Key`` (a retry with
the same key and body gets the first answer again, not a 409); POSTs that create answer with
a receipt that holds no survivor data, the record itself is read back with GET, and the other
changes answer with summaries that hold none either.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Query, Request
from sqlalchemy import tuple_
from sqlmodel import col, select

from pilar_kernel.db import SessionDep
from pilar_kernel.idempotency import idempotent
from pilar_kernel.pagination import decode_cursor, page
from pilar_kernel.problems import Forbidden, Problem
from pilar_kernel.types import INT64_MAX

from . import audit, care, cases, domain
from .access import ActorDep, load_case
from .models import Assignment, AuditEntry, Case, Stay
from .privacy import SealerDep
from .schemas import (
    AssessmentIn,
    AssessmentOut,
    AssessmentReceipt,
    AssignmentOut,
    AuditPage,
    CaseIn,
    CaseOut,
    CasePage,
    CasePatch,
    CaseReceipt,
    CaseStatus,
    CaseSummary,
    ClosureIn,
    ConsentIn,
    ConsentOut,
    DecisionIn,
    DischargeIn,
    IncidentIn,
    IncidentOut,
    IncidentReceipt,
    PlanIn,
    PlanOut,
    PlanReceipt,
    ReferralActionIn,
    ReferralIn,
    ReferralOut,
    ReferralReceipt,
    ReopenIn,
    ServiceIn,
    ServiceOut,
    ServiceReceipt,
    StayOut,
    TransferIn,
)

router = APIRouter(prefix="/v1", tags=["cases"])


def _bad_cursor() -> Problem:
    return Problem("cursor is not one this service issued", status=422, type="validation-error", title="Invalid input",
                   errors=[{"field": "query.cursor", "message": "unknown cursor", "rule": "cursor"}])


async def _summary(session, case: Case) -> dict:
    return (await cases.summaries(session, [case]))[0]


async def _once(request: Request, session, actor, produce, status_code: int = 200):
    """Run a change once per ``Idempotency-Key``: a retry gets the first answer again. The
    case is loaded inside ``produce``, so a replay answers even after a transfer took the
    case out of the caller's sight. Keys are kept per staff member, not only per client: all
    staff act through one app, and one member's key must never replay another's answer."""
    owner = dataclasses.replace(actor.principal, subject=f"{actor.principal.subject}#{actor.user_id.casefold()}")
    return await idempotent(request, session, owner, produce, status_code=status_code)


Cursor = Query(default=None, max_length=200, pattern=r"^[A-Za-z0-9_-]+$", description="next_cursor of the previous page")


@router.get("/risk-questions", summary="The risk assessment questionnaire")
async def risk_questions(actor: ActorDep) -> dict:
    return {
        "questionnaire": domain.QUESTIONNAIRE_VERSION,
        "answers": list(domain.ANSWERS),
        "questions": [{"id": q.id, "text": q.text, "weight": q.weight, "red_flag": q.red_flag} for q in domain.QUESTIONS],
        "levels": {"critical": "any red flag, or a score of 10 or more", "high": "score 6-9", "medium": "score 3-5", "low": "score 0-2"},
    }


# -- cases --------------------------------------------------------------------------------


@router.post("/cases", status_code=201, response_model=CaseReceipt, summary="Open a case at intake")
async def open_case(body: CaseIn, request: Request, session: SessionDep, actor: ActorDep, sealer: SealerDep):
    async def produce():
        return cases.receipt(await cases.intake(session, actor, sealer, body))

    return await _once(request, session, actor, produce, 201)


@router.get("/cases", response_model=CasePage, summary="Cases: a caseworker's own, or all of a supervisor's shelter")
async def list_cases(
    session: SessionDep,
    actor: ActorDep,
    status: CaseStatus | None = None,
    child: bool | None = None,
    limit: int = Query(default=50, ge=1, le=200),
    cursor: str | None = Cursor,
):
    stmt = select(Case).where(Case.shelter_id == actor.shelter_id)
    if not actor.is_supervisor:
        stmt = stmt.where(Case.caseworker_id == actor.user_id)
    if status:
        stmt = stmt.where(Case.status == status)
    if child is not None:
        stmt = stmt.where(Case.child == child)
    after = decode_cursor(cursor, datetime, uuid.UUID)
    if after:
        opened_at, case_id = after
        try:  # an opened_at PostgreSQL can compare: with an offset, within the calendar in UTC
            if opened_at.utcoffset() is None:
                raise ValueError("no offset")
            opened_at.astimezone(UTC)
        except (ValueError, OverflowError) as exc:
            raise _bad_cursor() from exc
        stmt = stmt.where(tuple_(col(Case.opened_at), col(Case.id)) > (opened_at, case_id))
    rows = list((await session.exec(stmt.order_by(col(Case.opened_at), col(Case.id)).limit(limit + 1))).all())
    items, next_cursor = page(rows, limit, lambda c: [c.opened_at.isoformat(), str(c.id)])
    for case in items:
        audit.record(session, actor, case, "case.list")
    return {"items": await cases.summaries(session, items), "next_cursor": next_cursor}


@router.get("/cases/{case_id}", response_model=CaseOut, summary="One case with the survivor's profile (audited)")
async def get_case(case_id: uuid.UUID, session: SessionDep, actor: ActorDep, sealer: SealerDep):
    case = await load_case(session, actor, case_id, action="case.read")
    audit.record(session, actor, case, "case.read")
    return await cases.case_out(session, sealer, case)


@router.patch("/cases/{case_id}", response_model=CaseSummary, summary="Correct the survivor's profile or the registry person id")
async def edit_case(case_id: uuid.UUID, body: CasePatch, request: Request, session: SessionDep, actor: ActorDep, sealer: SealerDep):
    async def produce():
        case = await load_case(session, actor, case_id, action="case.update", for_update=True)
        return await _summary(session, await cases.edit(session, actor, sealer, case, body))

    return await _once(request, session, actor, produce)


@router.get("/cases/{case_id}/history", response_model=list[AssignmentOut], summary="Who owned the case when (transfers)")
async def case_history(case_id: uuid.UUID, session: SessionDep, actor: ActorDep, sealer: SealerDep):
    case = await load_case(session, actor, case_id, action="history.read")
    audit.record(session, actor, case, "history.read")
    rows = (await session.exec(select(Assignment).where(Assignment.case_id == case.id).order_by(col(Assignment.id)))).all()
    return [a.model_dump(exclude={"reason_enc"}) | {"reason": sealer.open(a.reason_enc, case.id, "assignment.reason")} for a in rows]


# -- workflow -----------------------------------------------------------------------------


@router.post("/cases/{case_id}/plan", status_code=201, response_model=PlanReceipt, summary="Submit the case plan for approval")
async def submit_plan(case_id: uuid.UUID, body: PlanIn, request: Request, session: SessionDep, actor: ActorDep, sealer: SealerDep):
    case = await load_case(session, actor, case_id, action="plan.submit", for_update=True)

    async def produce():
        plan = await cases.submit_plan(session, actor, sealer, case, body.goals, body.planned_services)
        return {"id": plan.id, "case_id": case.id, "status": plan.status, "planned_services": plan.planned_services}

    return await _once(request, session, actor, produce, 201)


@router.post("/cases/{case_id}/plan/{decision}", response_model=CaseSummary, summary="A supervisor approves or returns the plan")
async def decide_plan(case_id: uuid.UUID, decision: Literal["approve", "return"], body: DecisionIn, request: Request, session: SessionDep,
                      actor: ActorDep, sealer: SealerDep):
    async def produce():
        case = await load_case(session, actor, case_id, action=f"plan.{decision}", for_update=True)
        await cases.decide_plan(session, actor, sealer, case, approve=decision == "approve", note=body.note)
        return await _summary(session, case)

    return await _once(request, session, actor, produce)


@router.get("/cases/{case_id}/plans", response_model=list[PlanOut], summary="The case plans, submitted and decided")
async def list_plans(case_id: uuid.UUID, session: SessionDep, actor: ActorDep, sealer: SealerDep):
    case = await load_case(session, actor, case_id, action="plan.list")
    audit.record(session, actor, case, "plan.list")
    return [care.plan_out(sealer, p) for p in await care.plans(session, case)]


@router.post("/cases/{case_id}/closure", response_model=CaseSummary, summary="Ask a supervisor to close the case")
async def request_closure(case_id: uuid.UUID, body: ClosureIn, request: Request, session: SessionDep, actor: ActorDep, sealer: SealerDep):
    async def produce():
        case = await load_case(session, actor, case_id, action="closure.request", for_update=True)
        await cases.request_closure(session, actor, sealer, case, body.reason, body.note)
        return await _summary(session, case)

    return await _once(request, session, actor, produce)


@router.post("/cases/{case_id}/closure/{decision}", response_model=CaseSummary, summary="A supervisor approves or rejects the closure")
async def decide_closure(case_id: uuid.UUID, decision: Literal["approve", "reject"], request: Request, session: SessionDep, actor: ActorDep):
    async def produce():
        case = await load_case(session, actor, case_id, action=f"closure.{decision}", for_update=True)
        await cases.decide_closure(session, actor, case, approve=decision == "approve")
        return await _summary(session, case)

    return await _once(request, session, actor, produce)


@router.post("/cases/{case_id}/reopen", response_model=CaseSummary, summary="Reopen a closed case")
async def reopen(case_id: uuid.UUID, body: ReopenIn, request: Request, session: SessionDep, actor: ActorDep):
    async def produce():
        case = await load_case(session, actor, case_id, action="case.reopen", for_update=True)
        return await _summary(session, await cases.reopen(session, actor, case, body.reason))

    return await _once(request, session, actor, produce)


@router.post("/cases/{case_id}/transfer", response_model=CaseSummary, summary="A supervisor hands the case to another caseworker or shelter")
async def transfer(case_id: uuid.UUID, body: TransferIn, request: Request, session: SessionDep, actor: ActorDep, sealer: SealerDep):
    async def produce():
        case = await load_case(session, actor, case_id, action="case.transfer", for_update=True)
        return await _summary(session, await cases.transfer(session, actor, sealer, case, body))

    return await _once(request, session, actor, produce)


# -- beds ---------------------------------------------------------------------------------


@router.post("/cases/{case_id}/admission", status_code=201, response_model=StayOut, summary="Give the survivor a bed in the case's shelter")
async def admit(case_id: uuid.UUID, request: Request, session: SessionDep, actor: ActorDep):
    case = await load_case(session, actor, case_id, action="bed.admit", for_update=True)

    async def produce():
        return (await cases.admit(session, actor, case)).model_dump()

    return await _once(request, session, actor, produce, 201)


@router.post("/cases/{case_id}/discharge", response_model=StayOut, summary="Free the survivor's bed; optionally propose economic support")
async def discharge(case_id: uuid.UUID, body: DischargeIn, request: Request, session: SessionDep, actor: ActorDep, sealer: SealerDep):
    async def produce():
        case = await load_case(session, actor, case_id, action="bed.discharge", for_update=True)
        return (await cases.discharge(session, actor, sealer, case, body.economic_support_programme)).model_dump()

    return await _once(request, session, actor, produce)


@router.get("/cases/{case_id}/stays", response_model=list[StayOut], summary="Admissions and discharges of the case")
async def stays(case_id: uuid.UUID, session: SessionDep, actor: ActorDep):
    case = await load_case(session, actor, case_id, action="stay.list")
    audit.record(session, actor, case, "stay.list")
    return (await session.exec(select(Stay).where(Stay.case_id == case.id).order_by(col(Stay.admitted_at)))).all()


# -- care records -------------------------------------------------------------------------


@router.post("/cases/{case_id}/consents", status_code=201, response_model=ConsentOut, summary="Record consent given or withdrawn")
async def record_consent(case_id: uuid.UUID, body: ConsentIn, request: Request, session: SessionDep, actor: ActorDep, sealer: SealerDep):
    case = await load_case(session, actor, case_id, action="consent.record", for_update=True)

    async def produce():
        return (await care.record_consent(session, actor, sealer, case, body)).model_dump()

    return await _once(request, session, actor, produce, 201)


@router.get("/cases/{case_id}/consents", response_model=list[ConsentOut], summary="Every consent record of the case, oldest first")
async def consents(case_id: uuid.UUID, session: SessionDep, actor: ActorDep):
    case = await load_case(session, actor, case_id, action="consent.list")
    audit.record(session, actor, case, "consent.list")
    return [c.model_dump() for c in await care.consent_history(session, case)]


@router.post("/cases/{case_id}/incidents", status_code=201, response_model=IncidentReceipt, summary="Record an incident of violence")
async def add_incident(case_id: uuid.UUID, body: IncidentIn, request: Request, session: SessionDep, actor: ActorDep, sealer: SealerDep):
    case = await load_case(session, actor, case_id, action="incident.create", for_update=True)

    async def produce():
        incident = await care.add_incident(session, actor, sealer, case, body)
        return {"id": incident.id, "case_id": case.id, "recorded_at": incident.recorded_at}

    return await _once(request, session, actor, produce, 201)


@router.get("/cases/{case_id}/incidents", response_model=list[IncidentOut], summary="The incidents of the case")
async def incidents(case_id: uuid.UUID, session: SessionDep, actor: ActorDep, sealer: SealerDep):
    case = await load_case(session, actor, case_id, action="incident.list")
    audit.record(session, actor, case, "incident.list")
    return [care.incident_out(sealer, i) for i in await care.incidents(session, case)]


@router.post("/cases/{case_id}/risk-assessments", status_code=201, response_model=AssessmentReceipt, summary="Record a risk assessment")
async def assess(case_id: uuid.UUID, body: AssessmentIn, request: Request, session: SessionDep, actor: ActorDep, sealer: SealerDep):
    case = await load_case(session, actor, case_id, action="assessment.create", for_update=True)

    async def produce():
        a = await care.assess(session, actor, sealer, case, body.answers)
        return {"id": a.id, "case_id": case.id, "level": a.level, "score": a.score, "assessed_at": a.assessed_at}

    return await _once(request, session, actor, produce, 201)


@router.get("/cases/{case_id}/risk-assessments", response_model=list[AssessmentOut], summary="The risk assessments, with their answers")
async def assessments(case_id: uuid.UUID, session: SessionDep, actor: ActorDep, sealer: SealerDep):
    case = await load_case(session, actor, case_id, action="assessment.list")
    audit.record(session, actor, case, "assessment.list")
    return [care.assessment_out(sealer, a) for a in await care.assessments(session, case)]


@router.post("/cases/{case_id}/services", status_code=201, response_model=ServiceReceipt, summary="Record a service delivered")
async def add_service(case_id: uuid.UUID, body: ServiceIn, request: Request, session: SessionDep, actor: ActorDep, sealer: SealerDep):
    case = await load_case(session, actor, case_id, action="service.create", for_update=True)

    async def produce():
        s = await care.add_service(session, actor, sealer, case, body)
        return {"id": s.id, "case_id": case.id, "kind": s.kind, "delivered_on": s.delivered_on}

    return await _once(request, session, actor, produce, 201)


@router.get("/cases/{case_id}/services", response_model=list[ServiceOut], summary="The services delivered")
async def services(case_id: uuid.UUID, session: SessionDep, actor: ActorDep, sealer: SealerDep):
    case = await load_case(session, actor, case_id, action="service.list")
    audit.record(session, actor, case, "service.list")
    return [care.service_out(sealer, s) for s in await care.services(session, case)]


@router.post("/cases/{case_id}/referrals", status_code=201, response_model=ReferralReceipt, summary="Refer the survivor to a partner")
async def refer(case_id: uuid.UUID, body: ReferralIn, request: Request, session: SessionDep, actor: ActorDep, sealer: SealerDep):
    case = await load_case(session, actor, case_id, action="referral.create", for_update=True)

    async def produce():
        r = await care.refer(session, actor, sealer, case, body)
        return {"id": r.id, "case_id": case.id, "partner_kind": r.partner_kind, "status": r.status, "version": r.version}

    return await _once(request, session, actor, produce, 201)


@router.get("/cases/{case_id}/referrals", response_model=list[ReferralOut], summary="The referrals to partners")
async def referrals(case_id: uuid.UUID, session: SessionDep, actor: ActorDep, sealer: SealerDep):
    case = await load_case(session, actor, case_id, action="referral.list")
    audit.record(session, actor, case, "referral.list")
    return [care.referral_out(sealer, r) for r in await care.referrals(session, case)]


@router.post("/cases/{case_id}/referrals/{referral_id}/{action}", response_model=ReferralReceipt,
             summary="Move a referral: accept, reject (reason), complete (successful or not) or revoke (reason)")
async def referral_action(case_id: uuid.UUID, referral_id: uuid.UUID, action: Literal["accept", "reject", "complete", "revoke"],
                          body: ReferralActionIn, request: Request, session: SessionDep, actor: ActorDep, sealer: SealerDep):
    async def produce():
        case = await load_case(session, actor, case_id, action=f"referral.{action}", for_update=True)
        r = await care.referral_action(session, actor, sealer, case, referral_id, action, body)
        return {"id": r.id, "case_id": case.id, "partner_kind": r.partner_kind, "status": r.status, "version": r.version}

    return await _once(request, session, actor, produce)


# -- the audit log ------------------------------------------------------------------------


@router.get("/shelters/{shelter_id}/audit", response_model=AuditPage, summary="The shelter's audit log (its supervisors only)")
async def audit_log(
    shelter_id: uuid.UUID,
    session: SessionDep,
    actor: ActorDep,
    case_id: uuid.UUID | None = None,
    limit: int = Query(default=100, ge=1, le=500),
    cursor: str | None = Cursor,
):
    if not (actor.is_supervisor and actor.shelter_id == shelter_id):
        raise Forbidden("only the supervisors of a shelter read its audit log")
    stmt = select(AuditEntry).where(AuditEntry.shelter_id == shelter_id)
    if case_id:
        stmt = stmt.where(AuditEntry.case_id == case_id)
    after = decode_cursor(cursor, int)
    if after:
        if not 0 <= after[0] <= INT64_MAX:
            raise _bad_cursor()
        stmt = stmt.where(col(AuditEntry.id) > after[0])
    rows = list((await session.exec(stmt.order_by(col(AuditEntry.id)).limit(limit + 1))).all())
    items, next_cursor = page(rows, limit, lambda e: [e.id])
    return {"items": [e.model_dump() for e in items], "next_cursor": next_cursor}
