"""Request and response models of evacuation points."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ..fields import DistrictCode, Text, Version, VillageCode

MAX_PEOPLE = 1_000_000  # at one point at one time: ten times the largest capacity


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PointIn(_In):
    name: Text(2, 200) = Field(description="e.g. 'Balai Desa Sumberwuluh'")
    village_code: VillageCode | None = Field(default=None, description="village code; or give district_code")
    district_code: DistrictCode | None = None
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    capacity: int = Field(ge=1, le=100_000)
    opened_on: date


class PointPatch(_In):
    version: Version
    capacity: int | None = Field(default=None, ge=1, le=100_000)
    closed_on: date | None = None


class HeadcountIn(_In):
    reported_at: AwareDatetime = Field(description="with its UTC offset, e.g. 2026-01-05T08:00:00+07:00")
    total: int = Field(ge=0, le=MAX_PEOPLE)
    elderly: int = Field(default=0, ge=0, le=MAX_PEOPLE)
    disabled: int = Field(default=0, ge=0, le=MAX_PEOPLE)
    children: int = Field(default=0, ge=0, le=MAX_PEOPLE)
    pregnant: int = Field(default=0, ge=0, le=MAX_PEOPLE)


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
