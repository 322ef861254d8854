"""Request and response models of the buffer stock."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..fields import ITEM_CODE_PATTERN, ItemCode, RegencyCode, Text, Version

MAX_LINE = 10_000_000  # units of one item on one line
MAX_MINIMUM = 1_000_000_000  # a minimum level above a billion units is a typing error


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class WarehouseIn(_In):
    code: str = Field(pattern=r"^[A-Za-z0-9._-]{2,40}$")
    name: Text(2, 200)
    level: Literal["province", "regency", "field"]
    regency_code: RegencyCode | None = Field(default=None, description="required for regency and field warehouses")
    incident_id: uuid.UUID | None = Field(default=None, description="the incident a field warehouse serves")


class WarehouseOut(BaseModel):
    id: uuid.UUID
    code: str
    name: str
    level: str
    regency_code: str | None
    incident_id: uuid.UUID | None
    active: bool


class ItemIn(_In):
    code: str = Field(pattern=ITEM_CODE_PATTERN)
    name: Text(2, 200)
    unit: Text(1, 20)
    perishable: bool = False
    assistive: bool = False


class ItemOut(BaseModel):
    code: str
    name: str
    unit: str
    perishable: bool
    assistive: bool


class MinimumIn(_In):
    minimum: int = Field(ge=0, le=MAX_MINIMUM, description="units below which the warehouse raises an alert")


class LineIn(_In):
    item_code: ItemCode
    quantity: int = Field(gt=0, le=MAX_LINE)


class ReceiptLineIn(LineIn):
    expires_on: date | None = None


class ReceiptIn(_In):
    received_on: date
    source: Text(2, 200) = Field(description="e.g. 'APBD 2026', 'Kemensos', 'donation PT X'")
    reference: str | None = Field(default=None, max_length=200)
    lines: list[ReceiptLineIn] = Field(min_length=1, max_length=200)


class ReceiptOut(BaseModel):
    id: uuid.UUID
    warehouse_id: uuid.UUID
    received_on: date
    source: str
    reference: str | None
    lots: list[dict]


class StockLine(BaseModel):
    item_code: str
    on_hand: int
    expired: int
    next_expiry: date | None
    minimum: int | None
    below_minimum: bool


class RequestIn(_In):
    from_warehouse_id: uuid.UUID
    to_warehouse_id: uuid.UUID
    note: str | None = Field(default=None, max_length=2000)
    lines: list[LineIn] = Field(min_length=1, max_length=100)


class ActionIn(_In):
    version: Version


class CancelIn(ActionIn):
    reason: Text(3, 500)


class RequestOut(BaseModel):
    id: uuid.UUID
    incident_id: uuid.UUID
    from_warehouse_id: uuid.UUID
    to_warehouse_id: uuid.UUID
    status: str
    note: str | None
    requested_by: str
    approved_by: str | None
    approved_at: datetime | None
    shipped_by: str | None
    shipped_at: datetime | None
    received_by: str | None
    received_at: datetime | None
    cancel_reason: str | None
    version: int
    lines: list[dict]
    shipment: list[dict]


class DistributionIn(_In):
    warehouse_id: uuid.UUID
    affected_person_id: uuid.UUID | None = None
    household_id: uuid.UUID | None = None
    evacuation_point_id: uuid.UUID | None = None
    person_id: uuid.UUID | None = Field(default=None, description="registry person receiving an assistive device, if not the affected person's")
    distributed_on: date
    lines: list[LineIn] = Field(min_length=1, max_length=50)


class DistributionOut(BaseModel):
    id: uuid.UUID
    incident_id: uuid.UUID
    warehouse_id: uuid.UUID
    affected_person_id: uuid.UUID | None
    household_id: uuid.UUID | None
    evacuation_point_id: uuid.UUID | None
    person_id: uuid.UUID | None
    distributed_on: date
    recorded_by: str
    lines: list[dict]


class AlertOut(BaseModel):
    id: int
    warehouse_id: uuid.UUID
    item_code: str
    on_hand: int
    minimum: int
    raised_at: datetime
    resolved_at: datetime | None
