"""Tables of the rapid assessment and the local copy of the registry's persons.

Neither the raw NIK nor the KK number is stored: only their keyed hashes (``nik_hash`` is
the platform-wide key; the KK is hashed with the same key after a ``KK:`` prefix, so it can
never collide with a NIK's hash).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from sqlalchemy import CheckConstraint, Column, DateTime, ForeignKey, Index, Text, func, text
from sqlalchemy.dialects.postgresql import ARRAY  # PostgreSQL's own: .contains() is the @> operator
from sqlmodel import Field

from ..base import Model


def _now() -> datetime:
    return datetime.now(UTC)


class AffectedHousehold(Model, table=True):
    __tablename__ = "affected_household"
    __table_args__ = (
        CheckConstraint("damage_level IN ('none','light','moderate','heavy')", name="household_damage"),
        CheckConstraint("member_count >= 1", name="household_members"),
        # One record per family card and per registry household in an incident.
        Index("ux_household_kk", "incident_id", "kk_hash", unique=True, postgresql_where=text("kk_hash IS NOT NULL")),
        Index("ux_household_registry", "incident_id", "registry_household_id", unique=True,
              postgresql_where=text("registry_household_id IS NOT NULL")),
        Index("ix_household_incident", "incident_id", "regency_code", "id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    incident_id: uuid.UUID = Field(sa_column=Column(ForeignKey("incident.id"), nullable=False))
    kk_hash: str | None = None
    registry_household_id: uuid.UUID | None = None
    regency_code: str
    district_code: str
    village_code: str
    damage_level: str
    displaced: bool = False
    member_count: int
    recipient_person_id: uuid.UUID | None = None
    assessed_by: str
    version: int = 1
    assessed_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
    created_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class AffectedPerson(Model, table=True):
    __tablename__ = "affected_person"
    __table_args__ = (
        CheckConstraint("condition IN ('unharmed','injured','missing','dead')", name="person_condition"),
        CheckConstraint("sex IN ('M','F')", name="person_sex"),
        CheckConstraint("vulnerabilities <@ ARRAY['elderly','disabled','child','pregnant']::text[]", name="person_vulnerabilities"),
        Index("ux_person_nik", "incident_id", "nik_hash", unique=True, postgresql_where=text("nik_hash IS NOT NULL")),
        Index("ux_person_registry", "incident_id", "person_id", unique=True, postgresql_where=text("person_id IS NOT NULL")),
        Index("ix_person_incident", "incident_id", "regency_code", "id"),
        Index("ix_person_nik_unmatched", "nik_hash", postgresql_where=text("person_id IS NULL AND nik_hash IS NOT NULL")),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    incident_id: uuid.UUID = Field(sa_column=Column(ForeignKey("incident.id"), nullable=False))
    household_id: uuid.UUID | None = Field(default=None, sa_column=Column(ForeignKey("affected_household.id"), index=True))
    nik_hash: str | None = None
    person_id: uuid.UUID | None = None  # the registry's id, when matched
    name: str
    sex: str
    birth_date: date | None = None
    relationship: str | None = None
    regency_code: str
    district_code: str
    village_code: str
    condition: str = "unharmed"
    displaced: bool = False
    vulnerabilities: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(Text), nullable=False, server_default="{}"))
    evacuation_point_id: uuid.UUID | None = Field(default=None, sa_column=Column(ForeignKey("evacuation_point.id")))
    recorded_by: str
    version: int = 1
    created_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
    updated_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class RegistryPerson(Model, table=True):
    """What the registry announced about a person: enough to match by NIK hash and find the KK."""

    __tablename__ = "registry_person"
    __table_args__ = (CheckConstraint("status IN ('active','deceased','moved_out','merged')", name="registry_person_status"),)

    person_id: uuid.UUID = Field(primary_key=True)
    nik_hash: str | None = Field(default=None, index=True)
    regency_code: str | None = None
    status: str = "active"
    merged_into: uuid.UUID | None = None
    household_id: uuid.UUID | None = Field(default=None, index=True)
    is_head: bool = False
    updated_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class RecipientAssignment(Model, table=True):
    """A household's aid recipient named by hand, under four eyes: one officer proposes a
    registry person with a reason, another confirms. The confirmed row overrides the automatic
    choice; every row stays as the record of who named whom, why, and who agreed."""

    __tablename__ = "recipient_assignment"
    __table_args__ = (
        CheckConstraint("status IN ('proposed','confirmed','withdrawn','superseded')", name="assignment_status"),
        CheckConstraint("status <> 'confirmed' OR (confirmed_by IS NOT NULL AND lower(confirmed_by) <> lower(proposed_by))",
                        name="assignment_four_eyes"),
        # At most one open proposal and one confirmed recipient per household.
        Index("ux_assignment_proposed", "household_id", unique=True, postgresql_where=text("status = 'proposed'")),
        Index("ux_assignment_confirmed", "household_id", unique=True, postgresql_where=text("status = 'confirmed'")),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    household_id: uuid.UUID = Field(sa_column=Column(ForeignKey("affected_household.id"), nullable=False, index=True))
    person_id: uuid.UUID  # the registry person named
    reason: str
    status: str = "proposed"
    proposed_by: str
    proposed_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
    confirmed_by: str | None = None
    decided_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
