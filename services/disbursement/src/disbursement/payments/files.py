"""The post office's files, with no I/O: the payment file we hand over and the result file it returns.

Both are UTF-8 CSV with a header row. Amounts are whole rupiah. The payment file names each
instruction ``<payment_id>:<attempt>``, which the result file repeats, so a result always
speaks about one attempt of one payment.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

EXPORT_COLUMNS = ("instruction_id", "payment_id", "attempt", "person_id", "nik_hash", "regency_code", "programme_code", "year", "stage", "amount")
RESULT_COLUMNS = ("instruction_id", "status", "reason", "reference", "reported_at", "returned_amount")
RESULT_STATUSES = ("succeeded", "failed", "returned")
MAX_LINES = 200_000


@dataclass(frozen=True)
class Report:
    """A channel's word on one attempt of one payment."""

    payment_id: uuid.UUID
    attempt: int
    outcome: str
    reason: str | None = None
    reference: str | None = None
    at: datetime | None = None
    returned_amount: int | None = None


def instruction_id(payment_id: uuid.UUID | str, attempt: int) -> str:
    return f"{payment_id}:{attempt}"


def parse_instruction_id(value: str) -> tuple[uuid.UUID, int]:
    payment, _, attempt = value.strip().partition(":")
    if not (attempt.isascii() and attempt.isdigit() and 1 <= int(attempt) <= 2**31 - 1):
        raise ValueError(f"not an attempt number: {attempt!r}")
    return uuid.UUID(payment), int(attempt)


def write_export(rows: Iterable[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        writer.writerow(
            [instruction_id(row["payment_id"], row["attempt"]), row["payment_id"], row["attempt"], row["person_id"], row["nik_hash"] or "",
             row["regency_code"] or "", row["programme_code"], row["year"], row["stage"], row["amount"]]
        )
    return out.getvalue()


def decode(raw: bytes, what: str, rule: str) -> tuple[str | None, list[dict[str, str]]]:
    """A file's text, or the problem naming the line where it is not UTF-8 (or holds a NUL)."""
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return None, [{"field": f"line {line}", "message": f"the {what} must be UTF-8 text (byte {exc.start + 1} is not)", "rule": f"{rule}.encoding"}]
    if "\x00" in content:
        line = content[: content.index("\x00")].count("\n") + 1
        return None, [{"field": f"line {line}", "message": f"the {what} must not contain NUL characters", "rule": f"{rule}.nul"}]
    return content, []


def _error(line: int, column: str, message: str) -> dict[str, str]:
    return {"field": f"line {line}.{column}", "message": message, "rule": f"result_file.{column}"}


def parse_results(content: str) -> tuple[list[Report], list[dict[str, str]]]:
    """The reports of a result file, and every problem found (line numbers count the header as 1)."""
    reader = csv.DictReader(io.StringIO(content))
    try:
        fieldnames = reader.fieldnames or []
        missing = [c for c in ("instruction_id", "status") if c not in fieldnames]
        if missing:
            return [], [{"field": "header", "message": f"missing column(s): {', '.join(missing)}", "rule": "result_file.header"}]
        rows = list(enumerate(reader, start=2))
    except csv.Error as exc:
        return [], [{"field": f"line {max(reader.reader.line_num, 1)}", "message": f"not CSV: {exc}", "rule": "result_file.csv"}]
    reports, errors = [], []
    for n, row in rows:
        if n > MAX_LINES + 1:
            errors.append({"field": "file", "message": f"at most {MAX_LINES} lines per file", "rule": "result_file.size"})
            break
        long = [c for c in ("reason", "reference") if len((row.get(c) or "").strip()) > (500 if c == "reason" else 100)]
        if long:
            errors.append(_error(n, long[0], f"at most {500 if long[0] == 'reason' else 100} characters"))
            continue
        try:
            payment_id, attempt = parse_instruction_id(row.get("instruction_id") or "")
        except ValueError:
            errors.append(_error(n, "instruction_id", "must be <payment_id>:<attempt> as in the payment file"))
            continue
        status = (row.get("status") or "").strip().lower()
        if status not in RESULT_STATUSES:
            errors.append(_error(n, "status", f"must be one of {', '.join(RESULT_STATUSES)}"))
            continue
        reason = (row.get("reason") or "").strip() or None
        if status in ("failed", "returned") and not reason:
            errors.append(_error(n, "reason", f"a {status} result needs a reason"))
            continue
        at = None
        if (row.get("reported_at") or "").strip():
            try:
                at = datetime.fromisoformat(row["reported_at"].strip())
            except ValueError:
                errors.append(_error(n, "reported_at", "must be an ISO 8601 date-time"))
                continue
        returned = None
        if (row.get("returned_amount") or "").strip():
            raw = row["returned_amount"].strip()
            if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 10**15):
                errors.append(_error(n, "returned_amount", "must be whole rupiah"))
                continue
            returned = int(raw)
        reports.append(Report(payment_id, attempt, status, reason, (row.get("reference") or "").strip() or None, at, returned))
    return reports, errors
