"""Request and response models of the programmes and enrolment API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..fields import Rupiah, Version
from .domain import CODE_PATTERN, ProgrammeRules

EndReason = Literal["death", "graduation", "moved", "no_longer_eligible", "other"]
Status = Literal["proposed", "verified", "active", "suspended", "rejected", "ended"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _ProgrammeFields(_In):
    name: str = Field(min_length=2, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    rules: ProgrammeRules = Field(default_factory=ProgrammeRules)
    amount_per_stage: Rupiah | None = Field(default=None, description="whole rupiah per payment stage; null when set per round")
    provincial: bool = Field(default=False, description="funded by the province: no person may hold two provincial programmes at once")
    active: bool = Field(default=True, description="open to new enrolments and approvals")


class ProgrammeIn(_ProgrammeFields):
    code: str = Field(pattern=CODE_PATTERN, description="stable code, upper case (PKH_PLUS, ASPD...)")


class ProgrammeUpdate(_ProgrammeFields):
    """The whole entry again (a replacement), with the version you read."""

    version: Version


class ProgrammeOut(BaseModel):
    code: str
    name: str
    description: str | None
    rules: ProgrammeRules
    amount_per_stage: int | None
    provincial: bool
    active: bool
    version: int
    created_at: datetime
    updated_at: datetime


class ProgrammeAuditOut(BaseModel):
    id: int
    at: datetime
    subject: str
    acting_user: str | None
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any]


class EnrolmentIn(_In):
    person_id: uuid.UUID
    programme_code: str = Field(pattern=CODE_PATTERN, description="a programme code of the catalogue")


class _Versioned(_In):
    version: Version | None = Field(default=None, description="the version you read; when given, a stale one is refused with 409")


class VerifyIn(_Versioned):
    pass


class ApproveIn(_Versioned):
    active_from: date | None = Field(default=None, description="payable from this day; today when left out, never in the past")


class RejectIn(_Versioned):
    reason: str = Field(min_length=3, max_length=1000)


class SuspendIn(_Versioned):
    reason: str = Field(min_length=3, max_length=1000)


class ResumeIn(_Versioned):
    pass


class EndIn(_Versioned):
    reason: EndReason
    ended_on: date | None = Field(default=None, description="today when left out")


class EnrolmentOut(BaseModel):
    id: uuid.UUID
    person_id: uuid.UUID
    programme_code: str
    household_id: uuid.UUID | None
    regency_code: str | None
    status: Status
    proposed_by: str
    proposed_at: datetime
    verified_by: str | None
    verified_at: datetime | None
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None
    active_from: date | None
    suspend_reason: str | None
    ended_on: date | None
    end_reason: str | None
    ended_by: str | None
    version: int
    updated_at: datetime
    allowed_actions: list[str] = Field(description="lifecycle actions possible from this status")


class EnrolmentPage(BaseModel):
    items: list[EnrolmentOut]
    next_cursor: str | None
