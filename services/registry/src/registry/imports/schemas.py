"""Response models of the imports API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class ImportLinks(BaseModel):
    self: str
    errors: str = Field(description="the error report as CSV (row, column, reason)")


class ImportJobOut(BaseModel):
    id: uuid.UUID
    status: Literal["queued", "running", "done", "failed"]
    filename: str | None
    columns: list[str] = Field(description="the columns of the file's header row")
    total: int = Field(description="data rows in the file (the header and blank lines are not rows)")
    processed: int = Field(description="rows processed so far")
    inserted: int = Field(description="rows that registered a new person")
    updated: int = Field(description="rows that changed a registered person (fields or household membership)")
    unchanged: int = Field(description="rows that matched their registered person exactly")
    failed: int = Field(description="rows refused; the error report says why")
    progress: float = Field(description="processed / total, from 0 to 1")
    error: str | None = Field(description="why the job failed, or the last retried failure")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    links: ImportLinks


class ImportJobPage(BaseModel):
    items: list[ImportJobOut]
    next_cursor: str | None
