"""Request and response models of the homeless-return API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

Cause = Literal["out_of_money", "job_scam", "suspected_trafficking", "other"]
Referrer = Literal["satpol_pp", "police", "public", "local_dinsos", "other_province"]
Documents = Literal["ktp", "police_certificate", "none"]
Facility = Literal["shelter", "upt"]
Mode = Literal["bus", "train", "ship"]
Status = Literal["reported", "in_care", "verified", "scheduled", "in_transit", "returned", "refused", "unresolved"]
Direction = Literal["outbound", "inbound"]
Sex = Literal["M", "F"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class IntakeIn(_In):
    direction: Direction = Field(default="outbound", description="outbound: stranded in Jawa Timur; inbound: a Jatim resident sent back by another province")
    found_at: AwareDatetime = Field(description="when the person was found (inbound: received)")
    found_place_code: str = Field(description="region code in Jawa Timur, regency or finer, e.g. 35.78 or 35.78.01")
    found_place_note: str | None = Field(default=None, max_length=300, description="terminal, station, street...")
    referred_by: Referrer
    sending_province_code: str | None = Field(default=None, description="inbound only: the province that sent the person back")
    documents: Documents
    photo_ref: str | None = Field(default=None, max_length=300, description="reference of the photo in the document store")
    cause: Cause
    suspected_trafficking: bool = Field(default=False, description="raise the trafficking flag (always raised when the cause is suspected_trafficking)")
    health_note: str | None = Field(default=None, max_length=1000)
    name: str = Field(min_length=1, max_length=200)
    birth_date: date | None = None
    sex: Sex
    origin_code: str | None = Field(default=None, description="claimed home region, any province")
    nik: str | None = Field(default=None, description="16-digit NIK if known: checked and hashed, never stored")
    destination_code: str | None = Field(default=None, description="where the person goes home to, if already known")

    @field_validator("nik")
    @classmethod
    def _strip_spaces(cls, v: str | None) -> str | None:
        return None if v is None else "".join(v.split())


class DestinationIn(_In):
    destination_code: str = Field(description="region code; a Jawa Timur destination needs its regency or city")
    family_contact_name: str | None = Field(default=None, max_length=200)
    family_contact_phone: str | None = Field(default=None, pattern=r"^\+?[\d\s-]{8,20}$")
    family_relationship: str | None = Field(default=None, max_length=100)


class VerificationIn(_In):
    note: str | None = Field(default=None, max_length=1000, description="who was contacted, what was confirmed")


class CareStayIn(_In):
    facility_type: Facility
    facility_name: str = Field(min_length=1, max_length=200)
    admitted_on: date


class CareStayEnd(_In):
    left_on: date


class CounsellingIn(_In):
    held_on: date
    counsellor: str = Field(min_length=1, max_length=200)
    topic: str = Field(min_length=1, max_length=200)
    note: str | None = Field(default=None, max_length=2000)


class LegPlanIn(_In):
    mode: Mode
    ticket_cost: int = Field(ge=0, description="whole rupiah")
    escort: str | None = Field(default=None, max_length=200)
    departure_at: AwareDatetime = Field(description="scheduled departure (for a ship: the ship's schedule)")


class ScheduleIn(_In):
    legs: list[LegPlanIn] = Field(min_length=1, max_length=5, description="one entry per leg of the planned route, in order")


class DepartureIn(_In):
    departed_at: AwareDatetime


class HandoverIn(_In):
    handed_over_at: AwareDatetime
    handover_document_no: str = Field(min_length=1, max_length=100)
    received_by: str = Field(min_length=1, max_length=200, description="officer of the receiving Dinsos")


class RefusalIn(_In):
    refused_by: Literal["family", "home_government"]
    reason: str = Field(min_length=3, max_length=1000)


class UnresolvedIn(_In):
    reason: str = Field(min_length=3, max_length=1000)


class HolidayIn(_In):
    name: str = Field(min_length=1, max_length=200)


class HopOut(BaseModel):
    seq: int
    from_code: str
    to_code: str
    receiving_office: str


class CareStayOut(BaseModel):
    id: uuid.UUID
    facility_type: str
    facility_name: str
    admitted_on: date
    left_on: date | None


class CounsellingOut(BaseModel):
    id: uuid.UUID
    held_on: date
    counsellor: str
    topic: str
    note: str | None


class LegOut(BaseModel):
    seq: int
    from_code: str
    to_code: str
    receiving_office: str
    mode: str
    ticket_cost: int
    escort: str | None
    departure_at: datetime
    status: str
    departed_at: datetime | None
    handed_over_at: datetime | None
    handover_document_no: str | None
    received_by: str | None


class ReturnOut(BaseModel):
    id: uuid.UUID
    status: Status
    direction: Direction
    version: int
    found_at: datetime
    found_place_code: str
    found_place_note: str | None
    referred_by: str
    sending_province_code: str | None
    documents: str
    photo_ref: str | None
    cause: str
    health_note: str | None
    flags: list[str]
    previous_return_id: uuid.UUID | None
    name: str
    birth_date: date | None
    sex: str
    origin_code: str | None
    nik_known: bool = Field(description="a NIK was given at intake (only its hash is kept)")
    person_id: uuid.UUID | None
    departure_due_on: date
    overdue: bool
    destination_code: str | None
    family_contact_name: str | None
    family_contact_phone: str | None
    family_relationship: str | None
    verified_at: datetime | None
    verified_by: str | None
    verification_note: str | None
    departed_at: datetime | None
    within_standard: bool | None
    returned_at: datetime | None
    closed_at: datetime | None
    refused_by: str | None
    close_reason: str | None
    total_cost: int
    care_stays: list[CareStayOut]
    counselling: list[CounsellingOut]
    legs: list[LegOut]
    created_at: datetime
    updated_at: datetime


class ReturnSummary(BaseModel):
    id: uuid.UUID
    status: Status
    direction: Direction
    cause: str
    flags: list[str]
    found_at: datetime
    found_place_code: str
    destination_code: str | None
    departure_due_on: date
    overdue: bool
    person_id: uuid.UUID | None
    created_at: datetime


class ReturnPage(BaseModel):
    items: list[ReturnSummary]
    next_cursor: str | None


class OverdueOut(BaseModel):
    today: date
    count: int
    items: list[ReturnSummary]


class HolidayOut(BaseModel):
    day: date
    name: str


class StatsOut(BaseModel):
    period_from: date
    period_to: date
    reported: int
    returned: int
    refused: int
    unresolved: int
    returned_per_month: dict[str, int]
    returned_per_destination_province: dict[str, int]
    returned_per_cause: dict[str, int]
    departed: int
    departed_within_standard: int
    share_within_standard: float | None
    overdue_now: int
    cost_total: int
    cost_per_month: dict[str, int]
