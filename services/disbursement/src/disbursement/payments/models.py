"""Tables of payments, their attempts, bank batches and callbacks, and post-office exports.

The migration ``0002_disbursement`` creates the same tables (and the trigger that keeps
``payment_round.committed``); keep the two in step.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, ForeignKey, Identity, Index, Integer, Text, UniqueConstraint, func, text
from sqlmodel import Field

from ..base import Model
from ..rounds.domain import CHANNELS
from .domain import OUTCOMES, PAYMENT_STATUSES, SETTLEMENT_STATUSES


def _now() -> datetime:
    return datetime.now(UTC)


def _in(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


class Payment(Model, table=True):
    __tablename__ = "payment"
    __table_args__ = (
        # One payment per person and round, whatever races: a retry reuses this row.
        UniqueConstraint("round_id", "person_id", name="ux_payment_round_person"),
        CheckConstraint(f"status IN ({_in(PAYMENT_STATUSES)})", name="payment_status"),
        CheckConstraint(f"channel IN ({_in(CHANNELS)})", name="payment_channel"),
        CheckConstraint("amount > 0", name="payment_amount"),
        CheckConstraint("status <> 'failed' OR failure_reason IS NOT NULL", name="payment_failed_reason"),
        CheckConstraint("status <> 'cancelled' OR cancel_reason IS NOT NULL", name="payment_cancel_reason"),
        CheckConstraint("status <> 'returned' OR (returned_amount IS NOT NULL AND returned_amount BETWEEN 1 AND amount)", name="payment_returned"),
        CheckConstraint("status IN ('created','cancelled') OR attempt >= 1", name="payment_attempted"),
        # The bank sender's queue.
        Index("ix_payment_queue", "channel", "id", postgresql_where=text("status = 'created'")),
        Index("ix_payment_regency", "regency_code", "created_at", "id"),
        # Payments waiting for their result: the status checker asks the bank about the old ones.
        Index("ix_payment_sent", "sent_at", "id", postgresql_where=text("status = 'sent'")),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    round_id: uuid.UUID = Field(foreign_key="payment_round.id")
    person_id: uuid.UUID = Field(index=True)
    nik_hash: str | None = None
    regency_code: str | None = None
    programme_code: str
    year: int
    stage: int
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    channel: str
    status: str = "created"
    attempt: int = 0  # attempts made so far; the one in flight or last reported
    batch_id: uuid.UUID | None = None  # bank batch or post-office export of the current attempt
    failure_reason: str | None = None
    cancel_reason: str | None = None
    bank_reference: str | None = None
    returned_amount: int | None = Field(default=None, sa_column=Column(BigInteger))
    return_reason: str | None = None
    sent_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    settled_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    returned_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    reconciled_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    version: int = 1
    created_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
    updated_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class PaymentAttempt(Model, table=True):
    """One try of a payment on a channel, and what the channel reported for it."""

    __tablename__ = "payment_attempt"
    __table_args__ = (
        CheckConstraint(f"outcome IS NULL OR outcome IN ({_in(OUTCOMES)})", name="attempt_outcome"),
        Index("ix_attempt_batch", "batch_id"),
        Index("ix_attempt_reference", "reference", postgresql_where=text("reference IS NOT NULL")),
    )

    payment_id: uuid.UUID = Field(sa_column=Column(ForeignKey("payment.id"), primary_key=True))
    attempt: int = Field(primary_key=True)
    channel: str
    batch_id: uuid.UUID
    sent_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
    outcome: str | None = None
    reason: str | None = None
    reference: str | None = None
    reported_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    # A report that contradicts an earlier one (kept for the reconciliation officer, never applied).
    anomaly: str | None = None
    # The bank asked for the attempt's status (its result never came): how often, when, what it said.
    status_checks: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    status_checked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    status_note: str | None = None


class PaymentSettlement(Model, table=True):
    """A payment whose outcome is unknown, settled by hand: one officer proposes with a reason, another approves."""

    __tablename__ = "payment_settlement"
    __table_args__ = (
        CheckConstraint("attempt >= 1", name="settlement_attempt"),
        CheckConstraint("outcome IN ('succeeded','failed')", name="settlement_outcome"),
        CheckConstraint(f"status IN ({_in(SETTLEMENT_STATUSES)})", name="settlement_status"),
        CheckConstraint("decided_by IS NULL OR status = 'rejected' OR lower(decided_by) <> lower(proposed_by)", name="settlement_four_eyes"),
        CheckConstraint("(status = 'proposed') = (decided_by IS NULL)", name="settlement_decided"),
        # One open proposal per payment.
        Index("ux_settlement_open", "payment_id", unique=True, postgresql_where=text("status = 'proposed'")),
        Index("ix_settlement_status", "status", "proposed_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    payment_id: uuid.UUID = Field(sa_column=Column(ForeignKey("payment.id"), nullable=False))
    attempt: int
    outcome: str
    reason: str
    bank_reference: str | None = None
    status: str = "proposed"
    proposed_by: str
    proposed_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
    decided_by: str | None = None
    decided_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    decision_note: str | None = None
    result: str | None = None  # what applying it did: applied, or why it changed nothing


class BankBatch(Model, table=True):
    """Payment instructions posted to the bank together; re-posting one is harmless (the bank keys on its id)."""

    __tablename__ = "bank_batch"
    __table_args__ = (
        CheckConstraint("status IN ('pending','accepted','rejected')", name="bank_batch_status"),
        Index("ix_bank_batch_pending", "created_at", postgresql_where=text("status = 'pending'")),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    status: str = "pending"
    instruction_count: int
    total_amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    post_attempts: int = 0
    last_error: str | None = None
    created_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
    last_posted_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    accepted_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class BankCallback(Model, table=True):
    """Every accepted bank callback; the digest of its signature makes an exact replay a no-op."""

    __tablename__ = "bank_callback"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    digest: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    bank_timestamp: int = Field(sa_column=Column(BigInteger, nullable=False))
    batch_id: str | None = None
    result_count: int
    applied: int
    ignored: int
    received_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class PostExport(Model, table=True):
    """A payment file handed to the post office, and whether its result file came back."""

    __tablename__ = "post_export"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    round_id: uuid.UUID = Field(foreign_key="payment_round.id", index=True)
    instruction_count: int
    total_amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_by: str
    created_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
    results_imported: int = 0
    last_import_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
