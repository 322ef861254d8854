"""Bank statements matched against payments, and the totals of a round.

A statement is a CSV with a header row: ``value_date,bank_reference,instruction_id,debit,credit,description[,status]``
(amounts in whole rupiah; exactly one of debit and credit on a line, or neither on a line whose
optional ``status`` is ``failed``). A line is matched to a
payment by its instruction id (``<payment_id>:<attempt>``, as we sent it) or else by the
bank's reference. Then:

* a debit of a paid payment with the same amount is ``matched`` (the payment is reconciled);
  another amount is ``amount_mismatch``; a payment not paid here is ``status_mismatch``;
  except that a bank payment still ``sent`` here (its result never came) is settled as paid
  by the debit of its attempt (and reconciled);
* a line with ``status`` ``failed`` (no amount) is the bank saying an attempt was not paid: a
  payment still ``sent`` here is settled as failed (it can then be retried); a failure
  already recorded is ``matched``; one that contradicts a recorded success is ``status_mismatch``;
* a credit is money coming back: it matches a returned payment, or records the return of a
  paid one (``PaymentReturned``);
* a line that finds no payment is ``unmatched``; a second line for a payment already matched
  (in this or an earlier statement) is ``duplicate``.

Importing the same file again returns the first import's report.
"""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from collections import Counter
from datetime import date
from typing import Any

from sqlalchemy import insert, text
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from pilar_kernel.auth import Principal
from pilar_kernel.pagination import decode_cursor, page
from pilar_kernel.problems import NotFound, Problem

from ..access import acting_user
from ..payments import service as payments
from ..payments.files import Report, parse_instruction_id
from .models import LINE_OUTCOMES, Statement, StatementLine

MAX_LINES = 200_000


MAX_AMOUNT = 10**15  # whole rupiah; more is no bank line (and beyond what a bigint holds)
MAX_TEXT = {"bank_reference": 100, "instruction_id": 100, "description": 500, "status": 20}
LINE_STATUSES = ("", "paid", "succeeded", "returned", "failed")


def text_problem(value: str) -> str | None:
    """Why a text field of a file cannot be kept (PostgreSQL refuses NUL), or None."""
    if "\x00" in value:
        return "must not contain NUL characters"
    return None


def _parse(content: str) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(content))
    try:
        fieldnames = reader.fieldnames or []
    except csv.Error as exc:
        return [], [{"field": f"line {max(reader.reader.line_num, 1)}", "message": f"not CSV: {exc}", "rule": "statement.csv"}]
    if any(text_problem(name or "") for name in fieldnames):
        return [], [{"field": "header", "message": "must not contain NUL characters", "rule": "statement.header"}]
    missing = [c for c in ("debit", "credit") if c not in fieldnames]
    if missing or not ({"instruction_id", "bank_reference"} & set(fieldnames)):
        return [], [{"field": "header", "message": "need debit, credit and instruction_id or bank_reference columns", "rule": "statement.header"}]
    lines, errors = [], []

    def err(n: int, column: str, message: str) -> None:
        errors.append({"field": f"line {n}.{column}", "message": message, "rule": f"statement.{column}"})

    rows = iter(enumerate(reader, start=2))
    while True:
        try:
            n, row = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:
            # The underlying reader's count: DictReader's only moves on after a good row.
            errors.append({"field": f"line {reader.reader.line_num}", "message": f"not CSV: {exc}", "rule": "statement.csv"})
            break
        if n > MAX_LINES + 1:
            errors.append({"field": "file", "message": f"at most {MAX_LINES} lines per statement", "rule": "statement.size"})
            break
        bad_text = False
        for column, value in row.items():
            values = value if isinstance(value, list) else [value]  # extra fields land under None as a list
            for v in values:
                problem = text_problem(v or "")
                if problem:
                    err(n, column or "extra", problem)
                    bad_text = True
            if isinstance(value, str) and column in MAX_TEXT and len(value.strip()) > MAX_TEXT[column]:
                err(n, column, f"at most {MAX_TEXT[column]} characters")
                bad_text = True
        if bad_text:
            continue
        status = (row.get("status") or "").strip().lower()
        if status not in LINE_STATUSES:
            err(n, "status", "must be paid, returned or failed (or empty: the amounts say)")
            continue
        amounts = {}
        for column in ("debit", "credit"):
            raw = (row.get(column) or "").strip()
            if not raw:
                amounts[column] = 0
            elif raw.isascii() and raw.isdigit() and int(raw) <= MAX_AMOUNT:
                amounts[column] = int(raw)
            else:
                err(n, column, f"must be whole rupiah, at most {MAX_AMOUNT:,}")
        if len(amounts) < 2:
            continue
        if status == "failed":
            if amounts["debit"] or amounts["credit"]:
                err(n, "debit", "a failed instruction moves no money: leave debit and credit empty")
                continue
            direction, amount = "failure", 0
        elif (amounts["debit"] > 0) == (amounts["credit"] > 0):
            err(n, "debit", "exactly one of debit and credit must be a positive amount")
            continue
        else:
            direction, amount = ("debit", amounts["debit"]) if amounts["debit"] else ("credit", amounts["credit"])
        value_date = None
        if (row.get("value_date") or "").strip():
            try:
                value_date = date.fromisoformat(row["value_date"].strip())
            except ValueError:
                err(n, "value_date", "must be a date YYYY-MM-DD")
                continue
        lines.append(
            {
                "line_no": n,
                "value_date": value_date,
                "bank_reference": (row.get("bank_reference") or "").strip() or None,
                "instruction_id": (row.get("instruction_id") or "").strip() or None,
                "direction": direction,
                "amount": amount,
                "reason": (row.get("description") or "").strip() or None,
            }
        )
    return lines, errors


