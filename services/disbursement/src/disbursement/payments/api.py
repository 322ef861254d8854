"""HTTP routes of payments, the bank's callback and the post office's files."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import ValidationError
from sqlalchemy import text

from pilar_kernel.auth import Principal, require_scopes
from pilar_kernel.db import SessionDep
from pilar_kernel.idempotency import idempotent
from pilar_kernel.problems import Problem

from .. import access
from ..rounds.api import wake_sender
from . import files, service, settlements, signing
from .files import Report
from .schemas import (
    BankCallbackIn,
    CancelIn,
    PaymentOut,
    PaymentPage,
    PaymentStatus,
    PostExportOut,
    ReportSummary,
    RetryFailedIn,
    RetryIn,
    SettlementApproveIn,
    SettlementIn,
    SettlementOut,
    SettlementRejectIn,
    SettlementStatus,
)

router = APIRouter(prefix="/v1", tags=["payments"])

Reader = Annotated[Principal, require_scopes(access.READ)]
Preparer = Annotated[Principal, access.provincial(access.PREPARE)]
Bank = Annotated[Principal, require_scopes(access.BANK_CALLBACK)]
Approver = Annotated[Principal, access.provincial(access.APPROVE)]
Officer = Annotated[Principal, access.provincial()]  # the rule (approver, or the proposer) is checked in the service
ProvinceReader = Annotated[Principal, access.provincial(access.READ)]

_STATES = "created → sent → succeeded | failed; failed → created (retry: same payment, next attempt) | cancelled; succeeded → returned"


# -- payments -----------------------------------------------------------------------------


@router.get("/payments", response_model=PaymentPage, summary="List payments (a regency office sees its own region's)")
async def list_payments(
    session: SessionDep,
    principal: Reader,
    round_id: uuid.UUID | None = None,
    status: PaymentStatus | None = None,
    regency_code: str | None = Query(default=None, pattern=r"^\d{2}\.\d{2}$"),
    person_id: uuid.UUID | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
    cursor: str | None = None,
):
    items, next_cursor = await service.list_payments(session, principal, round_id=round_id, status=status, regency_code=regency_code,
                                                     person_id=person_id, limit=limit, cursor=cursor)
    return {"items": [service.payment_out(p) for p in items], "next_cursor": next_cursor}


@router.get("/payments/{payment_id}", response_model=PaymentOut, summary="One payment with its attempts", description=_STATES)
async def get_payment(payment_id: uuid.UUID, session: SessionDep, principal: Reader):
    payment = await service.get_payment(session, principal, payment_id)
    return service.payment_out(payment, await service.attempts_of(session, payment_id))


@router.post("/payments/{payment_id}/retry", response_model=PaymentOut, description=_STATES,
             summary="Send a failed payment again (same payment, next attempt), or re-route it to another channel")
async def retry(payment_id: uuid.UUID, request: Request, tasks: BackgroundTasks, session: SessionDep, principal: Preparer,
                body: RetryIn | None = None):
    async def produce():
        return service.payment_out(await service.retry(session, principal, payment_id, body.channel if body else None))

    wake_sender(request, tasks)
    return await idempotent(request, session, principal, produce, status_code=200)


@router.post("/payments/{payment_id}/cancel", response_model=PaymentOut, description=_STATES,
             summary="Give up a payment that was never paid (created or failed); its budget is freed")
async def cancel(payment_id: uuid.UUID, body: CancelIn, request: Request, session: SessionDep, principal: Preparer):
    async def produce():
        return service.payment_out(await service.cancel(session, principal, payment_id, body.reason))

    return await idempotent(request, session, principal, produce, status_code=200)


@router.post("/rounds/{round_id}/retry-failed", summary="Send every failed payment of a round again (optionally re-routed)")
async def retry_failed(round_id: uuid.UUID, request: Request, tasks: BackgroundTasks, session: SessionDep, principal: Preparer,
                       body: RetryFailedIn | None = None) -> dict:
    body = body or RetryFailedIn()

    async def produce():
        return {"queued": await service.retry_failed(session, round_id, body.channel, body.reasons)}

    wake_sender(request, tasks)
    return await idempotent(request, session, principal, produce, status_code=200)


# -- settling by hand a payment whose outcome is unknown (four eyes) ----------------------

_SETTLEMENT = ("A payment left `sent` (its result never came and the bank could not tell) is settled by hand: an officer "
               "(disbursement:prepare) proposes paid or failed with a reason; another officer (disbursement:approve, not the "
               "proposer in any letter case) approves, and the outcome is applied as a channel's report would be. A proposal "
               "whose payment was settled meanwhile (a late callback, the status query, the statement) is `superseded` and changes nothing.")


@router.post("/payments/{payment_id}/settlements", status_code=201, response_model=SettlementOut, description=_SETTLEMENT,
             summary="Propose the outcome of a payment whose result never came (paid or failed), with a reason")
async def propose_settlement(payment_id: uuid.UUID, body: SettlementIn, request: Request, session: SessionDep, principal: Preparer):
    async def produce():
        settlement = await settlements.propose(session, principal, payment_id, body.outcome, body.reason, body.bank_reference)
        return SettlementOut.model_validate(settlement).model_dump()

    return await idempotent(request, session, principal, produce)


@router.get("/payments/{payment_id}/settlements", response_model=list[SettlementOut], description=_SETTLEMENT,
            summary="The settlements proposed for a payment, and what became of them")
async def payment_settlements(payment_id: uuid.UUID, session: SessionDep, principal: Reader):
    return [SettlementOut.model_validate(s) for s in await settlements.of_payment(session, principal, payment_id)]


@router.post("/payments/{payment_id}/settlements/{settlement_id}/approve", response_model=SettlementOut, description=_SETTLEMENT,
             summary="Approve a proposed settlement (another officer than the proposer); the outcome is applied")
async def approve_settlement(payment_id: uuid.UUID, settlement_id: uuid.UUID, request: Request, session: SessionDep, principal: Approver, body: SettlementApproveIn | None = None):
    async def produce():
        settlement = await settlements.approve(session, principal, payment_id, settlement_id, body.note if body else None)
        return SettlementOut.model_validate(settlement).model_dump()

    return await idempotent(request, session, principal, produce, status_code=200)


@router.post("/payments/{payment_id}/settlements/{settlement_id}/reject", response_model=SettlementOut, description=_SETTLEMENT,
             summary="Turn down a proposed settlement (an approver), or withdraw it (its proposer)")
async def reject_settlement(payment_id: uuid.UUID, settlement_id: uuid.UUID, body: SettlementRejectIn, request: Request,
                            session: SessionDep, principal: Officer):
    async def produce():
        settlement = await settlements.reject(session, principal, payment_id, settlement_id, body.note)
        return SettlementOut.model_validate(settlement).model_dump()

    return await idempotent(request, session, principal, produce, status_code=200)


@router.get("/payment-settlements", response_model=list[SettlementOut], description=_SETTLEMENT,
            summary="Settlements by hand across payments (status=proposed: the approvers' queue)")
async def list_settlements(session: SessionDep, principal: ProvinceReader, status: SettlementStatus | None = None,
                           limit: int = Query(default=100, ge=1, le=1000)):
    return [SettlementOut.model_validate(s) for s in await settlements.list_settlements(session, status, limit)]


# -- the bank -----------------------------------------------------------------------------


@router.post("/bank/callbacks", response_model=ReportSummary,
             summary="The bank reports payment results (bank token + HMAC-SHA256 signature over timestamp and raw body)",
             description="Headers: `X-Signature-Timestamp: <unix seconds>`, `X-Signature: sha256=<hex HMAC of \"<timestamp>.\" + body>`. "
                         "A bad signature or a timestamp outside the replay window is a 401; a result for a payment or attempt "
                         "never sent to the bank refuses the whole callback (422). Repeats and late reports change nothing.")
async def bank_callback(request: Request, session: SessionDep, principal: Bank):
    settings = request.app.state.settings
    raw = await request.body()
    ts = signing.verify(settings.bank_hmac_secret, raw, request.headers, tolerance_s=settings.bank_callback_tolerance_s)
    try:
        body = BankCallbackIn.model_validate_json(raw)
    except ValidationError as exc:
        errors = [{"field": "body." + ".".join(str(p) for p in e["loc"]), "message": e["msg"], "rule": e["type"]}
                  for e in exc.errors(include_url=False)]
        raise Problem("invalid callback body", status=422, type="validation-error", title="Invalid input", errors=errors[:100]) from exc

    async def produce():
        first = await session.execute(
            text(
                """
                INSERT INTO bank_callback (digest, bank_timestamp, batch_id, result_count, applied, ignored)
                VALUES (:d, :ts, :b, :n, 0, 0) ON CONFLICT (digest) DO NOTHING RETURNING id
                """
            ),
            {"d": signing.digest(request.headers), "ts": ts, "b": body.batch_id, "n": len(body.results)},
        )
        callback_id = first.scalar_one_or_none()
        if callback_id is None:  # this very message was delivered before
            return ReportSummary(applied=0, duplicates=len(body.results), stale=0, anomalies=0, duplicate_delivery=True).model_dump()
        reports = [Report(r.payment_id, r.attempt, r.status, r.reason, r.reference, r.at, r.returned_amount) for r in body.results]
        summary = await service.apply_reports(session, reports, channel="bank")
        await session.execute(
            text("UPDATE bank_callback SET applied = :a, ignored = :i WHERE id = :id"),
            {"a": summary["applied"], "i": len(reports) - summary["applied"], "id": callback_id},
        )
        return ReportSummary(**summary).model_dump()

    return await idempotent(request, session, principal, produce, status_code=200)


# -- the post office ----------------------------------------------------------------------


@router.post("/rounds/{round_id}/post-exports", status_code=201, response_model=PostExportOut,
             summary="Make the post office's payment file of every payment queued for it; they count as sent")
async def create_post_export(round_id: uuid.UUID, request: Request, session: SessionDep, principal: Preparer):
    async def produce():
        return PostExportOut.model_validate(await service.create_post_export(session, principal, round_id)).model_dump()

    return await idempotent(request, session, principal, produce)


@router.get("/post-exports/{export_id}", response_model=PostExportOut, summary="A payment file's figures")
async def get_post_export(export_id: uuid.UUID, session: SessionDep, principal: Preparer):
    return PostExportOut.model_validate(await service.get_post_export(session, export_id))


class CSVResponse(PlainTextResponse):
    media_type = "text/csv"


@router.get("/post-exports/{export_id}/file", response_class=CSVResponse, summary="Download the payment file (CSV)")
async def post_export_file(export_id: uuid.UUID, session: SessionDep, principal: Preparer):
    content = await service.post_export_file(session, export_id)
    return CSVResponse(content, headers={"Content-Disposition": f'attachment; filename="pos-{export_id}.csv"'})


@router.post("/post-exports/{export_id}/results", response_model=ReportSummary,
             summary="Import the post office's result file (CSV: instruction_id,status,reason,reference,reported_at,returned_amount)",
             openapi_extra={"requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}, "required": True}})
async def import_post_results(export_id: uuid.UUID, request: Request, session: SessionDep, principal: Preparer):
    content, errors = files.decode(await request.body(), "result file", "result_file")
    if errors:
        raise Problem(errors[0]["message"], status=422, type="validation-error", title="Invalid result file", errors=errors)

    async def produce():
        return ReportSummary(**await service.import_post_results(session, export_id, content)).model_dump()

    return await idempotent(request, session, principal, produce, status_code=200)
