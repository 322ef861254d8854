"""Request and response models of the persons API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..fields import KK_PATTERN, NIK_PATTERN, PPKS_PATTERN, PROVISIONAL_ID_PATTERN, REGION_PATTERN, VILLAGE_PATTERN, Version

Sex = Literal["M", "F"]
Relationship = Literal[
    "head", "husband", "wife", "child", "child_in_law", "grandchild", "parent", "parent_in_law",
    "other_relative", "household_help", "other",
]
DisabilityType = Literal["physical", "intellectual", "mental", "sensory_sight", "sensory_hearing", "sensory_speech", "multiple"]
DisabilitySeverity = Literal["mild", "moderate", "severe", "bedridden"]


class _PersonFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    birth_place: str | None = Field(default=None, max_length=100)
    kk_number: str | None = Field(default=None, pattern=KK_PATTERN, description="16-digit family card number")
    relationship: Relationship | None = None
    village_code: str | None = Field(default=None, pattern=VILLAGE_PATTERN, description="Kemendagri village code in Jawa Timur, e.g. 35.15.14.2001")
    rt: str | None = Field(default=None, pattern=r"^\d{1,3}$")
    rw: str | None = Field(default=None, pattern=r"^\d{1,3}$")
    street: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, pattern=r"^\+?[\d\s-]{8,20}$")
    disability_type: DisabilityType | None = None
    disability_severity: DisabilitySeverity | None = None
    ppks: list[Annotated[str, Field(pattern=PPKS_PATTERN)]] = Field(default_factory=list, max_length=26,
                                                                   description="PPKS category slugs (see GET /v1/reference/ppks)")
    decile: int | None = Field(default=None, ge=1, le=10, description="DTSEN welfare decile, 1 = poorest")
    decile_date: date | None = Field(default=None, description="snapshot date of the decile")
    occupation: str | None = Field(default=None, max_length=100)
    employer: str | None = Field(default=None, max_length=200)


class PersonIn(_PersonFields):
    nik: str | None = Field(default=None, pattern=NIK_PATTERN, description="16-digit NIK (spaces allowed); leave out for a provisional record")
    provisional: bool = Field(default=False, description="no NIK known yet (stranded persons, disaster victims)")
    name: str = Field(min_length=1, max_length=200)
    birth_date: date | None = None
    sex: Sex

    @field_validator("nik")
    @classmethod
    def _strip_spaces(cls, v: str | None) -> str | None:
        return None if v is None else "".join(v.split())


class PersonPatch(_PersonFields):
    version: Version
    name: str | None = Field(default=None, min_length=1, max_length=200)
    birth_date: date | None = None
    sex: Sex | None = None
    ppks: list[Annotated[str, Field(pattern=PPKS_PATTERN)]] | None = Field(default=None, max_length=26)  # type: ignore[assignment]


class HouseholdRef(BaseModel):
    household_id: uuid.UUID
    kk_number: str
    relationship: str


class PersonOut(BaseModel):
    id: uuid.UUID
    nik: str | None = Field(description="masked (3515********0001) unless unmasked PII was requested with the PII scope and a reason")
    nik_masked: bool
    provisional_id: str | None
    name: str
    birth_place: str | None
    birth_date: date | None
    sex: str
    village_code: str | None
    district_code: str | None
    regency_code: str | None
    rt: str | None
    rw: str | None
    street: str | None
    phone: str | None
    disability_type: str | None
    disability_severity: str | None
    ppks: list[str]
    decile: int | None
    decile_date: date | None
    occupation: str | None
    employer: str | None
    status: str
    deceased_date: date | None
    merged_into: uuid.UUID | None
    domicile_note: str | None = Field(default=None, description="where the person was last known to be, as other services "
                                      "reported it (a completed return home, a disaster assessment)")
    household: HouseholdRef | None
    version: int
    created_at: datetime
    updated_at: datetime


class PersonPage(BaseModel):
    items: list[PersonOut]
    next_cursor: str | None


class LookupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nik: str | None = Field(default=None, pattern=NIK_PATTERN, description="exact NIK (sent in the body, never in a URL)")
    provisional_id: str | None = Field(default=None, pattern=PROVISIONAL_ID_PATTERN, description="PRV-... id of a provisional record")


class DeathIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date_of_death: date
    version: Version


class MoveOutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    moved_on: date
    destination: str | None = Field(default=None, pattern=REGION_PATTERN,
                                    description="region code of the new domicile outside Jawa Timur, if known (dotted, e.g. 73.71)")
    version: Version


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    into_person_id: uuid.UUID
    reason: str = Field(min_length=3, max_length=500)


class MembershipOut(BaseModel):
    household_id: uuid.UUID
    kk_number: str
    relationship: str
    valid_from: datetime
    valid_to: datetime | None


class HouseholdOut(BaseModel):
    id: uuid.UUID
    kk_number: str
    regency_code: str | None
    members: list[dict]


class PiiAccessOut(BaseModel):
    at: datetime
    subject: str
    fields: list[str]
    reason: str
