"""The review queue of probable duplicate persons."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Column, DateTime, Index, func, text
from sqlmodel import Field

from ..tables import Table


class DuplicateCandidate(Table, table=True):
    __tablename__ = "duplicate_candidate"
    __table_args__ = (
        CheckConstraint("status IN ('open','merged','dismissed')", name="duplicate_status"),
        CheckConstraint("person_id <> other_id", name="duplicate_distinct"),
        # One entry per unordered pair.
        Index("ux_duplicate_pair", text("LEAST(person_id, other_id)"), text("GREATEST(person_id, other_id)"), unique=True),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    person_id: uuid.UUID = Field(foreign_key="person.id", index=True)  # the newer record
    other_id: uuid.UUID = Field(foreign_key="person.id", index=True)  # the record it resembles
    regency_code: str | None = Field(default=None, index=True)
    similarity: float
    status: str = Field(default="open", index=True)
    decided_by: str | None = None
    decided_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    note: str | None = None
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
