"""Request and response models of programmes, budgets and rounds."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CODE_PATTERN = r"^[A-Z][A-Z0-9_]{1,31}$"
Channel = Literal["bank", "post"]
RoundStatus = Literal["draft", "snapshot", "approved", "disbursing", "closed", "cancelled"]
Reason = Literal["deceased", "merged", "not_active", "already_paid", "exclusive_programme", "over_budget"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProgrammeIn(_In):
    code: str = Field(pattern=CODE_PATTERN)
    name: str = Field(min_length=3, max_length=200)
    provincial: bool = False
    exclusive_with: list[str] = Field(default_factory=list, description="codes of programmes nobody may receive in an overlapping period")
    default_channel: Channel = "bank"


class ProgrammeUpdate(_In):
    name: str = Field(min_length=3, max_length=200)
    provincial: bool
    exclusive_with: list[str]
    default_channel: Channel
    version: int


class BudgetIn(_In):
    amount: int = Field(gt=0, le=10**15, description="whole rupiah for the year")
    version: int | None = Field(default=None, description="the version you read, when changing an existing budget")


class BudgetOut(BaseModel):
    year: int
    amount: int
    allocated: int
    remaining: int
    version: int


class ProgrammeOut(BaseModel):
    code: str
    name: str
    provincial: bool
    exclusive_with: list[str]
    default_channel: Channel
    version: int
    budgets: list[BudgetOut]


class RoundIn(_In):
    programme_code: str = Field(pattern=CODE_PATTERN)
    year: int = Field(ge=2020, le=2100)
    stage: int = Field(ge=1, le=12, description="the tahap within the year")
    name: str | None = Field(default=None, max_length=200)
    amount: int = Field(gt=0, le=10**12, description="whole rupiah per beneficiary")
    ceiling: int = Field(gt=0, le=10**15, description="the most this round may pay in total, whole rupiah")
    period_start: date
    period_end: date
    channel: Channel | None = Field(default=None, description="defaults to the programme's channel")


class RoundPatch(_In):
    version: int
    name: str | None = Field(default=None, max_length=200)
    amount: int | None = Field(default=None, gt=0, le=10**12)
    ceiling: int | None = Field(default=None, gt=0, le=10**15)
    period_start: date | None = None
    period_end: date | None = None
    channel: Channel | None = None


class ApproveIn(_In):
    sk_number: str = Field(min_length=3, max_length=100, description="number of the decree (SK) that approves the payees")
    snapshot_version: int = Field(description="the snapshot version you reviewed")


class PayeeIn(_In):
    person_id: uuid.UUID
    note: str = Field(min_length=5, max_length=500, description="why the person is added (e.g. the late approval's letter)")


class CancelRoundIn(_In):
    reason: str = Field(min_length=5, max_length=500)


class RoundOut(BaseModel):
    id: uuid.UUID
    programme_code: str
    year: int
    stage: int
    name: str
    amount: int
    ceiling: int
    period_start: date
    period_end: date
    channel: Channel
    status: RoundStatus
    created_by: str
    created_at: datetime
    prepared_by: str | None
    snapshot_version: int
    snapshot_at: datetime | None
    payee_count: int
    planned_amount: int
    approved_by: str | None
    approved_at: datetime | None
    sk_number: str | None
    disbursing_at: datetime | None
    closed_by: str | None
    closed_at: datetime | None
    cancel_reason: str | None
    committed: int = Field(description="the amounts of the round's payments that are not cancelled")
    remaining_budget: int = Field(description="ceiling - committed")
    version: int


class RoundPage(BaseModel):
    items: list[RoundOut]
    next_cursor: str | None


class SnapshotOut(BaseModel):
    round_id: uuid.UUID
    snapshot_version: int
    taken_at: datetime | None
    prepared_by: str | None
    region: str | None
    payees: int
    planned_amount: int
    excluded: dict[str, int]


class EntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    person_id: uuid.UUID
    nik_hash: str | None
    regency_code: str | None
    enrolment_id: uuid.UUID | None
    outcome: Literal["payee", "excluded"]
    reason: Reason | None
    detail: str | None
    amount: int | None
    source: Literal["snapshot", "addition"]
    added_by: str | None
    note: str | None
    added_at: datetime


class EntryPage(BaseModel):
    items: list[EntryOut]
    next_cursor: str | None
