"""Request and response models of evacuation points."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PointIn(_In):
    name: str = Field(min_length=2, max_length=200, description="e.g. 'Balai Desa Sumberwuluh'")
    village_code: str | None = Field(default=None, description="village code; or give district_code")
    district_code: str | None = None
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    capacity: int = Field(ge=1, le=100_000)
    opened_on: date


class PointPatch(_In):
    version: int
    capacity: int | None = Field(default=None, ge=1, le=100_000)
    closed_on: date | None = None


class HeadcountIn(_In):
    reported_at: datetime
    total: int = Field(ge=0)
    elderly: int = Field(default=0, ge=0)
    disabled: int = Field(default=0, ge=0)
    children: int = Field(default=0, ge=0)
    pregnant: int = Field(default=0, ge=0)


class KitchenIn(_In):
    portions: int = Field(ge=0, le=1_000_000)


class HeadcountOut(BaseModel):
    reported_at: datetime
    total: int
    elderly: int
    disabled: int
    children: int
    pregnant: int
    reported_by: str
    over_capacity: bool


class PointOut(BaseModel):
    id: uuid.UUID
    incident_id: uuid.UUID
    name: str
    regency_code: str
    district_code: str
    village_code: str | None
    latitude: float | None
    longitude: float | None
    capacity: int
    opened_on: date
    closed_on: date | None
    version: int
    latest: HeadcountOut | None = None


class KitchenOut(BaseModel):
    day: date
    portions: int
