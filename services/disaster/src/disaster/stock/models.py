"""Tables of the buffer stock: warehouses, the item catalogue, lots, minimum levels and
alerts, receipts, requests and their shipments, distributions, and the movement ledger.

Stock lives in lots; ``stock_lot.quantity >= 0`` is a CHECK constraint, and every
command that takes stock locks the lots it draws from first, so racing shipments queue
and the loser is refused instead of driving a lot negative.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, ForeignKey, Identity, Index, func, text
from sqlmodel import Field

from ..base import Model


def _now() -> datetime:
    return datetime.now(UTC)


def _ts(**kw) -> Column:
    return Column(DateTime(timezone=True), nullable=kw.get("nullable", False), server_default=None if kw.get("nullable") else func.now())


class Warehouse(Model, table=True):
    __tablename__ = "warehouse"
    __table_args__ = (
        CheckConstraint("level IN ('province','regency','field')", name="warehouse_level"),
        CheckConstraint("level = 'province' OR regency_code IS NOT NULL", name="warehouse_regency"),
        CheckConstraint("level <> 'field' OR incident_id IS NOT NULL", name="warehouse_field_incident"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    code: str = Field(unique=True)
    name: str
    level: str
    regency_code: str | None = None
    incident_id: uuid.UUID | None = Field(default=None, sa_column=Column(ForeignKey("incident.id")))
    active: bool = True
    created_at: datetime = Field(default_factory=_now, sa_column=_ts())


class Item(Model, table=True):
    """One kind of goods in the catalogue; quantities are whole units (kg for rice)."""

    __tablename__ = "item"

    code: str = Field(primary_key=True)
    name: str
    unit: str
    perishable: bool = False  # lots need an expiry date
    assistive: bool = False  # handed to a named registry person
    created_at: datetime = Field(default_factory=_now, sa_column=_ts())


class StockLot(Model, table=True):
    __tablename__ = "stock_lot"
    __table_args__ = (
        CheckConstraint("quantity >= 0", name="lot_not_negative"),
        CheckConstraint("quantity <= received_quantity", name="lot_within_received"),
        Index("ix_lot_fefo", "warehouse_id", "item_code", "expires_on", "id", postgresql_where=text("quantity > 0")),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    warehouse_id: uuid.UUID = Field(sa_column=Column(ForeignKey("warehouse.id"), nullable=False))
    item_code: str = Field(sa_column=Column(ForeignKey("item.code"), nullable=False))
    expires_on: date | None = None
    quantity: int = Field(sa_column=Column(BigInteger, nullable=False))
    received_quantity: int = Field(sa_column=Column(BigInteger, nullable=False))
    receipt_id: uuid.UUID | None = None
    request_id: uuid.UUID | None = None  # lots that arrived by a shipment
    created_at: datetime = Field(default_factory=_now, sa_column=_ts())


class StockMinimum(Model, table=True):
    __tablename__ = "stock_minimum"
    __table_args__ = (CheckConstraint("minimum >= 0", name="minimum_not_negative"),)

    warehouse_id: uuid.UUID = Field(sa_column=Column(ForeignKey("warehouse.id"), primary_key=True))
    item_code: str = Field(sa_column=Column(ForeignKey("item.code"), primary_key=True))
    minimum: int = Field(sa_column=Column(BigInteger, nullable=False))


class StockAlert(Model, table=True):
    """Raised when stock falls below the minimum; resolved when receipts lift it back."""

    __tablename__ = "stock_alert"
    __table_args__ = (
        Index("ux_alert_open", "warehouse_id", "item_code", unique=True, postgresql_where=text("resolved_at IS NULL")),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    warehouse_id: uuid.UUID = Field(sa_column=Column(ForeignKey("warehouse.id"), nullable=False))
    item_code: str
    on_hand: int = Field(sa_column=Column(BigInteger, nullable=False))
    minimum: int = Field(sa_column=Column(BigInteger, nullable=False))
    raised_at: datetime = Field(default_factory=_now, sa_column=_ts())
    resolved_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class Receipt(Model, table=True):
    __tablename__ = "stock_receipt"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    warehouse_id: uuid.UUID = Field(sa_column=Column(ForeignKey("warehouse.id"), nullable=False, index=True))
    received_on: date
    source: str
    reference: str | None = None
    received_by: str
    created_at: datetime = Field(default_factory=_now, sa_column=_ts())


class StockRequest(Model, table=True):
    __tablename__ = "stock_request"
    __table_args__ = (
        CheckConstraint("status IN ('draft','approved','shipped','received','cancelled')", name="request_status"),
        CheckConstraint("from_warehouse_id <> to_warehouse_id", name="request_two_warehouses"),
        # Four eyes in the data: nobody approves their own request, whatever the case of the name.
        CheckConstraint("approved_by IS NULL OR lower(approved_by) <> lower(requested_by)", name="request_four_eyes"),
        CheckConstraint("status IN ('draft','cancelled') OR approved_by IS NOT NULL", name="request_approved"),
        Index("ix_request_incident", "incident_id", "status"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    incident_id: uuid.UUID = Field(sa_column=Column(ForeignKey("incident.id"), nullable=False))
    from_warehouse_id: uuid.UUID = Field(sa_column=Column(ForeignKey("warehouse.id"), nullable=False))
    to_warehouse_id: uuid.UUID = Field(sa_column=Column(ForeignKey("warehouse.id"), nullable=False))
    status: str = "draft"
    note: str | None = None
    requested_by: str
    approved_by: str | None = None
    approved_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    shipped_by: str | None = None
    shipped_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    received_by: str | None = None
    received_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    cancel_reason: str | None = None
    version: int = 1
    created_at: datetime = Field(default_factory=_now, sa_column=_ts())


class RequestLine(Model, table=True):
    __tablename__ = "stock_request_line"
    __table_args__ = (CheckConstraint("quantity > 0", name="request_line_quantity"),)

    request_id: uuid.UUID = Field(sa_column=Column(ForeignKey("stock_request.id"), primary_key=True))
    item_code: str = Field(sa_column=Column(ForeignKey("item.code"), primary_key=True))
    quantity: int = Field(sa_column=Column(BigInteger, nullable=False))


class ShipmentLine(Model, table=True):
    """Which lot a shipped quantity came from (first expiring first)."""

    __tablename__ = "shipment_line"
    __table_args__ = (CheckConstraint("quantity > 0", name="shipment_line_quantity"),)

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    request_id: uuid.UUID = Field(sa_column=Column(ForeignKey("stock_request.id"), nullable=False, index=True))
    lot_id: uuid.UUID = Field(sa_column=Column(ForeignKey("stock_lot.id"), nullable=False))
    item_code: str
    expires_on: date | None = None
    quantity: int = Field(sa_column=Column(BigInteger, nullable=False))


class Distribution(Model, table=True):
    """Goods handed to one recipient: an affected person, a household or an evacuation point."""

    __tablename__ = "distribution"
    __table_args__ = (
        CheckConstraint("num_nonnulls(affected_person_id, household_id, evacuation_point_id) = 1", name="distribution_one_recipient"),
        Index("ix_distribution_incident", "incident_id", "distributed_on"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    incident_id: uuid.UUID = Field(sa_column=Column(ForeignKey("incident.id"), nullable=False))
    warehouse_id: uuid.UUID = Field(sa_column=Column(ForeignKey("warehouse.id"), nullable=False))
    regency_code: str | None = None
    affected_person_id: uuid.UUID | None = Field(default=None, sa_column=Column(ForeignKey("affected_person.id")))
    household_id: uuid.UUID | None = Field(default=None, sa_column=Column(ForeignKey("affected_household.id")))
    evacuation_point_id: uuid.UUID | None = Field(default=None, sa_column=Column(ForeignKey("evacuation_point.id")))
    person_id: uuid.UUID | None = Field(default=None, index=True)  # the registry person, when known
    distributed_on: date
    recorded_by: str
    created_at: datetime = Field(default_factory=_now, sa_column=_ts())


class DistributionLine(Model, table=True):
    __tablename__ = "distribution_line"
    __table_args__ = (CheckConstraint("quantity > 0", name="distribution_line_quantity"),)

    distribution_id: uuid.UUID = Field(sa_column=Column(ForeignKey("distribution.id"), primary_key=True))
    item_code: str = Field(sa_column=Column(ForeignKey("item.code"), primary_key=True))
    quantity: int = Field(sa_column=Column(BigInteger, nullable=False))


class AssistiveDevice(Model, table=True):
    """An assistive device (wheelchair, crutches...) handed to a registry person."""

    __tablename__ = "assistive_device"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    person_id: uuid.UUID = Field(index=True)
    item_code: str = Field(sa_column=Column(ForeignKey("item.code"), nullable=False))
    quantity: int
    distribution_id: uuid.UUID = Field(sa_column=Column(ForeignKey("distribution.id"), nullable=False))
    given_on: date


class StockMovement(Model, table=True):
    """The ledger: every change of a lot's quantity, signed."""

    __tablename__ = "stock_movement"
    __table_args__ = (
        CheckConstraint("kind IN ('receipt','shipment_out','shipment_in','distribution')", name="movement_kind"),
        CheckConstraint("delta <> 0", name="movement_delta"),
        Index("ix_movement_warehouse_item", "warehouse_id", "item_code", "at"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    lot_id: uuid.UUID = Field(sa_column=Column(ForeignKey("stock_lot.id"), nullable=False))
    warehouse_id: uuid.UUID
    item_code: str
    delta: int = Field(sa_column=Column(BigInteger, nullable=False))
    kind: str
    request_id: uuid.UUID | None = None
    distribution_id: uuid.UUID | None = None
    receipt_id: uuid.UUID | None = None
    at: datetime = Field(default_factory=_now, sa_column=_ts())
