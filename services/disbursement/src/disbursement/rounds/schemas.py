"""Request and response models of programmes, budgets and rounds."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from pilar_kernel.types import NonNegativeInt32, PositiveInt32

CODE_PATTERN = r"^[A-Z][A-Z0-9_]{1,31}$"
# Free text kept in the database: no NUL, no other control character than tab and newline.
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
YEAR_MIN, YEAR_MAX = 2020, 2100  # budget years this service plans
Year = Annotated[int, Field(ge=YEAR_MIN, le=YEAR_MAX, description="a budget year")]
ProgrammeCode = Annotated[str, Field(pattern=CODE_PATTERN)]
MAX_AMOUNT, MAX_CEILING = 10**12, 10**15  # whole rupiah per beneficiary, per round (and per year)
Channel = Literal["bank", "post"]
RoundStatus = Literal["draft", "snapshot", "approved", "disbursing", "closed", "cancelled"]
Reason = Literal["deceased", "merged", "not_active", "already_paid", "exclusive_programme", "over_budget"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProgrammeIn(_In):
    code: str = Field(pattern=CODE_PATTERN)
    name: str = Field(min_length=3, max_length=200, pattern=TEXT_PATTERN)
    provincial: bool = False
    exclusive_with: list[ProgrammeCode] = Field(default_factory=list, max_length=50,
                                                description="codes of programmes nobody may receive in an overlapping period")
    default_channel: Channel = "bank"


class ProgrammeUpdate(_In):
    name: str = Field(min_length=3, max_length=200, pattern=TEXT_PATTERN)
    provincial: bool
    exclusive_with: list[ProgrammeCode] = Field(max_length=50)
    default_channel: Channel
    version: PositiveInt32


class BudgetIn(_In):
    amount: int = Field(gt=0, le=MAX_CEILING, description="whole rupiah for the year")
    version: PositiveInt32 | None = Field(default=None, description="the version you read, when changing an existing budget")


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
    year: Year
    stage: int = Field(ge=1, le=12, description="the tahap within the year")
    name: str | None = Field(default=None, min_length=1, max_length=200, pattern=TEXT_PATTERN)
    amount: int = Field(gt=0, le=MAX_AMOUNT, description="whole rupiah per beneficiary")
    ceiling: int = Field(gt=0, le=MAX_CEILING, description="the most this round may pay in total, whole rupiah")
    period_start: date
    period_end: date
    channel: Channel | None = Field(default=None, description="defaults to the programme's channel")


class RoundPatch(_In):
    version: PositiveInt32
    name: str | None = Field(default=None, min_length=1, max_length=200, pattern=TEXT_PATTERN)
    amount: int | None = Field(default=None, gt=0, le=MAX_AMOUNT)
    ceiling: int | None = Field(default=None, gt=0, le=MAX_CEILING)
    period_start: date | None = None
    period_end: date | None = None
    channel: Channel | None = None


class ApproveIn(_In):
    sk_number: str = Field(min_length=3, max_length=100, pattern=TEXT_PATTERN, description="number of the decree (SK) that approves the payees")
    snapshot_version: NonNegativeInt32 = Field(description="the snapshot version you reviewed")


class PayeeIn(_In):
    person_id: uuid.UUID
    note: str = Field(min_length=5, max_length=500, pattern=TEXT_PATTERN, description="why the person is added (e.g. the late approval's letter)")


class CancelRoundIn(_In):
    reason: str = Field(min_length=5, max_length=500, pattern=TEXT_PATTERN)


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
