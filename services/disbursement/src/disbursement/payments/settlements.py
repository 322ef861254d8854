"""Settling by hand a payment whose outcome is unknown, under four eyes.

A payment stays ``sent`` when its channel never reports (the bank's callbacks were lost and
it cannot be asked, say). One officer (``disbursement:prepare``) proposes its outcome, paid
or failed, with a reason; another (``disbursement:approve``, a different case-folded user)
approves, and only then is the outcome applied, exactly as a channel's report would be
(``service.apply_reports``): a late callback or status answer that arrives before or after
changes nothing twice. A proposal whose payment was settled meanwhile is ``superseded`` on
approval and changes nothing. The settlement row is the audit: who proposed, why, who decided,
when, and what applying it did.

Lock order as everywhere in this service: round → payment → settlement.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from pilar_kernel.auth import Principal
from pilar_kernel.problems import Conflict, Forbidden, NotFound

from .. import access
from ..access import acting_user, same_officer
from . import service
from .files import Report
from .models import PaymentAttempt, PaymentSettlement


def _now() -> datetime:
    return datetime.now(UTC)


async def propose(session: AsyncSession, principal: Principal, payment_id: uuid.UUID, outcome: str, reason: str,
                  bank_reference: str | None) -> PaymentSettlement:
    await service._lock_round_of_payment(session, principal, payment_id, "SHARE")
    payment = await service._lock_payment(session, payment_id)
    if payment.status != "sent":
        raise Conflict(f"only a payment whose outcome is unknown (sent) is settled by hand; this one is {payment.status}",
                       status_now=payment.status)
    open_one = (await session.exec(
        select(PaymentSettlement).where(PaymentSettlement.payment_id == payment_id, PaymentSettlement.status == "proposed"))).first()
    if open_one is not None:
        raise Conflict("a settlement of this payment is already proposed: approve or reject it first", settlement_id=str(open_one.id))
    settlement = PaymentSettlement(payment_id=payment_id, attempt=payment.attempt, outcome=outcome, reason=reason,
                                   bank_reference=bank_reference, proposed_by=acting_user(principal))
    session.add(settlement)
    try:
        await session.flush()
    except IntegrityError as exc:  # a proposal raced this one
        raise Conflict("a settlement of this payment is already proposed: approve or reject it first") from exc
    return settlement


async def _lock(session: AsyncSession, principal: Principal, payment_id: uuid.UUID, settlement_id: uuid.UUID) -> PaymentSettlement:
    await service._lock_round_of_payment(session, principal, payment_id, "SHARE")
    await service._lock_payment(session, payment_id)
    stmt = (select(PaymentSettlement).where(PaymentSettlement.id == settlement_id, PaymentSettlement.payment_id == payment_id)
            .with_for_update().execution_options(populate_existing=True))
    settlement = (await session.exec(stmt)).first()
    if settlement is None:
        raise NotFound("no such settlement of this payment")
    return settlement


async def approve(session: AsyncSession, principal: Principal, payment_id: uuid.UUID, settlement_id: uuid.UUID,
                  note: str | None) -> PaymentSettlement:
    settlement = await _lock(session, principal, payment_id, settlement_id)
    user = acting_user(principal)
    if settlement.status in ("applied", "superseded") and same_officer(settlement.decided_by, user):
        return settlement  # the same approval again
    if settlement.status != "proposed":
        raise Conflict(f"the settlement is {settlement.status} already", status_now=settlement.status)
    if same_officer(settlement.proposed_by, user):
        raise Forbidden("a settlement must be approved by another officer than the one who proposed it", rule="settlement.four_eyes")
    payment = await service._lock_payment(session, payment_id)
    if payment.status == "sent" and payment.attempt == settlement.attempt:
        attempt = (await session.exec(select(PaymentAttempt).where(PaymentAttempt.payment_id == payment_id,
                                                                   PaymentAttempt.attempt == settlement.attempt))).one()
        report = Report(payment_id, settlement.attempt, settlement.outcome, f"settled by hand: {settlement.reason}"[:500],
                        settlement.bank_reference)
        summary = await service.apply_reports(session, [report], channel=attempt.channel)
        settlement.status = "applied" if summary["applied"] else "superseded"
        settlement.result = f"payment {settlement.outcome}" if summary["applied"] else "the payment's state took no change"
    else:
        settlement.status = "superseded"
        settlement.result = f"nothing changed: the payment was meanwhile {payment.status} (attempt {payment.attempt})"
    settlement.decided_by, settlement.decided_at, settlement.decision_note = user, _now(), note
    session.add(settlement)
    await session.flush()
    return settlement


async def reject(session: AsyncSession, principal: Principal, payment_id: uuid.UUID, settlement_id: uuid.UUID, note: str) -> PaymentSettlement:
    """An approver turns a proposal down, or its proposer withdraws it."""
    settlement = await _lock(session, principal, payment_id, settlement_id)
    user = acting_user(principal)
    if settlement.status == "rejected" and same_officer(settlement.decided_by, user):
        return settlement
    if settlement.status != "proposed":
        raise Conflict(f"the settlement is {settlement.status} already", status_now=settlement.status)
    if not (principal.has(access.APPROVE) or (principal.has(access.PREPARE) and same_officer(settlement.proposed_by, user))):
        raise Forbidden("only an approver, or the officer who proposed it, may reject a settlement", required_scopes=[access.APPROVE])
    settlement.status, settlement.decided_by, settlement.decided_at, settlement.decision_note = "rejected", user, _now(), note
    session.add(settlement)
    await session.flush()
    return settlement


async def of_payment(session: AsyncSession, principal: Principal, payment_id: uuid.UUID) -> list[PaymentSettlement]:
    await service.get_payment(session, principal, payment_id)
    stmt = select(PaymentSettlement).where(PaymentSettlement.payment_id == payment_id).order_by(PaymentSettlement.proposed_at)
    return list((await session.exec(stmt)).all())


async def list_settlements(session: AsyncSession, status: str | None, limit: int) -> list[PaymentSettlement]:
    stmt = select(PaymentSettlement)
    if status:
        stmt = stmt.where(PaymentSettlement.status == status)
    return list((await session.exec(stmt.order_by(PaymentSettlement.proposed_at, PaymentSettlement.id).limit(limit))).all())
