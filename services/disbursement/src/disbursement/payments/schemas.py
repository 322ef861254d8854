"""Request and response models of payments, the bank callback and the post office's files."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from pilar_kernel.types import PositiveInt32

from ..rounds.schemas import TEXT_PATTERN

Channel = Literal["bank", "post"]
PaymentStatus = Literal["created", "sent", "succeeded", "failed", "cancelled", "returned"]
SettlementStatus = Literal["proposed", "applied", "superseded", "rejected"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AttemptOut(BaseModel):
    attempt: int
    channel: Channel
    sent_at: datetime
    outcome: Literal["succeeded", "failed", "returned"] | None
    reason: str | None
    reference: str | None
    reported_at: datetime | None
    anomaly: str | None
    status_checks: int = Field(default=0, description="how often the bank was asked about this attempt (its result never came)")
    status_checked_at: datetime | None = None
    status_note: str | None = None


class PaymentOut(BaseModel):
    id: uuid.UUID
    round_id: uuid.UUID
    person_id: uuid.UUID
    nik_hash: str | None
    regency_code: str | None
    programme_code: str
    year: int
    stage: int
    amount: int
    channel: Channel
    status: PaymentStatus
    attempt: int
    failure_reason: str | None
    cancel_reason: str | None
    bank_reference: str | None
    returned_amount: int | None
    return_reason: str | None
    sent_at: datetime | None
    settled_at: datetime | None
    returned_at: datetime | None
    reconciled_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime
    attempts: list[AttemptOut] | None = None


class PaymentPage(BaseModel):
    items: list[PaymentOut]
    next_cursor: str | None


class RetryIn(_In):
    channel: Channel | None = Field(default=None, description="re-route to this channel; by default the same one")


class RetryFailedIn(_In):
    channel: Channel | None = None
    reasons: list[Annotated[str, Field(max_length=500, pattern=TEXT_PATTERN)]] | None = Field(
        default=None, max_length=50, description="only payments that failed for one of these reasons")


class CancelIn(_In):
    reason: str = Field(min_length=5, max_length=500, pattern=TEXT_PATTERN)


class BankResult(_In):
    payment_id: uuid.UUID
    attempt: PositiveInt32
    status: Literal["succeeded", "failed", "returned"]
    reason: str | None = Field(default=None, max_length=500, pattern=TEXT_PATTERN)
    reference: str | None = Field(default=None, max_length=100, pattern=TEXT_PATTERN, description="the bank's transaction reference")
    at: datetime | None = None
    returned_amount: int | None = Field(default=None, gt=0, le=10**15)


class BankCallbackIn(_In):
    batch_id: str | None = Field(default=None, max_length=100, pattern=TEXT_PATTERN)
    results: list[BankResult] = Field(min_length=1, max_length=5000)


class ReportSummary(BaseModel):
    applied: int
    duplicates: int
    stale: int
    anomalies: int
    duplicate_delivery: bool = False
    lines: int | None = None


class PostExportOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    round_id: uuid.UUID
    instruction_count: int
    total_amount: int
    created_by: str
    created_at: datetime
    results_imported: int
    last_import_at: datetime | None


class SettlementIn(_In):
    outcome: Literal["succeeded", "failed"] = Field(description="what became of the payment: paid, or not paid (it can then be retried)")
    reason: str = Field(min_length=10, max_length=500, pattern=TEXT_PATTERN,
                        description="the evidence: the bank's letter, the statement line, the call...")
    bank_reference: str | None = Field(default=None, max_length=100, pattern=TEXT_PATTERN,
                                       description="the bank's transaction reference, when paid")


class SettlementApproveIn(_In):
    note: str | None = Field(default=None, max_length=500, pattern=TEXT_PATTERN)


class SettlementRejectIn(_In):
    note: str = Field(min_length=5, max_length=500, pattern=TEXT_PATTERN, description="why it is turned down (or withdrawn)")


class SettlementOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    payment_id: uuid.UUID
    attempt: int
    outcome: Literal["succeeded", "failed"]
    reason: str
    bank_reference: str | None
    status: SettlementStatus
    proposed_by: str
    proposed_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_note: str | None
    result: str | None
