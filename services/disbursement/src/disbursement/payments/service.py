"""Use cases of payments: handing them to a channel, applying what the channel reports,
retries, cancellations, post-office files and the totals of a round.

Each runs inside the caller's transaction and records its events in the outbox there. Lock
order, as everywhere in this service: round → payment; payments among themselves by id.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, text, tuple_
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from pilar_kernel.auth import Principal
from pilar_kernel.pagination import decode_cursor, page
from pilar_kernel.problems import Conflict, NotFound, Problem

from ..access import acting_user
from ..events import PaymentCancelled, PaymentFailed, PaymentReturned, PaymentSent, PaymentSucceeded, emit_many
from . import domain, files
from .files import Report
from .models import BankBatch, Payment, PaymentAttempt, PostExport

_payment = Payment.__table__
_attempt = PaymentAttempt.__table__


def _now() -> datetime:
    return datetime.now(UTC)


def _event(cls, row: dict[str, Any], **extra: Any):
    return cls(
        payment_id=row["id"], round_id=row["round_id"], programme_code=row["programme_code"], year=row["year"], stage=row["stage"],
        person_id=row["person_id"], nik_hash=row["nik_hash"], regency_code=row["regency_code"], amount=row["amount"],
        channel=row["channel"], attempt=row["attempt"], version=row["version"], occurred_at=row["updated_at"], **extra,
    )


class UnknownInstructions(Problem):
    status, type, title = 422, "unknown-payment", "Results for payments or attempts this service never sent"


# -- reading ------------------------------------------------------------------------------


async def get_payment(session: AsyncSession, principal: Principal, payment_id: uuid.UUID) -> Payment:
    payment = (await session.exec(select(Payment).where(Payment.id == payment_id))).first()
    if payment is None or not principal.may_access_region(payment.regency_code):
        raise NotFound("no such payment")
    return payment


async def attempts_of(session: AsyncSession, payment_id: uuid.UUID) -> list[PaymentAttempt]:
    stmt = select(PaymentAttempt).where(PaymentAttempt.payment_id == payment_id).order_by(PaymentAttempt.attempt)
    return list((await session.exec(stmt)).all())


async def list_payments(
    session: AsyncSession,
    principal: Principal,
    *,
    round_id: uuid.UUID | None,
    status: str | None,
    regency_code: str | None,
    person_id: uuid.UUID | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Payment], str | None]:
    stmt = select(Payment)
    if principal.region:
        if regency_code and not principal.may_access_region(regency_code):
            return [], None
        regency_code = regency_code or principal.region
    if regency_code:
        stmt = stmt.where(Payment.regency_code == regency_code)
    if round_id:
        stmt = stmt.where(Payment.round_id == round_id)
    if status:
        stmt = stmt.where(Payment.status == status)
    if person_id:
        stmt = stmt.where(Payment.person_id == person_id)
    after = decode_cursor(cursor, datetime, uuid.UUID)
    if after:
        stmt = stmt.where(tuple_(Payment.created_at, Payment.id) > (after[0], after[1]))
    rows = list((await session.exec(stmt.order_by(Payment.created_at, Payment.id).limit(limit + 1))).all())
    return page(rows, limit, lambda p: [p.created_at.isoformat(), str(p.id)])


async def round_totals(session: AsyncSession, round_id: uuid.UUID, region: str | None = None) -> dict[str, int]:
    where, params = "round_id = :r", {"r": round_id}
    if region:
        where += " AND (regency_code = :g OR regency_code LIKE :gp)"
        params.update(g=region, gp=region + ".%")
    row = (
        await session.execute(
            text(
                f"""
                SELECT count(*) AS payment_count,
                       count(*) FILTER (WHERE status = 'created') AS queued_count,
                       coalesce(sum(amount) FILTER (WHERE status = 'created'), 0) AS queued_amount,
                       count(*) FILTER (WHERE status = 'sent') AS sent_count,
                       coalesce(sum(amount) FILTER (WHERE status = 'sent'), 0) AS sent_amount,
                       count(*) FILTER (WHERE status IN ('succeeded', 'returned')) AS paid_count,
                       coalesce(sum(amount) FILTER (WHERE status IN ('succeeded', 'returned')), 0) AS paid_amount,
                       count(*) FILTER (WHERE status = 'failed') AS failed_count,
                       coalesce(sum(amount) FILTER (WHERE status = 'failed'), 0) AS failed_amount,
                       count(*) FILTER (WHERE status = 'returned') AS returned_count,
                       coalesce(sum(returned_amount) FILTER (WHERE status = 'returned'), 0) AS returned_amount,
                       count(*) FILTER (WHERE status = 'cancelled') AS cancelled_count,
                       coalesce(sum(amount) FILTER (WHERE status = 'cancelled'), 0) AS cancelled_amount,
                       count(*) FILTER (WHERE reconciled_at IS NOT NULL) AS reconciled_count,
                       count(*) FILTER (WHERE attempt > 1) AS retried_count,
                       coalesce(sum(amount) FILTER (WHERE status <> 'cancelled'), 0) AS committed_amount
                FROM payment WHERE {where}
                """
            ),
            params,
        )
    ).mappings().one()
    return {k: int(v) for k, v in row.items()}


# -- cancelling ---------------------------------------------------------------------------


async def _lock_rounds_of(session: AsyncSession, where: str, params: dict[str, Any]) -> None:
    await session.execute(
        text(f"SELECT id FROM payment_round WHERE id IN (SELECT round_id FROM payment WHERE {where}) ORDER BY id FOR UPDATE"), params
    )


async def cancel_where(session: AsyncSession, where: str, params: dict[str, Any], reason: str) -> int:
    """Cancel the payments matching ``where`` that were never paid (created or failed)."""
    scope = f"({where}) AND status IN ('created', 'failed')"
    await _lock_rounds_of(session, scope, params)
    rows = (
        await session.execute(
            text(
                f"""
                UPDATE payment SET status = 'cancelled', cancel_reason = :reason, version = version + 1, updated_at = now()
                WHERE {scope} RETURNING *
                """
            ),
            {**params, "reason": reason},
        )
    ).mappings().all()
    await emit_many(session, [_event(PaymentCancelled, dict(row), reason=reason) for row in rows])
    return len(rows)


async def cancel_unsent_of_person(session: AsyncSession, person_id: uuid.UUID, reason: str) -> int:
    """A death or merge: what has not gone out is cancelled; what is with a channel runs its course."""
    return await cancel_where(session, "person_id = :person", {"person": person_id}, reason)


async def _lock_round_of_payment(session: AsyncSession, principal: Principal, payment_id: uuid.UUID, mode: str) -> str:
    row = (
        await session.execute(
            text(f"SELECT r.status, p.regency_code FROM payment p JOIN payment_round r ON r.id = p.round_id WHERE p.id = :p FOR {mode} OF r"),
            {"p": payment_id},
        )
    ).first()
    if row is None or not principal.may_access_region(row.regency_code):
        raise NotFound("no such payment")
    return row.status


async def _lock_payment(session: AsyncSession, payment_id: uuid.UUID) -> Payment:
    stmt = select(Payment).where(Payment.id == payment_id).with_for_update().execution_options(populate_existing=True)
    return (await session.exec(stmt)).one()


async def cancel(session: AsyncSession, principal: Principal, payment_id: uuid.UUID, reason: str) -> Payment:
    await _lock_round_of_payment(session, principal, payment_id, "UPDATE")
    payment = await _lock_payment(session, payment_id)
    try:
        if not domain.cancel_target(payment.status):
            return payment
    except domain.IllegalPaymentTransition as exc:
        raise Conflict(str(exc), status_now=payment.status) from exc
    await cancel_where(session, "id = :id", {"id": payment_id}, reason)
    await session.refresh(payment)
    return payment


# -- retries and re-routing ---------------------------------------------------------------


async def retry(session: AsyncSession, principal: Principal, payment_id: uuid.UUID, channel: str | None) -> Payment:
    """Queue a failed payment again (same payment, next attempt), on another channel if asked.

    The round is share-locked so that a retry and the round's closing cannot interleave.
    """
    round_status = await _lock_round_of_payment(session, principal, payment_id, "SHARE")
    payment = await _lock_payment(session, payment_id)
    try:
        if not domain.retry_target(payment.status):
            return payment  # already queued or with the channel: a repeat
    except domain.IllegalPaymentTransition as exc:
        raise Conflict(str(exc), status_now=payment.status) from exc
    if round_status != "disbursing":
        raise Conflict(f"the round is {round_status}: its payments can no longer be retried")
    payment.status = "created"
    payment.channel = channel or payment.channel
    payment.failure_reason = None
    payment.version += 1
    payment.updated_at = _now()
    session.add(payment)
    await session.flush()
    return payment


async def retry_failed(session: AsyncSession, round_id: uuid.UUID, channel: str | None, reasons: Sequence[str] | None) -> int:
    """Queue every failed payment of a round again (optionally only some failure reasons)."""
    status = (await session.execute(text("SELECT status FROM payment_round WHERE id = :r FOR SHARE"), {"r": round_id})).scalar_one_or_none()
    if status is None:
        raise NotFound("no such round")
    if status != "disbursing":
        raise Conflict(f"the round is {status}: its payments can no longer be retried")
    where, params = "round_id = :r AND status = 'failed'", {"r": round_id, "channel": channel}
    if reasons:
        where += " AND failure_reason = ANY(:reasons)"
        params["reasons"] = list(reasons)
    result = await session.execute(
        text(
            f"""
            UPDATE payment SET status = 'created', channel = coalesce(:channel, channel), failure_reason = NULL,
                               version = version + 1, updated_at = now()
            WHERE {where}
            """
        ),
        params,
    )
    return result.rowcount


# -- handing payments to a channel --------------------------------------------------------

_CLAIM = """
WITH picked AS (
    SELECT id FROM payment
    WHERE status = 'created' AND channel = :channel AND id > :after {scope}
    ORDER BY channel, id
    LIMIT :n
    FOR UPDATE SKIP LOCKED
)
UPDATE payment p
SET status = 'sent', attempt = p.attempt + 1, batch_id = :b, sent_at = now(), updated_at = now(), version = p.version + 1
WHERE p.id = ANY(ARRAY(SELECT id FROM picked))  -- primary-key lookups, never a scan of the table
RETURNING p.*
"""


_START = uuid.UUID(int=0)


async def _hand_over(session: AsyncSession, channel: str, batch_id: uuid.UUID, limit: int, *, after: uuid.UUID | None = None,
                     scope: str = "", params: dict | None = None) -> list[dict]:
    rows = [
        dict(r)
        for r in (
            await session.execute(
                text(_CLAIM.format(scope=scope)), {"channel": channel, "n": limit, "b": batch_id, "after": after or _START, **(params or {})}
            )
        ).mappings()
    ]
    if rows:
        await session.execute(
            insert(_attempt),
            [{"payment_id": r["id"], "attempt": r["attempt"], "channel": channel, "batch_id": batch_id, "sent_at": r["sent_at"]} for r in rows],
        )
        await emit_many(session, [_event(PaymentSent, r) for r in rows])
    return rows


def instruction(row: dict[str, Any]) -> dict[str, Any]:
    """One payment instruction as the bank receives it (the bank finds the account by nik_hash)."""
    return {
        "instruction_id": files.instruction_id(row["id"], row["attempt"]),
        "payment_id": str(row["id"]),
        "attempt": row["attempt"],
        "amount": row["amount"],
        "currency": "IDR",
        "beneficiary": {"person_id": str(row["person_id"]), "nik_hash": row["nik_hash"]},
        "remark": f"{row['programme_code']} {row['year']} tahap {row['stage']}",
    }


async def claim_bank_batch(session: AsyncSession, limit: int, after: uuid.UUID | None = None) -> tuple[uuid.UUID, list[dict[str, Any]]] | None:
    """Take up to ``limit`` queued bank payments (with ids above ``after``) into a new batch:
    they are sent as of this commit.

    Claimed rows leave dead entries at the front of the queue index until vacuum; starting
    after the last id claimed keeps a long round from rescanning them batch after batch.
    """
    batch_id = uuid.uuid4()
    rows = await _hand_over(session, "bank", batch_id, limit, after=after)
    if not rows:
        return None
    await session.execute(
        insert(BankBatch.__table__).values(id=batch_id, status="pending", instruction_count=len(rows), total_amount=sum(r["amount"] for r in rows))
    )
    return batch_id, [instruction(r) for r in rows]


async def batch_instructions(session: AsyncSession, batch_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(
            """
            SELECT p.id, a.attempt, p.amount, p.person_id, p.nik_hash, p.programme_code, p.year, p.stage
            FROM payment_attempt a JOIN payment p ON p.id = a.payment_id
            WHERE a.batch_id = :b ORDER BY p.id
            """
        ),
        {"b": batch_id},
    )
    return [instruction(dict(r)) for r in rows.mappings()]


async def batches_to_repost(session: AsyncSession, older_than_s: float, limit: int = 20) -> list[uuid.UUID]:
    rows = await session.execute(
        text(
            """
            SELECT id FROM bank_batch
            WHERE status = 'pending' AND coalesce(last_posted_at, created_at) < now() - make_interval(secs => :s)
            ORDER BY created_at LIMIT :n
            """
        ),
        {"s": older_than_s, "n": limit},
    )
    return list(rows.scalars())


async def record_post(session: AsyncSession, batch_id: uuid.UUID, *, accepted: bool, error: str | None) -> None:
    await session.execute(
        text(
            """
            UPDATE bank_batch SET post_attempts = post_attempts + 1, last_posted_at = now(), last_error = :e,
                   status = CASE WHEN :ok AND status = 'pending' THEN 'accepted' ELSE status END,
                   accepted_at = CASE WHEN :ok AND accepted_at IS NULL THEN now() ELSE accepted_at END
            WHERE id = :b
            """
        ),
        {"b": batch_id, "ok": accepted, "e": error},
    )


async def reject_batch(session: AsyncSession, batch_id: uuid.UUID, reason: str) -> dict[str, int]:
    """The bank refused a whole batch: every attempt in it failed, with the bank's reason."""
    await session.execute(text("UPDATE bank_batch SET status = 'rejected', last_error = :e WHERE id = :b"), {"b": batch_id, "e": reason})
    rows = await session.execute(text("SELECT payment_id, attempt FROM payment_attempt WHERE batch_id = :b"), {"b": batch_id})
    reports = [Report(r.payment_id, r.attempt, "failed", f"batch rejected by the bank: {reason}"[:500]) for r in rows]
    return await apply_reports(session, reports, channel="bank")


