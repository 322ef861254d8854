"""Tables of evacuation points, their headcounts over time and public-kitchen portions."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, ForeignKey, Identity, Index, func
from sqlmodel import Field

from ..base import Model


def _now() -> datetime:
    return datetime.now(UTC)


class EvacuationPoint(Model, table=True):
    __tablename__ = "evacuation_point"
    __table_args__ = (
        CheckConstraint("capacity >= 1", name="point_capacity"),
        CheckConstraint("closed_on IS NULL OR closed_on >= opened_on", name="point_period"),
        CheckConstraint("latitude IS NULL OR latitude BETWEEN -90 AND 90", name="point_latitude"),
        CheckConstraint("longitude IS NULL OR longitude BETWEEN -180 AND 180", name="point_longitude"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    incident_id: uuid.UUID = Field(sa_column=Column(ForeignKey("incident.id"), nullable=False, index=True))
    name: str
    regency_code: str
    district_code: str
    village_code: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    capacity: int
    opened_on: date
    closed_on: date | None = None
    created_by: str
    version: int = 1
    created_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class Headcount(Model, table=True):
    """How many people stayed at a point at one moment, with the vulnerable groups among them."""

    __tablename__ = "evacuation_headcount"
    __table_args__ = (
        CheckConstraint("total >= 0", name="headcount_total"),
        CheckConstraint(
            "elderly BETWEEN 0 AND total AND disabled BETWEEN 0 AND total AND children BETWEEN 0 AND total "
            "AND pregnant BETWEEN 0 AND total",
            name="headcount_groups",
        ),
        Index("ix_headcount_point_time", "point_id", "reported_at"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    point_id: uuid.UUID = Field(sa_column=Column(ForeignKey("evacuation_point.id"), nullable=False))
    reported_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    total: int
    elderly: int = 0
    disabled: int = 0
    children: int = 0
    pregnant: int = 0
    reported_by: str


class KitchenDay(Model, table=True):
    """Portions served by the public kitchen (dapur umum) of a point on one day."""

    __tablename__ = "kitchen_day"
    __table_args__ = (CheckConstraint("portions >= 0", name="kitchen_portions"),)

    point_id: uuid.UUID = Field(sa_column=Column(ForeignKey("evacuation_point.id"), primary_key=True))
    day: date = Field(primary_key=True)
    portions: int
    updated_by: str
    updated_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
