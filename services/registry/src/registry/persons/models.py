"""Tables of persons, households and the PII access log."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import ARRAY, BigInteger, CheckConstraint, Column, DateTime, ForeignKey, Identity, Index, LargeBinary, Text, func, text
from sqlmodel import Field

from ..tables import Table


class Person(Table, table=True):
    __tablename__ = "person"
    __table_args__ = (
        CheckConstraint("status IN ('active','deceased','moved_out','merged')", name="person_status"),
        CheckConstraint("sex IN ('M','F')", name="person_sex"),
        CheckConstraint("decile IS NULL OR decile BETWEEN 1 AND 10", name="person_decile"),
        CheckConstraint("nik_hash IS NOT NULL OR provisional_id IS NOT NULL", name="person_identified"),
        Index("ix_person_name_trgm", "name_norm", postgresql_using="gin", postgresql_ops={"name_norm": "gin_trgm_ops"}),
        Index("ix_person_regency_created", "regency_code", "created_at", "id"),
        Index("ix_person_created", "created_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # Exactly one record per NIK: the unique blind index is what makes concurrent
    # registrations of one NIK end with one winner.
    nik_hash: str | None = Field(default=None, unique=True)
    nik_enc: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    provisional_id: str | None = Field(default=None, unique=True)
    pii_key_id: str | None = None
    name: str
    name_norm: str
    birth_place: str | None = None
    birth_date: date | None = Field(default=None, index=True)
    sex: str
    village_code: str | None = None
    district_code: str | None = Field(default=None, index=True)
    regency_code: str | None = None
    rt: str | None = None
    rw: str | None = None
    street: str | None = None
    phone_enc: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    phone_index: str | None = Field(default=None, index=True)
    disability_type: str | None = None
    disability_severity: str | None = None
    ppks: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(Text), nullable=False, server_default="{}"))
    decile: int | None = None
    decile_date: date | None = None
    occupation: str | None = None
    employer: str | None = None
    status: str = Field(default="active", index=True)
    deceased_date: date | None = None
    merged_into: uuid.UUID | None = Field(default=None, foreign_key="person.id")
    # Last known domicile outside the province (moved out) or as reported by other services.
    domicile_note: str | None = None
    version: int = 1
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class Household(Table, table=True):
    __tablename__ = "household"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    kk_number: str = Field(unique=True)
    regency_code: str | None = Field(default=None, index=True)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class HouseholdMember(Table, table=True):
    """Membership over time: ``valid_to`` is null for the current KK of a person."""

    __tablename__ = "household_member"
    __table_args__ = (
        # A person belongs to one KK at a time.
        Index("ux_household_member_current", "person_id", unique=True, postgresql_where=text("valid_to IS NULL")),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    household_id: uuid.UUID = Field(foreign_key="household.id", index=True)
    person_id: uuid.UUID = Field(foreign_key="person.id", index=True)
    relationship: str
    valid_from: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
    valid_to: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class PiiAccess(Table, table=True):
    """Append-only record of every read of unmasked personal data (a trigger forbids changes)."""

    __tablename__ = "pii_access"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
    subject: str
    person_id: uuid.UUID = Field(sa_column=Column(ForeignKey("person.id"), nullable=False, index=True))
    fields: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    reason: str
    correlation_id: str | None = None