# -- payments whose result never came -----------------------------------------------------


async def claim_status_checks(session: AsyncSession, after_s: float, every_s: float, limit: int) -> list[tuple[uuid.UUID, int]]:
    """The bank payments sent over ``after_s`` ago with no result, not asked about in the last
    ``every_s``: marked as asked now (another process skips them) and returned as (payment, attempt)."""
    rows = await session.execute(
        text(
            """
            WITH due AS (
                SELECT a.payment_id, a.attempt
                FROM payment p JOIN payment_attempt a ON a.payment_id = p.id AND a.attempt = p.attempt
                WHERE p.status = 'sent' AND p.channel = 'bank' AND a.channel = 'bank'
                  AND p.sent_at < now() - make_interval(secs => :after)
                  AND (a.status_checked_at IS NULL OR a.status_checked_at < now() - make_interval(secs => :every))
                ORDER BY p.sent_at, p.id
                LIMIT :n
                FOR UPDATE OF a SKIP LOCKED
            )
            UPDATE payment_attempt a SET status_checks = a.status_checks + 1, status_checked_at = now()
            FROM due WHERE a.payment_id = due.payment_id AND a.attempt = due.attempt
            RETURNING a.payment_id, a.attempt
            """
        ),
        {"after": after_s, "every": every_s, "n": limit},
    )
    return [(r.payment_id, r.attempt) for r in rows]


