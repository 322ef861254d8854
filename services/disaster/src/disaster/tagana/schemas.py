"""Request and response models of Tagana volunteers and deployments."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..fields import RegencyCode, Text, Version

MAX_HOURS = 24 * 366 * 5  # a deployment logs at most 24 hours a day; none lasts five years

Rank = Literal["muda", "madya", "utama"]
Skill = Literal["evacuation", "search_rescue", "public_kitchen", "shelter_management", "logistics", "first_aid", "psychosocial",
                "water_sanitation", "communication", "assessment", "driving"]
Role = Literal["coordinator", "evacuation", "search_rescue", "public_kitchen", "shelter_management", "logistics", "first_aid",
               "psychosocial", "assessment", "other"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class VolunteerIn(_In):
    member_number: str = Field(pattern=r"^[A-Za-z0-9./-]{4,40}$", description="Tagana member number")
    name: Text(1, 200)
    rank: Rank
    regency_code: RegencyCode
    skills: list[Skill] = Field(default_factory=list, max_length=11)


class VolunteerPatch(_In):
    version: Version
    rank: Rank | None = None
    skills: list[Skill] | None = Field(default=None, max_length=11)
    active: bool | None = None


class VolunteerOut(BaseModel):
    id: uuid.UUID
    member_number: str
    name: str
    rank: str
    regency_code: str
    skills: list[str]
    active: bool
    version: int


class VolunteerPage(BaseModel):
    items: list[VolunteerOut]
    next_cursor: str | None


class DeploymentIn(_In):
    volunteer_id: uuid.UUID
    role: Role
    started_on: date
    ended_on: date | None = Field(default=None, description="leave out while the deployment goes on")
    hours: int = Field(default=0, ge=0, le=MAX_HOURS)
    note: str | None = Field(default=None, max_length=1000)


class DeploymentPatch(_In):
    version: Version
    ended_on: date | None = None
    hours: int | None = Field(default=None, ge=0, le=MAX_HOURS)


class DeploymentOut(BaseModel):
    id: uuid.UUID
    volunteer_id: uuid.UUID
    incident_id: uuid.UUID
    role: str
    started_on: date
    ended_on: date | None
    hours: int
    note: str | None
    version: int
    created_at: datetime
