"""Tables of the homeless-return service (SQLModel). The kernel's outbox, inbox and
idempotency tables are created by the first migration."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import CheckConstraint, Column, DateTime, ForeignKey, Index, LargeBinary, UniqueConstraint, func
from sqlmodel import Field

from pilar_kernel.db import new_table_base

# The service's tables have a metadata of their own (see pilar_kernel.db.new_table_base).
Table = new_table_base("HomelessReturnTable")
metadata = Table.metadata


def _created():
    # No Python default: the INSERT leaves the column out and the server fills it in.
    return Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


def _when():
    return Field(default=None, sa_column=Column(DateTime(timezone=True)))


class ReturnCase(Table, table=True):
    """One stranded person's way home, from the report to the last handover."""

    __tablename__ = "return_case"
    __table_args__ = (
        CheckConstraint(
            "status IN ('reported','in_care','verified','scheduled','in_transit','returned','refused','unresolved')",
            name="return_case_status",
        ),
        CheckConstraint("direction IN ('outbound','inbound')", name="return_case_direction"),
        CheckConstraint("sex IN ('M','F')", name="return_case_sex"),
        # Within the years the API accepts (migration 0003): never +-infinity.
        CheckConstraint("found_at >= '1999-12-31T00:00:00Z' AND found_at <= '2100-01-02T00:00:00Z'", name="return_case_found_at"),
        Index("ix_return_case_created", "created_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    status: str = Field(default="reported", index=True)
    direction: str
    version: int = 1
    # Where and when the person was found (or, inbound, received in Jawa Timur).
    found_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    found_place_code: str
    found_regency_code: str | None = None
    found_place_note: str | None = None
    referred_by: str
    sending_province_code: str | None = None
    documents: str
    photo_ref: str | None = None
    cause: str
    health_note_enc: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    suspected_trafficking: bool = False
    repeat_claimant: bool = False
    previous_return_id: uuid.UUID | None = None
    # Identity as claimed; personal fields are encrypted (see privacy.py). The NIK itself
    # is never stored: only its platform hash.
    name_enc: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    identity_index: str | None = Field(default=None, index=True)
    birth_date: date | None = None
    sex: str
    origin_code: str | None = None
    nik_hash: str | None = Field(default=None, index=True)
    person_id: uuid.UUID | None = Field(default=None, index=True)
    intake_by: str
    departure_due_on: date
    # Destination and its verification.
    destination_code: str | None = None
    destination_province_code: str | None = Field(default=None, index=True)
    destination_regency_code: str | None = Field(default=None, index=True)
    family_contact_name_enc: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    family_contact_phone_enc: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    family_relationship: str | None = None
    verified_at: datetime | None = _when()
    verified_by: str | None = None
    verification_note: str | None = None
    # The trip.
    departed_at: datetime | None = _when()
    within_standard: bool | None = None
    returned_at: datetime | None = _when()
    # Refused or unresolved.
    closed_at: datetime | None = _when()
    refused_by: str | None = None
    close_reason: str | None = None
    created_at: datetime = _created()
    updated_at: datetime = _created()


class CareStay(Table, table=True):
    """A stay in a shelter or UPT while the return is prepared."""

    __tablename__ = "care_stay"
    __table_args__ = (
        CheckConstraint("facility_type IN ('shelter','upt')", name="care_stay_facility"),
        CheckConstraint("left_on IS NULL OR left_on >= admitted_on", name="care_stay_dates"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    return_id: uuid.UUID = Field(sa_column=Column(ForeignKey("return_case.id"), nullable=False, index=True))
    facility_type: str
    facility_name: str
    admitted_on: date
    left_on: date | None = None
    created_at: datetime = _created()


class CounsellingSession(Table, table=True):
    """A counselling session (the "teredukasi" of Simlontar Rek)."""

    __tablename__ = "counselling_session"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    return_id: uuid.UUID = Field(sa_column=Column(ForeignKey("return_case.id"), nullable=False, index=True))
    held_on: date
    counsellor: str
    topic: str
    note: str | None = None
    created_at: datetime = _created()


class ReturnLeg(Table, table=True):
    """One leg of the trip, ending in a handover to the receiving Dinsos."""

    __tablename__ = "return_leg"
    __table_args__ = (
        UniqueConstraint("return_id", "seq", name="return_leg_seq"),
        CheckConstraint("mode IN ('bus','train','ship')", name="return_leg_mode"),
        CheckConstraint("status IN ('planned','departed','handed_over')", name="return_leg_status"),
        CheckConstraint("ticket_cost >= 0", name="return_leg_cost"),
        CheckConstraint("departure_at >= '1999-12-31T00:00:00Z' AND departure_at <= '2100-01-02T00:00:00Z'", name="return_leg_departure_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    return_id: uuid.UUID = Field(sa_column=Column(ForeignKey("return_case.id"), nullable=False, index=True))
    seq: int
    from_code: str
    to_code: str
    receiving_office: str
    mode: str
    ticket_cost: int
    escort: str | None = None
    departure_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    status: str = "planned"
    departed_at: datetime | None = _when()
    handed_over_at: datetime | None = _when()
    handover_document_no: str | None = None
    received_by: str | None = None


class Holiday(Table, table=True):
    """A dated day off (moving feasts, cuti bersama); yearly fixed ones are settings."""

    __tablename__ = "holiday"

    day: date = Field(primary_key=True)
    name: str


class KnownPerson(Table, table=True):
    """Projection of the registry's persons: enough to match a NIK hash to a person id."""

    __tablename__ = "known_person"
    __table_args__ = (CheckConstraint("status IN ('active','deceased','merged')", name="known_person_status"),)

    person_id: uuid.UUID = Field(primary_key=True)
    nik_hash: str | None = Field(default=None, index=True)
    status: str = "active"
    merged_into: uuid.UUID | None = None
    updated_at: datetime = _created()
