"""Request and response models of the homeless-return API.

Every request field carries the bounds the service really accepts, so that a request valid by
the OpenAPI document is taken and anything else is a 422 naming the field: lengths of text,
the shape of region codes and phone numbers, the years a date may fall in (PostgreSQL would
store ``0001-01-01T00:00:00Z`` as ``-infinity`` and read it back as a naive
``datetime.min``), and amounts within the ``integer`` columns.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

Cause = Literal["out_of_money", "job_scam", "suspected_trafficking", "other"]
Referrer = Literal["satpol_pp", "police", "public", "local_dinsos", "other_province"]
Documents = Literal["ktp", "police_certificate", "none"]
Facility = Literal["shelter", "upt"]
Mode = Literal["bus", "train", "ship"]
Status = Literal["reported", "in_care", "verified", "scheduled", "in_transit", "returned", "refused", "unresolved"]
Direction = Literal["outbound", "inbound"]
Sex = Literal["M", "F"]

# -- bounds -------------------------------------------------------------------------------

# The legs of a route: Jawa Timur -> partner province -> destination is two; the schedule
# takes at most this many entries and a leg's number in a path is 1..MAX_LEGS.
MAX_LEGS = 5
# A ticket in whole rupiah (the column is a PostgreSQL integer); no bus, train or ship
# ticket within Indonesia comes near it.
MAX_TICKET_COST = 100_000_000
# Moments and days of a case fall in 2000..2099. The pattern documents it; the bounds
# enforce it with a day of slack for time zones (2099-12-31T23:00-12:00 is in 2100 UTC).
FIRST_YEAR, LAST_YEAR = 2000, 2099
_MOMENT_PATTERN = r"^20[0-9]{2}-"
EARLIEST = datetime(FIRST_YEAR, 1, 1, tzinfo=UTC) - timedelta(days=1)
LATEST = datetime(LAST_YEAR + 1, 1, 1, tzinfo=UTC) + timedelta(days=1)

Moment = Annotated[
    AwareDatetime,
    Field(ge=EARLIEST, le=LATEST, json_schema_extra={"pattern": _MOMENT_PATTERN}, description="RFC 3339 with an offset, in the years 2000 to 2099"),
]
Day = Annotated[date, Field(ge=date(FIRST_YEAR, 1, 1), le=date(LAST_YEAR, 12, 31), json_schema_extra={"pattern": _MOMENT_PATTERN})]
BirthDate = Annotated[date, Field(ge=date(1900, 1, 1), le=date(LAST_YEAR, 12, 31), json_schema_extra={"pattern": r"^(19|20)[0-9]{2}-"})]

# Region codes in the dotted (35.78.01) or bare-digit (357801) Kemendagri form.
REGION_PATTERN = r"^([0-9]{2}(\.[0-9]{2}(\.[0-9]{2}(\.[0-9]{4})?)?)?|[0-9]{4}|[0-9]{6}|[0-9]{10})$"
# A regency or finer code in Jawa Timur.
JATIM_PLACE_PATTERN = r"^(35\.[0-9]{2}(\.[0-9]{2}(\.[0-9]{4})?)?|35[0-9]{2}|35[0-9]{4}|35[0-9]{8})$"
PROVINCE_PATTERN = r"^[0-9]{2}$"
PHONE_PATTERN = r"^\+?[0-9 -]{8,20}$"


def text(max_length: int, *, visible: int = 0, **kw: Any) -> Any:
    """A text field of at most ``max_length`` characters with at least ``visible`` characters
    that are neither spaces nor control characters (surrounding spaces are stripped before
    the length is counted). NUL is never allowed: PostgreSQL's text cannot hold it."""
    if visible:
        pattern = r"^[^\x00]*(?:[^\s\x00-\x1f][^\x00]*){%d}$" % visible
    else:
        pattern = r"^[^\x00]*$"
    return Field(max_length=max_length, pattern=pattern, **kw)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class IntakeIn(_In):
    direction: Direction = Field(default="outbound", description="outbound: stranded in Jawa Timur; inbound: a Jatim resident sent back by another province")
    found_at: Moment = Field(description="when the person was found (inbound: received); not in the future")
    found_place_code: str = Field(pattern=JATIM_PLACE_PATTERN, description="region code in Jawa Timur, regency or finer, e.g. 35.78 or 35.78.01")
    found_place_note: str | None = text(300, default=None, description="terminal, station, street...")
    referred_by: Referrer
    sending_province_code: str | None = Field(default=None, pattern=PROVINCE_PATTERN, description="inbound only: the province that sent the person back")
    documents: Documents
    photo_ref: str | None = text(300, default=None, description="reference of the photo in the document store")
    cause: Cause
    suspected_trafficking: bool = Field(default=False, description="raise the trafficking flag (always raised when the cause is suspected_trafficking)")
    health_note: str | None = text(1000, default=None)
    name: str = text(200, visible=1)
    birth_date: BirthDate | None = Field(default=None, description="not in the future")
    sex: Sex
    origin_code: str | None = Field(default=None, pattern=REGION_PATTERN, description="claimed home region, any province")
    nik: str | None = Field(default=None, pattern=r"^[0-9]{16}$", description="16-digit NIK if known (spaces between digits are ignored): checked and hashed, never stored")
    destination_code: str | None = Field(default=None, pattern=REGION_PATTERN, description="where the person goes home to, if already known")

    @field_validator("nik", mode="before")
    @classmethod
    def _strip_spaces(cls, v: Any) -> Any:
        return "".join(v.split()) if isinstance(v, str) else v


class DestinationIn(_In):
    destination_code: str = Field(pattern=REGION_PATTERN, description="region code; a Jawa Timur destination needs its regency or city")
    family_contact_name: str | None = text(200, default=None)
    family_contact_phone: str | None = Field(default=None, pattern=PHONE_PATTERN)
    family_relationship: str | None = text(100, default=None)


class VerificationIn(_In):
    note: str | None = text(1000, default=None, description="who was contacted, what was confirmed")


class CareStayIn(_In):
    facility_type: Facility
    facility_name: str = text(200, visible=1)
    admitted_on: Day = Field(description="not before the person was found, not in the future")


class CareStayEnd(_In):
    left_on: Day = Field(description="not before the admission, not in the future")


class CounsellingIn(_In):
    held_on: Day = Field(description="while in care, not in the future")
    counsellor: str = text(200, visible=1)
    topic: str = text(200, visible=1)
    note: str | None = text(2000, default=None)


class LegPlanIn(_In):
    mode: Mode
    ticket_cost: int = Field(ge=0, le=MAX_TICKET_COST, description="whole rupiah")
    escort: str | None = text(200, default=None)
    departure_at: Moment = Field(description="scheduled departure (for a ship: the ship's schedule)")


class ScheduleIn(_In):
    legs: list[LegPlanIn] = Field(min_length=1, max_length=MAX_LEGS, description="one entry per leg of the planned route, in order")


class DepartureIn(_In):
    departed_at: Moment = Field(description="not in the future, not before the person was found")


class HandoverIn(_In):
    handed_over_at: Moment = Field(description="not in the future, not before the leg departed")
    handover_document_no: str = text(100, visible=1)
    received_by: str = text(200, visible=1, description="officer of the receiving Dinsos")


class RefusalIn(_In):
    refused_by: Literal["family", "home_government"]
    reason: str = text(1000, visible=3)


class UnresolvedIn(_In):
    reason: str = text(1000, visible=3)


class HolidayIn(_In):
    name: str = text(200, visible=1)


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
