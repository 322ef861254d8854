"""Tables of the programme catalogue, its audit trail and enrolments.

The migration ``0003_programmes`` creates the same tables by hand; keep the two in step.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, ForeignKey, Identity, Index, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field

from ..tables import Table

from .domain import OPEN, STATUSES, SYSTEM_END_REASONS


def _now() -> datetime:
    return datetime.now(UTC)


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


OPEN_PREDICATE = f"status IN ({_in(OPEN)})"


class Programme(Table, table=True):
    """One programme of the catalogue; ``rules`` is a :class:`~.domain.ProgrammeRules` as JSON."""

    __tablename__ = "programme"
    __table_args__ = (CheckConstraint("amount_per_stage IS NULL OR amount_per_stage >= 0", name="programme_amount"),)

    code: str = Field(primary_key=True)
    name: str
    description: str | None = None
    rules: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default=text("'{}'::jsonb")))
    # Whole rupiah per payment stage; null where the amount is set per round elsewhere.
    amount_per_stage: int | None = Field(default=None, sa_column=Column(BigInteger))
    # Funded by the province: "no double provincial aid" looks at this flag on both programmes.
    provincial: bool = False
    active: bool = True
    version: int = 1
    created_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
    updated_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class ProgrammeAudit(Table, table=True):
    """Append-only history of catalogue changes (a trigger refuses UPDATE and DELETE)."""

    __tablename__ = "programme_audit"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
    subject: str  # the client (token subject)
    acting_user: str | None = None  # the officer within the client (``user`` claim), when given
    programme_code: str = Field(sa_column=Column(Text, ForeignKey("programme.code"), nullable=False, index=True))
    action: str  # seeded, created, updated
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    after: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))


class Enrolment(Table, table=True):
    __tablename__ = "enrolment"
    __table_args__ = (
        # One open enrolment per person and programme: the database settles concurrent
        # proposals (the loser's insert fails and becomes a 409).
        Index("ux_enrolment_open", "person_id", "programme_code", unique=True, postgresql_where=text(OPEN_PREDICATE)),
        Index("ix_enrolment_regency_proposed", "regency_code", "proposed_at", "id"),
        Index("ix_enrolment_proposed", "proposed_at", "id"),
        Index("ix_enrolment_programme_status", "programme_code", "status"),
        CheckConstraint(f"status IN ({_in(STATUSES)})", name="enrolment_status"),
        CheckConstraint(f"end_reason IS NULL OR end_reason IN ({_in(SYSTEM_END_REASONS)})", name="enrolment_end_reason"),
        CheckConstraint("status <> 'ended' OR (ended_on IS NOT NULL AND end_reason IS NOT NULL)", name="enrolment_ended"),
        CheckConstraint("status <> 'rejected' OR reason IS NOT NULL", name="enrolment_rejected"),
        CheckConstraint("status NOT IN ('active','suspended') OR active_from IS NOT NULL", name="enrolment_active_from"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    person_id: uuid.UUID = Field(sa_column=Column(ForeignKey("person.id"), nullable=False, index=True))
    programme_code: str = Field(sa_column=Column(Text, ForeignKey("programme.code"), nullable=False))
    household_id: uuid.UUID | None = Field(default=None, sa_column=Column(ForeignKey("household.id")))
    regency_code: str | None = None
    status: str = "proposed"
    proposed_by: str
    proposed_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
    verified_by: str | None = None
    verified_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    decided_by: str | None = None
    decided_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    reason: str | None = None  # why it was rejected
    active_from: date | None = None  # payable from this day (set at approval)
    suspend_reason: str | None = None  # while suspended
    ended_on: date | None = None
    end_reason: str | None = None
    ended_by: str | None = None
    version: int = 1
    updated_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