async def count_unknown_outcomes(session: AsyncSession, after_s: float) -> int:
    """Bank payments sent over ``after_s`` ago that still have no result (a gauge for the operators)."""
    return (
        await session.execute(
            text("SELECT count(*) FROM payment WHERE status = 'sent' AND channel = 'bank' AND sent_at < now() - make_interval(secs => :s)"),
            {"s": after_s},
        )
    ).scalar_one()


async def apply_status_answers(session: AsyncSession, due: Sequence[tuple[uuid.UUID, int]], answers: dict[str, Any]) -> dict[str, int]:
    """Apply what the bank said about each attempt: a result settles it (as a callback would);
    ``pending`` or ``unknown`` leave it sent, noted on the attempt for the officers."""
    now = _now().isoformat(timespec="seconds")
    reports, notes = [], []
    for payment_id, attempt in due:
        answer = answers.get(files.instruction_id(payment_id, attempt))
        if answer is not None and answer.status in domain.OUTCOMES:
            reports.append(Report(payment_id, attempt, answer.status, answer.reason, answer.reference, answer.at, answer.returned_amount))
            note = f"{now} the bank answered {answer.status}"
        elif answer is not None and answer.status == "pending":
            note = f"{now} the bank is still processing it"
        else:
            note = f"{now} the bank does not know this instruction: settle it by hand if it was never paid"
        notes.append({"p": payment_id, "a": attempt, "note": note})
    await session.execute(text("UPDATE payment_attempt SET status_note = :note WHERE payment_id = :p AND attempt = :a"), notes)
    summary = await apply_reports(session, reports, channel="bank") if reports else {"applied": 0, "duplicates": 0, "stale": 0, "anomalies": 0}
    return {**summary, "answered": len(reports), "waiting": len(due) - len(reports)}


