"""Bank statements matched against payments, and the totals of a round.

A statement is a CSV with a header row: ``value_date,bank_reference,instruction_id,debit,credit,description``
(amounts in whole rupiah; exactly one of debit and credit on a line). A line is matched to a
payment by its instruction id (``<payment_id>:<attempt>``, as we sent it) or else by the
bank's reference. Then:

* a debit of a paid payment with the same amount is ``matched`` (the payment is reconciled);
  another amount is ``amount_mismatch``; a payment not paid here is ``status_mismatch``;
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


def _parse(content: str) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(content))
    missing = [c for c in ("debit", "credit") if c not in (reader.fieldnames or [])]
    if missing or not ({"instruction_id", "bank_reference"} & set(reader.fieldnames or [])):
        return [], [{"field": "header", "message": "need debit, credit and instruction_id or bank_reference columns", "rule": "statement.header"}]
    lines, errors = [], []

    def err(n: int, column: str, message: str) -> None:
        errors.append({"field": f"line {n}.{column}", "message": message, "rule": f"statement.{column}"})

    for n, row in enumerate(reader, start=2):
        if n > MAX_LINES + 1:
            errors.append({"field": "file", "message": f"at most {MAX_LINES} lines per statement", "rule": "statement.size"})
            break
        amounts = {}
        for column in ("debit", "credit"):
            raw = (row.get(column) or "").strip()
            try:
                amounts[column] = int(raw) if raw else 0
            except ValueError:
                err(n, column, "must be whole rupiah")
        if len(amounts) < 2:
            continue
        if (amounts["debit"] > 0) == (amounts["credit"] > 0) or min(amounts.values()) < 0:
            err(n, "debit", "exactly one of debit and credit must be a positive amount")
            continue
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
                "direction": "debit" if amounts["debit"] else "credit",
                "amount": amounts["debit"] or amounts["credit"],
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

    # Find the payments: by instruction id, else by the bank's reference.
    by_line: dict[int, uuid.UUID] = {}
    refs = {}
    for line in lines:
        if line["instruction_id"]:
            try:
                by_line[line["line_no"]] = parse_instruction_id(line["instruction_id"])[0]
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
    out_lines, reconciled, returns = [], [], []
    for line in lines:
        payment = rows.get(by_line.get(line["line_no"]))
        outcome, note, expected = _judge(line, payment, matched_before)
        if outcome == "matched":
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
    if reconciled:
        await session.execute(text("UPDATE payment SET reconciled_at = now() WHERE id = ANY(:ids) AND reconciled_at IS NULL"), {"ids": reconciled})
    for channel in ("bank", "post"):
        batch = [r for r in returns if rows[r.payment_id]["channel"] == channel]
        if batch:
            await payments.apply_reports(session, batch, channel=channel)
    return statement


def _judge(line: dict[str, Any], payment: dict[str, Any] | None, matched_before: set) -> tuple[str, str | None, int | None]:
    if payment is None:
        return "unmatched", "no payment has this instruction id or bank reference", None
    if (payment["id"], line["direction"]) in matched_before:
        return "duplicate", f"the payment's {line['direction']} is already matched", None
    if line["direction"] == "debit":
        if payment["status"] not in ("succeeded", "returned"):
            return "status_mismatch", f"the bank paid it, but here the payment is {payment['status']}", payment["amount"]
        if line["amount"] != payment["amount"]:
            return "amount_mismatch", f"paid Rp{line['amount']:,}, the payment is Rp{payment['amount']:,}", payment["amount"]
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
    after = decode_cursor(cursor)
    if after:
        stmt = stmt.where(StatementLine.line_no > int(after[0]))
    rows = list((await session.exec(stmt.order_by(StatementLine.line_no).limit(limit + 1))).all())
    return page(rows, limit, lambda line: [line.line_no])


async def round_totals(session: AsyncSession, round_id: uuid.UUID, region: str | None) -> dict[str, Any]:
    from ..rounds.service import get_round, snapshot_summary

    rnd = await get_round(session, round_id)
    planned = await snapshot_summary(session, rnd, region)
    totals = await payments.round_totals(session, rnd.id, region)
    return {
        "round_id": rnd.id,
        "status": rnd.status,
        "region": region,
        "ceiling": rnd.ceiling,
        "committed": rnd.committed,
        "remaining_budget": rnd.ceiling - rnd.committed,
        "planned_count": planned["payees"],
        "planned_amount": planned["planned_amount"],
        **totals,
        "net_paid_amount": totals["paid_amount"] - totals["returned_amount"],
    }
