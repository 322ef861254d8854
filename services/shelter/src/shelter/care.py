"""Use cases of the records kept on a case: consents, incidents, risk assessments,
services and referrals to partners. Like :mod:`shelter.cases`, each runs on a case the
caller was allowed to load, in the caller's transaction, and is audited.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import col, select

from pilar_kernel.problems import Conflict, NotFound, RuleViolation

from . import audit, domain
from .access import Actor
from .cases import consent_flags, move, now
from .models import Case, CasePlan, CaseService, Consent, Incident, Referral, RiskAssessment
from .privacy import Sealer
from .schemas import ConsentIn, IncidentIn, ReferralActionIn, ReferralIn, ServiceIn


# -- consents -----------------------------------------------------------------------------


async def record_consent(session, actor: Actor, sealer: Sealer, case: Case, body: ConsentIn) -> Consent:
    """Consent is given or withdrawn at any time, even on a closed case. Withdrawing consent
    to share with partners revokes the referrals still open."""
    domain.check_consent_giver(case.child, body.given_by)
    consent = Consent(case_id=case.id, recorded_by=actor.user_id, **body.model_dump())
    session.add(consent)
    await session.flush()
    audit.record(session, actor, case, "consent.record", kind=body.kind, granted=body.granted)
    if body.kind == "partner_sharing" and not body.granted:
        open_referrals = (await session.exec(
            select(Referral).where(Referral.case_id == case.id, col(Referral.status).in_(domain.REFERRAL_OPEN)).with_for_update()
        )).all()
        for referral in open_referrals:
            _apply_referral(referral, sealer, "revoke", reason="consent to share with partners withdrawn")
            session.add(referral)
            audit.record(session, actor, case, "referral.revoke", referral_id=str(referral.id), automatic=True)
        await session.flush()
    return consent


async def consent_history(session, case: Case) -> list[Consent]:
    return list((await session.exec(select(Consent).where(Consent.case_id == case.id).order_by(col(Consent.id)))).all())


# -- incidents ----------------------------------------------------------------------------


async def add_incident(session, actor: Actor, sealer: Sealer, case: Case, body: IncidentIn) -> Incident:
    domain.check_open(case.status, "an incident")
    incident = Incident(id=uuid.uuid4(), case_id=case.id, violence_types=sorted(set(body.violence_types)),
                        perpetrator_relationship=body.perpetrator_relationship, occurred_on=body.occurred_on,
                        regency_code=body.regency_code, recorded_by=actor.user_id)
    incident.narrative_enc = sealer.seal(body.narrative, incident.id, "narrative")
    session.add(incident)
    await session.flush()
    audit.record(session, actor, case, "incident.create", incident_id=str(incident.id))
    return incident


def incident_out(sealer: Sealer, incident: Incident) -> dict[str, Any]:
    out = incident.model_dump(exclude={"narrative_enc"})
    out["narrative"] = sealer.open(incident.narrative_enc, incident.id, "narrative")
    return out


async def incidents(session, case: Case) -> list[Incident]:
    stmt = select(Incident).where(Incident.case_id == case.id).order_by(col(Incident.recorded_at), col(Incident.id))
    return list((await session.exec(stmt)).all())


# -- risk assessments ---------------------------------------------------------------------


async def assess(session, actor: Actor, sealer: Sealer, case: Case, answers: dict[str, str]) -> RiskAssessment:
    """Score the answers; the first assessment moves a case from intake to assessment."""
    domain.check_open(case.status, "a risk assessment")
    level, score = domain.assess_risk(answers)
    move(case, "assess")
    assessment = RiskAssessment(id=uuid.uuid4(), case_id=case.id, questionnaire=domain.QUESTIONNAIRE_VERSION, level=level, score=score,
                                answers_enc=b"", assessed_by=actor.user_id)
    assessment.answers_enc = sealer.seal_json(answers, assessment.id, "answers")
    session.add_all([case, assessment])
    await session.flush()
    audit.record(session, actor, case, "assessment.create", level=level)
    return assessment


def assessment_out(sealer: Sealer, assessment: RiskAssessment) -> dict[str, Any]:
    out = assessment.model_dump(exclude={"answers_enc"})
    out["answers"] = sealer.open_json(assessment.answers_enc, assessment.id, "answers")
    return out


async def assessments(session, case: Case) -> list[RiskAssessment]:
    stmt = select(RiskAssessment).where(RiskAssessment.case_id == case.id).order_by(col(RiskAssessment.assessed_at), col(RiskAssessment.id))
    return list((await session.exec(stmt)).all())


# -- plans and services -------------------------------------------------------------------


def plan_out(sealer: Sealer, plan: CasePlan) -> dict[str, Any]:
    out = plan.model_dump(exclude={"goals_enc", "note_enc"})
    out["goals"] = sealer.open(plan.goals_enc, plan.id, "goals")
    out["note"] = sealer.open(plan.note_enc, plan.id, "note")
    return out


async def plans(session, case: Case) -> list[CasePlan]:
    stmt = select(CasePlan).where(CasePlan.case_id == case.id).order_by(col(CasePlan.submitted_at), col(CasePlan.id))
    return list((await session.exec(stmt)).all())


async def add_service(session, actor: Actor, sealer: Sealer, case: Case, body: ServiceIn) -> CaseService:
    """Services follow the approved plan and need the survivor's consent to services."""
    domain.check_services_allowed(case.status)
    domain.require_consent(await consent_flags(session, case.id), "service")
    service = CaseService(id=uuid.uuid4(), case_id=case.id, kind=body.kind, provider=body.provider, delivered_on=body.delivered_on,
                          outcome_enc=b"", recorded_by=actor.user_id)
    service.outcome_enc = sealer.seal(body.outcome, service.id, "outcome")
    session.add(service)
    await session.flush()
    audit.record(session, actor, case, "service.create", service_id=str(service.id), kind=body.kind)
    return service


