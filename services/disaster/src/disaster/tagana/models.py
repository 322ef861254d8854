"""Tables of Tagana volunteers and their deployments.

The migration adds the exclusion constraint that keeps one volunteer's deployments from
overlapping: ``EXCLUDE USING gist (volunteer_id WITH =, daterange(started_on, ended_on, '[]') WITH &&)``
(btree_gist); an open deployment (no end yet) runs to infinity.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from sqlalchemy import CheckConstraint, Column, DateTime, ForeignKey, Index, Text, func
from sqlalchemy.dialects.postgresql import ARRAY  # PostgreSQL's own: .contains() is the @> operator
from sqlmodel import Field

from ..base import Model


def _now() -> datetime:
    return datetime.now(UTC)


class Volunteer(Model, table=True):
    __tablename__ = "volunteer"
    __table_args__ = (
        CheckConstraint("rank IN ('muda','madya','utama')", name="volunteer_rank"),
        Index("ix_volunteer_regency", "regency_code", "member_number"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    member_number: str = Field(unique=True)
    name: str
    rank: str
    regency_code: str
    skills: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(Text), nullable=False, server_default="{}"))
    active: bool = True
    version: int = 1
    created_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class Deployment(Model, table=True):
    __tablename__ = "deployment"
    __table_args__ = (
        CheckConstraint("ended_on IS NULL OR ended_on >= started_on", name="deployment_period"),
        CheckConstraint("hours >= 0", name="deployment_hours"),
        # Hours never exceed the days of the deployment (24 a day).
        CheckConstraint("ended_on IS NULL OR hours <= 24 * (ended_on - started_on + 1)", name="deployment_hours_fit"),
        Index("ix_deployment_incident", "incident_id", "volunteer_id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    volunteer_id: uuid.UUID = Field(sa_column=Column(ForeignKey("volunteer.id"), nullable=False))
    incident_id: uuid.UUID = Field(sa_column=Column(ForeignKey("incident.id"), nullable=False))
    role: str
    started_on: date
    ended_on: date | None = None
    hours: int = 0
    note: str | None = None
    recorded_by: str
    version: int = 1
    created_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
