"""Tables of the shelter service (SQLModel). The kernel's outbox, inbox and idempotency
tables come from migration 0001; these from 0002, which creates the same tables by hand:
keep the two in step.

Survivor data that identifies or narrates (profile, registry person id, incident narratives,
risk answers, plan goals, service outcomes, notes and reasons) is stored only as AES-GCM
ciphertext (``*_enc``), bound to its row and field. Columns in clear are the coarse facts
that access rules, workflow and statistics need.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ARRAY, BigInteger, Boolean, CheckConstraint, Column, DateTime, Identity, Index, LargeBinary, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field

from pilar_kernel.db import new_table_base

from . import domain


# Base of the shelter's tables, with a metadata of their own (another service has an ``incident`` table).
_Table = new_table_base("ShelterTable")


def _now() -> datetime:
    return datetime.now(UTC)


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _ts(nullable: bool = False) -> Any:
    if nullable:
        return Field(default=None, sa_column=Column(DateTime(timezone=True)))
    return Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


def _blob(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(LargeBinary, nullable=nullable))


class Shelter(_Table, table=True):
    __tablename__ = "shelter"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_in(domain.SHELTER_KINDS)})", name="shelter_kind"),
        # The bed counter never leaves [0, capacity]: the last line of defence in a bed race.
        CheckConstraint("occupied >= 0 AND occupied <= capacity", name="shelter_beds"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(unique=True)
    kind: str
    regency_code: str = Field(index=True)
    capacity: int
    occupied: int = 0
    active: bool = True
    version: int = 1
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class Staff(_Table, table=True):
    """A staff member of one shelter; ``user_id`` is the ``user`` claim of their tokens."""

    __tablename__ = "staff"
    __table_args__ = (
        CheckConstraint(f"role IN ({_in(domain.STAFF_ROLES)})", name="staff_role"),
        # One person, one record, whatever the case of the id (four-eyes rules rely on it).
        Index("staff_user_id_folded", func.lower(text("user_id")), unique=True),
    )

    user_id: str = Field(primary_key=True)
    name: str
    role: str
    shelter_id: uuid.UUID = Field(foreign_key="shelter.id", index=True)
    active: bool = True
    version: int = 1
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class Case(_Table, table=True):
    __tablename__ = "shelter_case"
    __table_args__ = (
        CheckConstraint(f"status IN ({_in(domain.STATUSES)})", name="case_status"),
        CheckConstraint(f"referral_source IN ({_in(domain.REFERRAL_SOURCES)})", name="case_referral_source"),
        CheckConstraint("sex IN ('F','M')", name="case_sex"),
        CheckConstraint(f"closure_reason IS NULL OR closure_reason IN ({_in(domain.CLOSURE_REASONS)})", name="case_closure_reason"),
        CheckConstraint("status <> 'closed' OR (closed_at IS NOT NULL AND closure_reason IS NOT NULL)", name="case_closed"),
        Index("ix_case_shelter_opened", "shelter_id", "opened_at", "id"),
        Index("ix_case_caseworker_opened", "caseworker_id", "opened_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    shelter_id: uuid.UUID = Field(foreign_key="shelter.id")
    caseworker_id: str = Field(foreign_key="staff.user_id")
    status: str = domain.INTAKE
    paused_status: str | None = None  # where a rejected closure request returns to
    child: bool
    sex: str
    regency_code: str  # the survivor's home regency/city: the finest place kept in clear
    referral_source: str
    profile_enc: bytes = _blob(nullable=False)  # name, NIK, birth date, address, phone, guardian, notes
    person_enc: bytes | None = _blob()  # the registry person id, passed on only with consent
    opened_by: str
    opened_at: datetime = _ts()
    closed_at: datetime | None = _ts(nullable=True)
    closure_reason: str | None = None
    version: int = 1
    updated_at: datetime = _ts()


class Assignment(_Table, table=True):
    """Who owned a case when: a transfer ends the current row and starts a new one."""

    __tablename__ = "case_assignment"
    __table_args__ = (Index("ux_case_assignment_current", "case_id", unique=True, postgresql_where=text("ended_at IS NULL")),)

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    case_id: uuid.UUID = Field(foreign_key="shelter_case.id", index=True)
    shelter_id: uuid.UUID = Field(foreign_key="shelter.id")
    caseworker_id: str = Field(foreign_key="staff.user_id")
    assigned_by: str
    reason_enc: bytes | None = _blob()
    started_at: datetime = _ts()
    ended_at: datetime | None = _ts(nullable=True)


class Consent(_Table, table=True):
    """Consent records, append-only: the latest record of a kind is the one in force."""

    __tablename__ = "consent"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_in(domain.CONSENT_KINDS)})", name="consent_kind"),
        CheckConstraint(f"given_by IN ({_in(domain.CONSENT_GIVERS)})", name="consent_given_by"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    case_id: uuid.UUID = Field(foreign_key="shelter_case.id", index=True)
    kind: str
    granted: bool
    given_by: str
    recorded_by: str
    recorded_at: datetime = _ts()


class Incident(_Table, table=True):
    __tablename__ = "incident"
    __table_args__ = (
        CheckConstraint(f"perpetrator_relationship IN ({_in(domain.PERPETRATOR_RELATIONSHIPS)})", name="incident_relationship"),
        CheckConstraint(f"violence_types <@ ARRAY[{_in(domain.VIOLENCE_TYPES)}]::text[] AND cardinality(violence_types) > 0", name="incident_types"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="shelter_case.id", index=True)
    violence_types: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    perpetrator_relationship: str
    occurred_on: date | None = None
    regency_code: str
    narrative_enc: bytes | None = _blob()
    recorded_by: str
    recorded_at: datetime = _ts()


class RiskAssessment(_Table, table=True):
    __tablename__ = "risk_assessment"
    __table_args__ = (CheckConstraint(f"level IN ({_in(domain.RISK_LEVELS)})", name="risk_level"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="shelter_case.id", index=True)
    questionnaire: str
    level: str
    score: int
    answers_enc: bytes = _blob(nullable=False)
    assessed_by: str
    assessed_at: datetime = _ts()


class CasePlan(_Table, table=True):
    __tablename__ = "case_plan"
    __table_args__ = (
        CheckConstraint("status IN ('submitted','approved','returned')", name="plan_status"),
        CheckConstraint(f"planned_services <@ ARRAY[{_in(domain.SERVICE_KINDS)}]::text[]", name="plan_services"),
        Index("ux_case_plan_submitted", "case_id", unique=True, postgresql_where=text("status = 'submitted'")),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="shelter_case.id", index=True)
    goals_enc: bytes = _blob(nullable=False)
    planned_services: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    status: str = "submitted"
    submitted_by: str
    submitted_at: datetime = _ts()
    decided_by: str | None = None
    decided_at: datetime | None = _ts(nullable=True)
    note_enc: bytes | None = _blob()


class CaseService(_Table, table=True):
    __tablename__ = "case_service"
    __table_args__ = (CheckConstraint(f"kind IN ({_in(domain.SERVICE_KINDS)})", name="service_kind"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="shelter_case.id", index=True)
    kind: str
    provider: str
    delivered_on: date
    outcome_enc: bytes = _blob(nullable=False)
    recorded_by: str
    recorded_at: datetime = _ts()


class ClosureRequest(_Table, table=True):
    __tablename__ = "closure_request"
    __table_args__ = (
        CheckConstraint("status IN ('pending','approved','rejected')", name="closure_status"),
        CheckConstraint(f"reason IN ({_in(domain.CLOSURE_REASONS)})", name="closure_reason"),
        Index("ux_closure_pending", "case_id", unique=True, postgresql_where=text("status = 'pending'")),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="shelter_case.id", index=True)
    reason: str
    note_enc: bytes | None = _blob()
    status: str = "pending"
    requested_by: str
    requested_at: datetime = _ts()
    decided_by: str | None = None
    decided_at: datetime | None = _ts(nullable=True)


class Stay(_Table, table=True):
    """One occupation of a bed: admitted, then discharged."""

    __tablename__ = "stay"
    __table_args__ = (
        Index("ux_stay_open", "case_id", unique=True, postgresql_where=text("discharged_at IS NULL")),
        Index("ix_stay_shelter_open", "shelter_id", postgresql_where=text("discharged_at IS NULL")),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="shelter_case.id", index=True)
    shelter_id: uuid.UUID = Field(foreign_key="shelter.id")
    admitted_by: str
    admitted_at: datetime = _ts()
    discharged_by: str | None = None
    discharged_at: datetime | None = _ts(nullable=True)
    economic_support_programme: str | None = None


class Referral(_Table, table=True):
    __tablename__ = "referral"
    __table_args__ = (
        CheckConstraint(f"status IN ({_in(domain.REFERRAL_STATUSES)})", name="referral_status"),
        CheckConstraint(f"partner_kind IN ({_in(domain.PARTNER_KINDS)})", name="referral_partner_kind"),
        CheckConstraint("status <> 'done' OR successful IS NOT NULL", name="referral_done"),
        CheckConstraint("status NOT IN ('rejected','revoked') OR reason_enc IS NOT NULL", name="referral_reason"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="shelter_case.id", index=True)
    partner_kind: str
    partner_name: str
    purpose_enc: bytes = _blob(nullable=False)
    status: str = domain.IN_PROGRESS
    successful: bool | None = Field(default=None, sa_column=Column(Boolean))
    reason_enc: bytes | None = _blob()
    created_by: str
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    version: int = 1


class AuditEntry(_Table, table=True):
    """Append-only log of every read and change of a case (a trigger refuses UPDATE and DELETE).

    ``detail`` holds what was done (field names, statuses), never survivor data.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        CheckConstraint("outcome IN ('ok','denied')", name="audit_outcome"),
        Index("ix_audit_shelter", "shelter_id", "id"),
        Index("ix_audit_case", "case_id", "id"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()))
    subject: str  # the client (token subject)
    user_id: str | None = None  # the staff member (``user`` claim)
    role: str | None = None
    action: str
    outcome: str = "ok"
    case_id: uuid.UUID = Field(foreign_key="shelter_case.id")
    shelter_id: uuid.UUID = Field(foreign_key="shelter.id")  # the case's shelter at the time
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default=text("'{}'::jsonb")))
    correlation_id: str | None = None


metadata = _Table.metadata
