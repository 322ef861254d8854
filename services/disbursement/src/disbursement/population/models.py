"""The projection of who is payable: persons and enrolments as the registry announced them.

Written only by the consumer of the registry's events (and the benchmark's bulk fill); the
migration ``0002_disbursement`` creates the same tables.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from sqlalchemy import CheckConstraint, Column, DateTime, ForeignKey, Index, func, text
from sqlmodel import Field

from ..base import Model


def _now() -> datetime:
    return datetime.now(UTC)


class PayeePerson(Model, table=True):
    __tablename__ = "payee_person"
    __table_args__ = (
        CheckConstraint("status IN ('active','deceased','merged')", name="payee_person_status"),
        Index("ix_payee_person_merged", "merged_into", postgresql_where=text("merged_into IS NOT NULL")),
    )

    person_id: uuid.UUID = Field(primary_key=True)
    nik_hash: str | None = None
    regency_code: str | None = None
    status: str = "active"
    date_of_death: date | None = None
    merged_into: uuid.UUID | None = None
    updated_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class PayeeEnrolment(Model, table=True):
    __tablename__ = "payee_enrolment"
    __table_args__ = (
        CheckConstraint("status IN ('active','suspended','ended')", name="payee_enrolment_status"),
        Index("ix_payee_enrolment_programme", "programme_code", "status"),
    )

    enrolment_id: uuid.UUID = Field(primary_key=True)
    # Re-pointed when the registry merges the person into another (same enrolment id).
    person_id: uuid.UUID = Field(sa_column=Column(ForeignKey("payee_person.person_id"), nullable=False, index=True))
    programme_code: str
    regency_code: str | None = None
    household_id: uuid.UUID | None = None
    status: str = "active"
    active_from: date | None = None
    ended_on: date | None = None
    end_reason: str | None = None
    updated_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