async def import_statement(session: AsyncSession, principal: Principal, content: str, account: str | None) -> Statement:
    digest = hashlib.sha256(content.encode()).hexdigest()
    existing = (await session.exec(select(Statement).where(Statement.digest == digest))).first()
    if existing is not None:
        return existing
    lines, errors = _parse(content)
    if errors or not lines:
        errors = errors or [{"field": "file", "message": "no statement lines", "rule": "statement.empty"}]
        raise Problem(f"the statement has {len(errors)} problem(s); nothing was imported", status=422, type="validation-error",
                      title="Invalid statement", errors=errors[:100])

    # Find the payments: by instruction id (which names the attempt), else by the bank's reference.
    by_line: dict[int, uuid.UUID] = {}
    attempt_of: dict[int, int] = {}
    refs = {}
    for line in lines:
        if line["instruction_id"]:
            try:
                by_line[line["line_no"]], attempt_of[line["line_no"]] = parse_instruction_id(line["instruction_id"])
                continue
            except ValueError:
                pass
        if line["bank_reference"]:
            refs[line["line_no"]] = line["bank_reference"]
    if refs:
        found = {
            r.reference: r.payment_id
            for r in await session.execute(
                text(
                    """
                    SELECT reference, payment_id FROM payment_attempt WHERE reference = ANY(:refs)
                    UNION SELECT bank_reference, id FROM payment WHERE bank_reference = ANY(:refs)
                    """
                ),
                {"refs": sorted(set(refs.values()))},
            )
        }
        by_line.update({n: found[ref] for n, ref in refs.items() if ref in found})
    ids = sorted(set(by_line.values()))
    rows = {
        r["id"]: dict(r)
        for r in (await session.execute(text("SELECT * FROM payment WHERE id = ANY(:ids) ORDER BY id FOR UPDATE"), {"ids": ids})).mappings()
    }
    matched_before = {
        (r.payment_id, r.direction)
        for r in await session.execute(
            text("SELECT payment_id, direction FROM bank_statement_line WHERE outcome = 'matched' AND payment_id = ANY(:ids)"), {"ids": ids}
        )
    }

    statement_id = uuid.uuid4()
    out_lines, reconciled, settles, returns = [], [], [], []
    for line in lines:
        reason = line.pop("reason")
        payment = rows.get(by_line.get(line["line_no"]))
        attempt = attempt_of.get(line["line_no"]) or (payment["attempt"] if payment else None)
        outcome, note, expected = _judge(line, payment, attempt, matched_before)
        if outcome == "matched" and payment["status"] == "sent" and payment["channel"] == "bank" and attempt == payment["attempt"]:
            # The bank's word on a payment whose result never came: it settles it.
            if line["direction"] == "debit":
                settles.append(Report(payment["id"], attempt, "succeeded", None, line["bank_reference"]))
                payment["status"], note = "succeeded", "settled as paid from the statement"
            else:
                settles.append(Report(payment["id"], attempt, "failed", f"failed per bank statement: {reason or 'no reason given'}"[:500]))
                payment["status"], note = "failed", "settled as failed from the statement: the payment can be retried"
        if outcome == "matched" and line["direction"] != "failure":
            matched_before.add((payment["id"], line["direction"]))
            if line["direction"] == "debit":
                reconciled.append(payment["id"])
            elif payment["status"] == "succeeded":
                returns.append(Report(payment["id"], payment["attempt"], "returned", "returned per bank statement", line["bank_reference"],
                                      None, line["amount"]))
                payment["status"] = "returned"
        out_lines.append(
            {**line, "statement_id": statement_id, "payment_id": payment["id"] if payment else None,
             "round_id": payment["round_id"] if payment else None, "expected_amount": expected, "outcome": outcome, "note": note}
        )

    counts = Counter(line["outcome"] for line in out_lines)
    statement = Statement(
        id=statement_id, digest=digest, account=account, imported_by=acting_user(principal), line_count=len(out_lines),
        **{outcome: counts[outcome] for outcome in LINE_OUTCOMES},
    )
    session.add(statement)
    await session.flush()
    await session.execute(insert(StatementLine.__table__), out_lines)
    # Settle first (a sent payment paid per the statement), then reconcile, then the returns it may also show.
    if settles:
        await payments.apply_reports(session, settles, channel="bank")
    if reconciled:
        await session.execute(text("UPDATE payment SET reconciled_at = now() WHERE id = ANY(:ids) AND reconciled_at IS NULL"), {"ids": reconciled})
    for channel in ("bank", "post"):
        batch = [r for r in returns if rows[r.payment_id]["channel"] == channel]
        if batch:
            await payments.apply_reports(session, batch, channel=channel)
    return statement


