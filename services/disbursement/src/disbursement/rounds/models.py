"""Tables of programme settings, yearly budgets, rounds and their population snapshots.

The migration ``0002_disbursement`` creates the same tables plus the triggers that keep
``programme_budget.allocated`` and ``payment_round.committed`` equal to what they sum up;
keep the two in step.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from sqlalchemy import ARRAY, BigInteger, CheckConstraint, Column, DateTime, ForeignKeyConstraint, Index, Text, UniqueConstraint, func
from sqlmodel import Field

from ..base import Model
from .domain import CHANNELS, EXCLUSION_REASONS, ROUND_STATUSES


def _now() -> datetime:
    return datetime.now(UTC)


def _in(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


class Programme(Model, table=True):
    """How this service pays a programme (the registry owns eligibility; this is money)."""

    __tablename__ = "programme"
    __table_args__ = (CheckConstraint(f"default_channel IN ({_in(CHANNELS)})", name="programme_channel"),)

    code: str = Field(primary_key=True)
    name: str
    provincial: bool = False
    # Codes of programmes a person may not receive in an overlapping period ("no double provincial aid").
    exclusive_with: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(Text), nullable=False, server_default="{}"))
    default_channel: str = "bank"
    version: int = 1
    updated_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class ProgrammeBudget(Model, table=True):
    """A programme's budget for one year; ``allocated`` is the sum of its rounds' ceilings (a trigger keeps it)."""

    __tablename__ = "programme_budget"
    __table_args__ = (
        CheckConstraint("amount > 0", name="budget_amount"),
        CheckConstraint("allocated >= 0 AND allocated <= amount", name="budget_allocated"),
    )

    programme_code: str = Field(foreign_key="programme.code", primary_key=True)
    year: int = Field(primary_key=True)
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    allocated: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    version: int = 1
    updated_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class PaymentRound(Model, table=True):
    """One round (tahap) of a programme: amount per beneficiary, ceiling, period, channel, lifecycle."""

    __tablename__ = "payment_round"
    __table_args__ = (
        UniqueConstraint("programme_code", "year", "stage", name="ux_round_stage"),
        ForeignKeyConstraint(["programme_code", "year"], ["programme_budget.programme_code", "programme_budget.year"], name="round_budget"),
        CheckConstraint(f"status IN ({_in(ROUND_STATUSES)})", name="round_status"),
        CheckConstraint(f"channel IN ({_in(CHANNELS)})", name="round_channel"),
        CheckConstraint("amount > 0 AND ceiling >= amount", name="round_amounts"),
        CheckConstraint("period_end >= period_start", name="round_period"),
        CheckConstraint("stage >= 1", name="round_stage"),
        # The sum of the round's live payments (a trigger keeps it) never passes the ceiling.
        CheckConstraint("committed >= 0 AND committed <= ceiling", name="round_within_ceiling"),
        # Four eyes, in the data itself: the approver is never the officer who prepared it (in any case).
        CheckConstraint("approved_by IS NULL OR lower(approved_by) <> lower(prepared_by)", name="round_four_eyes"),
        CheckConstraint(
            "status NOT IN ('approved','disbursing','closed') OR (approved_by IS NOT NULL AND sk_number IS NOT NULL)", name="round_approved"
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    programme_code: str = Field(sa_column=Column(Text, nullable=False))
    year: int
    stage: int
    name: str
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))  # whole rupiah per beneficiary
    ceiling: int = Field(sa_column=Column(BigInteger, nullable=False))
    period_start: date
    period_end: date
    channel: str
    status: str = "draft"
    created_by: str
    created_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
    prepared_by: str | None = None  # who took the current snapshot
    snapshot_version: int = 0
    snapshot_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    payee_count: int = 0
    planned_amount: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    approved_by: str | None = None
    approved_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    sk_number: str | None = None
    disbursing_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    closed_by: str | None = None
    closed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    cancel_reason: str | None = None
    committed: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    version: int = 1
    updated_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class RoundEntry(Model, table=True):
    """One line of a round's population: a payee, or an exclusion with its reason."""

    __tablename__ = "round_entry"
    __table_args__ = (
        CheckConstraint("outcome IN ('payee','excluded')", name="entry_outcome"),
        CheckConstraint(f"reason IS NULL OR reason IN ({_in(EXCLUSION_REASONS)})", name="entry_reason"),
        CheckConstraint("(outcome = 'payee') = (reason IS NULL)", name="entry_reason_iff_excluded"),
        CheckConstraint("source IN ('snapshot','addition')", name="entry_source"),
        Index("ix_round_entry_outcome", "round_id", "outcome", "reason"),
        Index("ix_round_entry_regency", "round_id", "regency_code", "person_id"),
    )

    round_id: uuid.UUID = Field(foreign_key="payment_round.id", primary_key=True)
    person_id: uuid.UUID = Field(primary_key=True)
    nik_hash: str | None = None
    regency_code: str | None = None
    enrolment_id: uuid.UUID | None = None
    outcome: str
    reason: str | None = None
    detail: str | None = None
    amount: int | None = Field(default=None, sa_column=Column(BigInteger))
    source: str = "snapshot"
    added_by: str | None = None
    note: str | None = None
    added_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
