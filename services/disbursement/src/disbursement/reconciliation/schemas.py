"""Response models of statements and round totals."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

LineOutcome = Literal["matched", "amount_mismatch", "status_mismatch", "unmatched", "duplicate"]


class StatementOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    account: str | None
    imported_by: str
    imported_at: datetime
    line_count: int
    matched: int
    amount_mismatch: int
    status_mismatch: int
    unmatched: int
    duplicate: int


class StatementLineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    line_no: int
    value_date: date | None
    bank_reference: str | None
    instruction_id: str | None
    direction: Literal["debit", "credit", "failure"]
    amount: int
    payment_id: uuid.UUID | None
    round_id: uuid.UUID | None
    expected_amount: int | None
    outcome: LineOutcome
    note: str | None


class StatementLinePage(BaseModel):
    items: list[StatementLineOut]
    next_cursor: str | None


class RoundTotals(BaseModel):
    round_id: uuid.UUID
    status: str
    region: str | None = Field(description="the regency/city these figures are of; null: the whole round")
    budget_scope: Literal["round", "region"] = Field(
        description="round: ceiling, committed and remaining budget are the round's (province-wide clients); "
                    "region: committed is the region's payments, and the round-wide ceiling and remaining budget are not shown")
    ceiling: int | None = Field(description="the round's ceiling (null for a regency office)")
    committed: int = Field(description="amounts of the payments that are not cancelled (of the region, for a regency office)")
    remaining_budget: int | None = Field(description="ceiling - committed of the round (null for a regency office)")
    planned_count: int
    planned_amount: int
    payment_count: int
    queued_count: int
    queued_amount: int
    sent_count: int
    sent_amount: int
    paid_count: int
    paid_amount: int
    failed_count: int
    failed_amount: int
    returned_count: int
    returned_amount: int
    cancelled_count: int
    cancelled_amount: int
    reconciled_count: int
    retried_count: int
    net_paid_amount: int