def _judge(line: dict[str, Any], payment: dict[str, Any] | None, attempt: int | None,
           matched_before: set) -> tuple[str, str | None, int | None]:
    if payment is None:
        return "unmatched", "no payment has this instruction id or bank reference", None
    # Only the bank's own attempt in flight is settled by the statement; an older one is judged against what is recorded.
    unknown_here = payment["status"] == "sent" and payment["channel"] == "bank" and attempt == payment["attempt"]
    if line["direction"] == "failure":
        if unknown_here:
            return "matched", None, None
        if attempt is not None and (attempt < payment["attempt"] or payment["status"] in ("failed", "created", "cancelled")):
            return "matched", "the failure is recorded here too", None
        return "status_mismatch", f"the bank reports attempt {attempt} failed, but here the payment is {payment['status']}", None
    if (payment["id"], line["direction"]) in matched_before:
        return "duplicate", f"the payment's {line['direction']} is already matched", None
    if line["direction"] == "debit":
        if line["amount"] != payment["amount"] and (unknown_here or payment["status"] in ("succeeded", "returned")):
            return "amount_mismatch", f"paid Rp{line['amount']:,}, the payment is Rp{payment['amount']:,}", payment["amount"]
        if unknown_here:
            return "matched", None, payment["amount"]
        if payment["status"] not in ("succeeded", "returned"):
            return "status_mismatch", f"the bank paid it, but here the payment is {payment['status']}", payment["amount"]
        return "matched", None, payment["amount"]
    if payment["status"] == "returned":
        expected = payment["returned_amount"]
        if line["amount"] != expected:
            return "amount_mismatch", f"returned Rp{line['amount']:,}, recorded return Rp{expected:,}", expected
        return "matched", None, expected
    if payment["status"] == "succeeded":
        if line["amount"] > payment["amount"]:
            return "amount_mismatch", f"returned Rp{line['amount']:,}, more than the Rp{payment['amount']:,} paid", payment["amount"]
        return "matched", "return recorded from the statement", line["amount"]
    return "status_mismatch", f"money came back for a payment that is {payment['status']} here", None


async def get_statement(session: AsyncSession, statement_id: uuid.UUID) -> Statement:
    statement = (await session.exec(select(Statement).where(Statement.id == statement_id))).first()
    if statement is None:
        raise NotFound("no such statement")
    return statement


async def list_lines(session: AsyncSession, statement_id: uuid.UUID, *, outcome: str | None, limit: int, cursor: str | None):
    await get_statement(session, statement_id)
    stmt = select(StatementLine).where(StatementLine.statement_id == statement_id)
    if outcome:
        stmt = stmt.where(StatementLine.outcome == outcome)
    after = decode_cursor(cursor, int)
    if after:
        stmt = stmt.where(StatementLine.line_no > after[0])
    rows = list((await session.exec(stmt.order_by(StatementLine.line_no).limit(limit + 1))).all())
    return page(rows, limit, lambda line: [line.line_no])


async def round_totals(session: AsyncSession, round_id: uuid.UUID, region: str | None) -> dict[str, Any]:
    from ..rounds.service import get_round, snapshot_summary

    rnd = await get_round(session, round_id)
    planned = await snapshot_summary(session, rnd, region)
    totals = await payments.round_totals(session, rnd.id, region)
    committed = totals.pop("committed_amount")
    # The ceiling is the round's, not a regency's: a regency office sees what its region
    # commits, and no round-wide ceiling or remaining budget (those are the province's).
    return {
        "round_id": rnd.id,
        "status": rnd.status,
        "region": region,
        "budget_scope": "region" if region else "round",
        "ceiling": None if region else rnd.ceiling,
        "committed": committed if region else rnd.committed,
        "remaining_budget": None if region else rnd.ceiling - rnd.committed,
        "planned_count": planned["payees"],
        "planned_amount": planned["planned_amount"],
        **totals,
        "net_paid_amount": totals["paid_amount"] - totals["returned_amount"],
    }
