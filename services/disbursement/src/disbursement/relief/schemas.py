"""Request and response models of relief programmes and grants."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Category = Literal["natural", "non_natural", "social"]


class ReliefProgrammeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=3, max_length=200, description="e.g. 'Santunan bencana 2026'")
    round_id: uuid.UUID = Field(description="the open round the payments go into (its programme, budget, ceiling and channel)")
    incident_categories: list[Category] = Field(default_factory=list, description="empty: every category")
    regency_codes: list[str] = Field(default_factory=list, description="empty: every regency")
    amount_light: int = Field(default=0, ge=0, description="whole rupiah per lightly damaged household (0: not paid)")
    amount_moderate: int = Field(default=0, ge=0)
    amount_heavy: int = Field(default=0, ge=0)


class ReliefProgrammePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int
    active: bool | None = None
    amount_light: int | None = Field(default=None, ge=0)
    amount_moderate: int | None = Field(default=None, ge=0)
    amount_heavy: int | None = Field(default=None, ge=0)


class ReliefProgrammeOut(BaseModel):
    id: uuid.UUID
    name: str
    round_id: uuid.UUID
    incident_categories: list[str]
    regency_codes: list[str]
    amount_light: int
    amount_moderate: int
    amount_heavy: int
    active: bool
    created_by: str
    version: int
    created_at: datetime


class ReliefGrantOut(BaseModel):
    id: uuid.UUID
    incident_id: uuid.UUID
    household_id: uuid.UUID
    relief_programme_id: uuid.UUID
    regency_code: str | None
    damage_level: str
    person_id: uuid.UUID | None
    amount: int
    status: str
    reason: str | None
    payment_id: uuid.UUID | None
    household_version: int
    created_at: datetime
    updated_at: datetime
