"""Request and response models of incidents."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..fields import DistrictCode, RegencyCode, Text, Version

Category = Literal["natural", "non_natural", "social"]
# Every hazard of any category (domain.HAZARDS); whether it fits the category is checked by the service.
Hazard = Literal["flood", "flash_flood", "landslide", "eruption", "earthquake", "tsunami", "tornado", "drought", "extreme_weather",
                 "abrasion", "fire", "epidemic", "technology_failure", "pollution", "other", "conflict", "terror"]
Status = Literal["alert", "emergency_response", "transition", "recovery", "closed"]
Authority = Literal["regent", "mayor", "governor", "president", "head_of_agency"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class IncidentIn(_In):
    name: Text(3, 200) = Field(description="e.g. 'Banjir Sidoarjo Januari 2026'")
    category: Category
    hazard: Hazard = Field(description="one of the category's hazards (see GET /v1/reference/hazards)")
    regency_codes: list[RegencyCode] = Field(min_length=1, max_length=38, description="affected regencies/cities, e.g. ['35.08']")
    district_codes: list[DistrictCode] = Field(default_factory=list, max_length=700, description="affected districts inside those regencies")
    started_on: date
    description: str | None = Field(default=None, max_length=4000)
    status: Literal["alert", "emergency_response"] = "alert"
    decree_number: Text(1, 120) = Field(description="number of the decree (SK) declaring the first status (alert or emergency response)")
    authority: Authority = Field(description="who declared it")
    effective_from: date | None = Field(default=None, description="defaults to started_on")
    effective_until: date | None = None


class StatusChangeIn(_In):
    version: Version
    status: Status
    decree_number: str | None = Field(default=None, max_length=120,
                                      description="required (with authority) for alert, emergency_response and transition")
    authority: Authority | None = None
    effective_from: date = Field(description="not before the current status began")
    effective_until: date | None = None
    note: str | None = Field(default=None, max_length=2000)


class StatusOut(BaseModel):
    seq: int
    from_status: str | None
    to_status: str
    decree_number: str | None
    authority: str | None
    effective_from: date
    effective_until: date | None
    note: str | None
    recorded_by: str
    recorded_at: datetime


class IncidentOut(BaseModel):
    id: uuid.UUID
    name: str
    category: str
    hazard: str
    regency_codes: list[str]
    district_codes: list[str]
    started_on: date
    description: str | None
    status: str
    decree_number: str | None
    authority: str | None
    status_from: date
    status_until: date | None
    created_by: str
    version: int
    created_at: datetime
    updated_at: datetime


class IncidentPage(BaseModel):
    items: list[IncidentOut]
    next_cursor: str | None
