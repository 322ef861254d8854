"""The aid history table: one row per payment, at its latest known state.

The migration ``0006_aid_history`` creates the same table; keep the two in step.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import BigInteger, Column, DateTime, Index, func
from sqlmodel import Field

from ..tables import Table


def _now() -> datetime:
    return datetime.now(UTC)


class AidHistory(Table, table=True):
    __tablename__ = "aid_history"
    __table_args__ = (Index("ix_aid_history_person", "person_id", "first_seen_at", "payment_id"),)

    payment_id: uuid.UUID = Field(primary_key=True)
    # The record the payment was made to (a merged duplicate keeps its own id here).
    person_id: uuid.UUID
    programme_code: str
    round_id: uuid.UUID
    year: int
    stage: int
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    channel: str
    status: str
    reason: str | None = None
    attempt: int
    returned_amount: int | None = Field(default=None, sa_column=Column(BigInteger))
    # The payment's own change counter: an older event never overwrites a newer state.
    version: int
    status_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    first_seen_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
