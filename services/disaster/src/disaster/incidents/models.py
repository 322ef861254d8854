"""Tables of incidents and their status history."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, ForeignKey, Identity, Index, Text, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import ARRAY  # PostgreSQL's own: .contains() is the @> operator
from sqlmodel import Field

from ..base import Model


def _now() -> datetime:
    return datetime.now(UTC)


class Incident(Model, table=True):
    __tablename__ = "incident"
    __table_args__ = (
        CheckConstraint("category IN ('natural','non_natural','social')", name="incident_category"),
        CheckConstraint("status IN ('alert','emergency_response','transition','recovery','closed')", name="incident_status"),
        CheckConstraint("cardinality(regency_codes) >= 1", name="incident_regencies"),
        Index("ix_incident_regencies", "regency_codes", postgresql_using="gin"),
        Index("ix_incident_started", "started_on", "id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str
    category: str
    hazard: str
    regency_codes: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    district_codes: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(Text), nullable=False, server_default="{}"))
    started_on: date
    description: str | None = None
    status: str
    decree_number: str | None = None
    authority: str | None = None
    status_from: date
    status_until: date | None = None
    created_by: str
    version: int = 1
    created_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
    updated_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class IncidentStatus(Model, table=True):
    """Every status an incident had, in order (``seq`` is the incident version it created)."""

    __tablename__ = "incident_status"
    __table_args__ = (UniqueConstraint("incident_id", "seq", name="ux_incident_status_seq"),)

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    incident_id: uuid.UUID = Field(sa_column=Column(ForeignKey("incident.id"), nullable=False))
    seq: int
    from_status: str | None = None
    to_status: str
    decree_number: str | None = None
    authority: str | None = None
    effective_from: date
    effective_until: date | None = None
    note: str | None = None
    recorded_by: str
    recorded_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
