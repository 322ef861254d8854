"""Request and response models of the rapid assessment."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..fields import Text, Version, VillageCode

DamageLevel = Literal["none", "light", "moderate", "heavy"]
Condition = Literal["unharmed", "injured", "missing", "dead"]
Vulnerability = Literal["elderly", "disabled", "child", "pregnant"]
Relationship = Literal[
    "head", "husband", "wife", "child", "child_in_law", "grandchild", "parent", "parent_in_law",
    "other_relative", "household_help", "other",
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class MemberIn(_In):
    nik: str | None = Field(default=None, max_length=40, description="16-digit NIK when known (spaces allowed); hashed at once, never stored")
    name: Text(1, 200)
    sex: Literal["M", "F"]
    birth_date: date | None = None
    relationship: Relationship | None = None
    condition: Condition = "unharmed"
    displaced: bool | None = Field(default=None, description="defaults to the household's")
    vulnerabilities: list[Vulnerability] = Field(default_factory=list, max_length=4)
    evacuation_point_id: uuid.UUID | None = None

    @field_validator("nik")
    @classmethod
    def _strip(cls, v: str | None) -> str | None:
        return None if v is None else "".join(v.split())


class HouseholdIn(_In):
    kk_number: str | None = Field(default=None, max_length=40, description="16-digit family card number when known; hashed, never stored")
    village_code: VillageCode = Field(description="Kemendagri village code, e.g. 35.08.01.2001")
    damage_level: DamageLevel
    displaced: bool = False
    member_count: int | None = Field(default=None, ge=1, le=60, description="people in the household; defaults to the members listed")
    members: list[MemberIn] = Field(min_length=1, max_length=60)


class PersonIn(MemberIn):
    village_code: VillageCode


class HouseholdPatch(_In):
    version: Version
    damage_level: DamageLevel | None = None
    displaced: bool | None = None
    member_count: int | None = Field(default=None, ge=1, le=60)


class PersonPatch(_In):
    version: Version
    condition: Condition | None = None
    displaced: bool | None = None
    vulnerabilities: list[Vulnerability] | None = Field(default=None, max_length=4)
    evacuation_point_id: uuid.UUID | None = None


class PersonOut(BaseModel):
    id: uuid.UUID
    incident_id: uuid.UUID
    household_id: uuid.UUID | None
    person_id: uuid.UUID | None = Field(description="the registry person, when matched")
    nik_known: bool
    name: str
    sex: str
    birth_date: date | None
    relationship: str | None
    regency_code: str
    district_code: str
    village_code: str
    condition: str
    displaced: bool
    vulnerabilities: list[str]
    evacuation_point_id: uuid.UUID | None
    version: int
    created_at: datetime


class HouseholdOut(BaseModel):
    id: uuid.UUID
    incident_id: uuid.UUID
    kk_known: bool
    registry_household_id: uuid.UUID | None
    regency_code: str
    district_code: str
    village_code: str
    damage_level: str
    displaced: bool
    member_count: int
    recipient_person_id: uuid.UUID | None
    version: int
    assessed_at: datetime
    members: list[PersonOut] = Field(default_factory=list)


class HouseholdPage(BaseModel):
    items: list[HouseholdOut]
    next_cursor: str | None


class PersonPage(BaseModel):
    items: list[PersonOut]
    next_cursor: str | None


class RecipientIn(_In):
    person_id: uuid.UUID = Field(description="the registry person who receives the household's aid (a member, a guardian, a relative)")
    reason: str = Field(min_length=10, max_length=500, description="why this person (kept with the assignment)")


class RecipientAssignmentOut(BaseModel):
    id: uuid.UUID
    household_id: uuid.UUID
    person_id: uuid.UUID
    reason: str
    status: Literal["proposed", "confirmed", "withdrawn", "superseded"]
    proposed_by: str
    proposed_at: datetime
    confirmed_by: str | None
    decided_at: datetime | None
