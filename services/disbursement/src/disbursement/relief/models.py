"""Tables of relief programmes and the grants made from them. The migration ``0003_relief``
creates the same tables; keep the two in step.

A relief programme pays affected households through an open round of a programme
(``payment_round``), an amount per damage level. A grant is the decision for one household
of one incident: at most one per household and incident, whatever the events repeat.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import ARRAY, BigInteger, CheckConstraint, Column, DateTime, ForeignKey, Index, Text, UniqueConstraint, func
from sqlmodel import Field

from ..base import Model

HOLD_REASONS = ("recipient_unknown", "round_not_disbursing", "over_ceiling", "already_paid_in_round", "recipient_not_payable",
                "damage_not_paid")


def _now() -> datetime:
    return datetime.now(UTC)


class ReliefProgramme(Model, table=True):
    __tablename__ = "relief_programme"
    __table_args__ = (
        CheckConstraint("amount_light >= 0 AND amount_moderate >= 0 AND amount_heavy >= 0", name="relief_amounts"),
        CheckConstraint("incident_categories <@ ARRAY['natural','non_natural','social']::text[]", name="relief_categories"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str
    round_id: uuid.UUID = Field(sa_column=Column(ForeignKey("payment_round.id"), nullable=False))
    # Empty: any incident category, any regency.
    incident_categories: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(Text), nullable=False, server_default="{}"))
    regency_codes: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(Text), nullable=False, server_default="{}"))
    amount_light: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    amount_moderate: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    amount_heavy: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    active: bool = True
    created_by: str
    version: int = 1
    created_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class ReliefGrant(Model, table=True):
    __tablename__ = "relief_grant"
    __table_args__ = (
        # Once per household per incident.
        UniqueConstraint("incident_id", "household_id", name="ux_relief_household"),
        CheckConstraint("status IN ('paid','held')", name="relief_grant_status"),
        CheckConstraint("(status = 'paid') = (payment_id IS NOT NULL)", name="relief_grant_payment"),
        CheckConstraint("status <> 'held' OR reason IS NOT NULL", name="relief_grant_reason"),
        Index("ix_relief_grant_incident", "incident_id", "status"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    incident_id: uuid.UUID
    household_id: uuid.UUID
    relief_programme_id: uuid.UUID = Field(sa_column=Column(ForeignKey("relief_programme.id"), nullable=False))
    regency_code: str | None = None
    damage_level: str
    person_id: uuid.UUID | None = None
    amount: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    status: str
    reason: str | None = None
    payment_id: uuid.UUID | None = Field(default=None, sa_column=Column(ForeignKey("payment.id"), unique=True))
    household_version: int
    created_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
    updated_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