def service_out(sealer: Sealer, service: CaseService) -> dict[str, Any]:
    out = service.model_dump(exclude={"outcome_enc"})
    out["outcome"] = sealer.open(service.outcome_enc, service.id, "outcome")
    return out


async def services(session, case: Case) -> list[CaseService]:
    stmt = select(CaseService).where(CaseService.case_id == case.id).order_by(col(CaseService.delivered_on), col(CaseService.id))
    return list((await session.exec(stmt)).all())


# -- referrals to partners ----------------------------------------------------------------


async def refer(session, actor: Actor, sealer: Sealer, case: Case, body: ReferralIn) -> Referral:
    domain.check_open(case.status, "a referral")
    domain.require_consent(await consent_flags(session, case.id), "referral")
    referral = Referral(id=uuid.uuid4(), case_id=case.id, partner_kind=body.partner_kind, partner_name=body.partner_name,
                        purpose_enc=b"", created_by=actor.user_id)
    referral.purpose_enc = sealer.seal(body.purpose, referral.id, "purpose")
    session.add(referral)
    await session.flush()
    audit.record(session, actor, case, "referral.create", referral_id=str(referral.id), partner_kind=body.partner_kind)
    return referral


def _apply_referral(referral: Referral, sealer: Sealer, action: str, *, reason: str | None = None, successful: bool | None = None) -> None:
    referral.status = domain.next_referral_status(referral.status, action)
    if action == "complete":
        if successful is None:
            raise RuleViolation("successful", "say whether the referral achieved its purpose", rule="referral.successful")
        if not successful and not reason:
            raise RuleViolation("reason", "say why the referral did not succeed", rule="referral.reason")
        referral.successful = successful
    elif action in ("reject", "revoke") and not reason:
        raise RuleViolation("reason", f"say why the referral is {referral.status}", rule="referral.reason")
    if reason:
        referral.reason_enc = sealer.seal(reason, referral.id, "reason")
    referral.version += 1
    referral.updated_at = now()


async def referral_action(session, actor: Actor, sealer: Sealer, case: Case, referral_id: uuid.UUID, action: str,
                          body: ReferralActionIn) -> Referral:
    stmt = select(Referral).where(Referral.id == referral_id, Referral.case_id == case.id).with_for_update()
    referral = (await session.exec(stmt)).first()
    if referral is None:
        raise NotFound("no such referral")
    if body.version is not None and body.version != referral.version:
        raise Conflict(f"the referral changed since you read it (version {referral.version}, you sent {body.version})",
                       current_version=referral.version, errors=[{"field": "version", "message": "stale version", "rule": "version.stale"}])
    _apply_referral(referral, sealer, action, reason=body.reason, successful=body.successful)
    session.add(referral)
    await session.flush()
    audit.record(session, actor, case, f"referral.{action}", referral_id=str(referral.id), status=referral.status)
    return referral


def referral_out(sealer: Sealer, referral: Referral) -> dict[str, Any]:
    out = referral.model_dump(exclude={"purpose_enc", "reason_enc"})
    out["purpose"] = sealer.open(referral.purpose_enc, referral.id, "purpose")
    out["reason"] = sealer.open(referral.reason_enc, referral.id, "reason")
    return out


async def referrals(session, case: Case) -> list[Referral]:
    stmt = select(Referral).where(Referral.case_id == case.id).order_by(col(Referral.created_at), col(Referral.id))
    return list((await session.exec(stmt)).all())