# -- what the channels report -------------------------------------------------------------


async def apply_reports(session: AsyncSession, reports: Sequence[Report], *, channel: str) -> dict[str, int]:
    """Apply a channel's reports in the order given; all or nothing.

    A report about a payment or attempt this service never sent through ``channel`` refuses
    the whole lot (422 naming each). Otherwise every report is judged against the payment's
    state as it stands after the reports before it: duplicates, stale and contradicting
    reports change nothing (contradictions are kept on the attempt for people to review).
    """
    ids = sorted({r.payment_id for r in reports})
    rows = {
        row["id"]: dict(row)
        for row in (await session.execute(text("SELECT * FROM payment WHERE id = ANY(:ids) ORDER BY id FOR UPDATE"), {"ids": ids})).mappings()
    }
    sent = {
        (r.payment_id, r.attempt): r.channel
        for r in await session.execute(
            text(
                """
                SELECT a.payment_id, a.attempt, a.channel FROM payment_attempt a
                WHERE a.payment_id = ANY(:ids)
                """
            ),
            {"ids": ids},
        )
    }
    errors = []
    for i, report in enumerate(reports):
        if report.payment_id not in rows:
            errors.append({"field": f"results[{i}].payment_id", "message": f"no payment {report.payment_id}", "rule": "payment.unknown"})
        elif sent.get((report.payment_id, report.attempt)) != channel:
            errors.append({"field": f"results[{i}].attempt", "message": f"attempt {report.attempt} of payment {report.payment_id} was never sent through the {channel}",
                           "rule": "payment.unknown_attempt"})
        elif report.outcome == "returned" and report.returned_amount is not None and not 1 <= report.returned_amount <= rows[report.payment_id]["amount"]:
            errors.append({"field": f"results[{i}].returned_amount", "message": "must be between 1 and the amount paid", "rule": "payment.returned_amount"})
    if errors:
        raise UnknownInstructions(f"{len(errors)} result(s) refer to nothing this service sent; none was applied", errors=errors[:100])

    now = _now()
    counts: Counter[str] = Counter()
    changed: dict[uuid.UUID, dict[str, Any]] = {}
    attempt_changes: dict[tuple[uuid.UUID, int], dict[str, Any]] = {}
    anomalies: list[dict[str, Any]] = []
    events = []
    for report in reports:
        row = rows[report.payment_id]
        verdict = domain.judge(row["status"], row["attempt"], report.attempt, report.outcome)
        counts[verdict.kind] += 1
        if verdict.kind == "anomaly":
            anomalies.append({"p": report.payment_id, "a": report.attempt, "note": f"{now.isoformat()} {verdict.note}"})
            continue
        if verdict.kind != "apply":
            continue
        at = report.at or now
        for step in verdict.steps:
            row["status"], row["version"], row["updated_at"] = step, row["version"] + 1, now
            if step == "succeeded":
                row["settled_at"], row["bank_reference"] = at, report.reference or row["bank_reference"]
                events.append(_event(PaymentSucceeded, row))
            elif step == "failed":
                row["settled_at"], row["failure_reason"] = at, report.reason or "no reason given"
                events.append(_event(PaymentFailed, row, reason=row["failure_reason"]))
            else:
                row["returned_at"], row["returned_amount"] = at, report.returned_amount or row["amount"]
                row["return_reason"] = report.reason or "returned"
                events.append(_event(PaymentReturned, row, reason=row["return_reason"], returned_amount=row["returned_amount"]))
        changed[report.payment_id] = row
        attempt_changes[(report.payment_id, report.attempt)] = {
            "payment_id": report.payment_id, "attempt": report.attempt, "outcome": row["status"], "reason": report.reason,
            "reference": report.reference, "reported_at": at,
        }

    if changed:
        await _write_payments(session, list(changed.values()))
        await _write_attempts(session, list(attempt_changes.values()))
    if anomalies:
        await session.execute(
            text("UPDATE payment_attempt SET anomaly = coalesce(anomaly || '; ', '') || :note WHERE payment_id = :p AND attempt = :a"), anomalies
        )
    await emit_many(session, events)
    return {"applied": counts["apply"], "duplicates": counts["duplicate"], "stale": counts["stale"], "anomalies": counts["anomaly"]}


