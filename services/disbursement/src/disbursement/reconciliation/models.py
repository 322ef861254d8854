"""Tables of imported bank statements and their lines, each with how it matched.

The migration ``0002_disbursement`` creates the same tables; keep the two in step.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, ForeignKey, Index, Text, func, text
from sqlmodel import Field

from ..base import Model

LINE_OUTCOMES = ("matched", "amount_mismatch", "status_mismatch", "unmatched", "duplicate")
DIRECTIONS = ("debit", "credit", "failure")  # debit: paid out; credit: money returned; failure: the bank did not pay


def _now() -> datetime:
    return datetime.now(UTC)


def _in(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


class Statement(Model, table=True):
    __tablename__ = "bank_statement"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # The same file imported twice is one statement (the second import returns the first report).
    digest: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    account: str | None = None
    imported_by: str
    imported_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
    line_count: int
    matched: int
    amount_mismatch: int
    status_mismatch: int
    unmatched: int
    duplicate: int


class StatementLine(Model, table=True):
    __tablename__ = "bank_statement_line"
    __table_args__ = (
        CheckConstraint(f"outcome IN ({_in(LINE_OUTCOMES)})", name="statement_line_outcome"),
        CheckConstraint(f"direction IN ({_in(DIRECTIONS)})", name="statement_line_direction"),
        # A payment's debit (or credit) is matched by one statement line only, across all statements.
        Index("ux_statement_line_match", "payment_id", "direction", unique=True,
              postgresql_where=text("outcome = 'matched' AND direction IN ('debit','credit')")),
        Index("ix_statement_line_outcome", "statement_id", "outcome", "line_no"),
    )

    statement_id: uuid.UUID = Field(sa_column=Column(ForeignKey("bank_statement.id"), primary_key=True))
    line_no: int = Field(primary_key=True)
    value_date: date | None = None
    bank_reference: str | None = None
    instruction_id: str | None = None
    direction: str
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    payment_id: uuid.UUID | None = Field(default=None, index=True)
    round_id: uuid.UUID | None = None
    expected_amount: int | None = Field(default=None, sa_column=Column(BigInteger))
    outcome: str
    note: str | None = None
