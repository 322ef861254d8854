"""Request and response models of relief programmes and grants."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from pilar_kernel.types import PositiveInt32

from ..rounds.schemas import MAX_AMOUNT, TEXT_PATTERN

Category = Literal["natural", "non_natural", "social"]
RegencyCode = Annotated[str, Field(pattern=r"^\d{2}\.?\d{2}$", description="a regency/city of Jawa Timur, e.g. 35.15")]
Amount = Annotated[int, Field(ge=0, le=MAX_AMOUNT)]
GrantStatus = Literal["paid", "held"]


class ReliefProgrammeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=3, max_length=200, pattern=TEXT_PATTERN, description="e.g. 'Santunan bencana 2026'")
    round_id: uuid.UUID = Field(description="the open round the payments go into (its programme, budget, ceiling and channel)")
    incident_categories: list[Category] = Field(default_factory=list, max_length=3, description="empty: every category")
    regency_codes: list[RegencyCode] = Field(default_factory=list, max_length=38, description="empty: every regency")
    amount_light: Amount = Field(default=0, description="whole rupiah per lightly damaged household (0: not paid)")
    amount_moderate: Amount = 0
    amount_heavy: Amount = 0


class ReliefProgrammePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: PositiveInt32
    active: bool | None = None
    amount_light: Amount | None = None
    amount_moderate: Amount | None = None
    amount_heavy: Amount | None = None


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