# One statement per table however many reports: the ceiling trigger then runs once, not per row.
_PAYMENT_COLUMNS = {
    "id": "uuid", "status": "text", "version": "int", "updated_at": "timestamptz", "settled_at": "timestamptz", "bank_reference": "text",
    "failure_reason": "text", "returned_at": "timestamptz", "returned_amount": "bigint", "return_reason": "text",
}
_ATTEMPT_COLUMNS = {"payment_id": "uuid", "attempt": "int", "outcome": "text", "reason": "text", "reference": "text", "reported_at": "timestamptz"}


def _unnest(columns: dict[str, str]) -> str:
    arrays = ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in columns.items())
    return f"unnest({arrays}) AS v({', '.join(columns)})"


async def _write_payments(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    sets = ", ".join(f"{c} = v.{c}" for c in _PAYMENT_COLUMNS if c != "id")
    await session.execute(
        text(f"UPDATE payment p SET {sets} FROM {_unnest(_PAYMENT_COLUMNS)} WHERE p.id = v.id"),
        {c: [row[c] for row in rows] for c in _PAYMENT_COLUMNS},
    )


async def _write_attempts(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    sets = ", ".join(f"{c} = v.{c}" for c in _ATTEMPT_COLUMNS if c not in ("payment_id", "attempt"))
    await session.execute(
        text(f"UPDATE payment_attempt a SET {sets} FROM {_unnest(_ATTEMPT_COLUMNS)} WHERE a.payment_id = v.payment_id AND a.attempt = v.attempt"),
        {c: [row[c] for row in rows] for c in _ATTEMPT_COLUMNS},
    )


# -- the post office's files --------------------------------------------------------------


async def create_post_export(session: AsyncSession, principal: Principal, round_id: uuid.UUID) -> PostExport:
    """Put every payment of the round queued for the post office into a new payment file."""
    status = (await session.execute(text("SELECT status FROM payment_round WHERE id = :r FOR SHARE"), {"r": round_id})).scalar_one_or_none()
    if status is None:
        raise NotFound("no such round")
    if status != "disbursing":
        raise Conflict(f"the round is {status}: payment files are made while it is disbursing")
    export_id = uuid.uuid4()
    rows = await _hand_over(session, "post", export_id, files.MAX_LINES, scope="AND round_id = :r", params={"r": round_id})
    if not rows:
        raise Conflict("no payment of this round is waiting for the post office")
    export = PostExport(
        id=export_id, round_id=round_id, instruction_count=len(rows), total_amount=sum(r["amount"] for r in rows), created_by=acting_user(principal)
    )
    session.add(export)
    await session.flush()
    return export


async def get_post_export(session: AsyncSession, export_id: uuid.UUID) -> PostExport:
    export = (await session.exec(select(PostExport).where(PostExport.id == export_id))).first()
    if export is None:
        raise NotFound("no such payment file")
    return export


async def post_export_file(session: AsyncSession, export_id: uuid.UUID) -> str:
    await get_post_export(session, export_id)
    rows = await session.execute(
        text(
            """
            SELECT p.id AS payment_id, a.attempt, p.person_id, p.nik_hash, p.regency_code, p.programme_code, p.year, p.stage, p.amount
            FROM payment_attempt a JOIN payment p ON p.id = a.payment_id
            WHERE a.batch_id = :x ORDER BY p.regency_code, p.id
            """
        ),
        {"x": export_id},
    )
    return files.write_export(rows.mappings())


async def import_post_results(session: AsyncSession, export_id: uuid.UUID, content: str) -> dict[str, int]:
    export = (await session.exec(select(PostExport).where(PostExport.id == export_id).with_for_update())).first()
    if export is None:
        raise NotFound("no such payment file")
    reports, errors = files.parse_results(content)
    if not errors and reports:
        in_file = {
            (r.payment_id, r.attempt)
            for r in await session.execute(text("SELECT payment_id, attempt FROM payment_attempt WHERE batch_id = :x"), {"x": export_id})
        }
        errors = [
            {"field": f"line {n}.instruction_id", "message": "not an instruction of this payment file", "rule": "result_file.instruction"}
            for n, r in enumerate(reports, start=2)
            if (r.payment_id, r.attempt) not in in_file
        ]
    if errors or not reports:
        errors = errors or [{"field": "file", "message": "no result lines", "rule": "result_file.empty"}]
        raise Problem(f"the result file has {len(errors)} problem(s); nothing was applied", status=422, type="validation-error",
                      title="Invalid result file", errors=errors[:100])
    summary = await apply_reports(session, reports, channel="post")
    export.results_imported += summary["applied"]
    export.last_import_at = _now()
    session.add(export)
    await session.flush()
    return {**summary, "lines": len(reports)}


def payment_out(payment: Payment, attempts: list[PaymentAttempt] | None = None) -> dict[str, Any]:
    out = payment.model_dump(exclude={"batch_id"})
    if attempts is not None:
        out["attempts"] = [a.model_dump(exclude={"payment_id"}) for a in attempts]
    return out
