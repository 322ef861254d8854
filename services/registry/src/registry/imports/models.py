"""Tables of the bulk import: the job, the uploaded file (in pieces) and the error report.

The migration ``0004_imports`` creates the same tables by hand; keep the two in step.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ARRAY, BigInteger, CheckConstraint, Column, DateTime, ForeignKey, Identity, Index, Integer, LargeBinary, Text, func, text
from sqlmodel import Field

from ..tables import Table

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
JOB_STATUSES = (QUEUED, RUNNING, DONE, FAILED)


class ImportJob(Table, table=True):
    """One uploaded file and its progress. Counts are of data rows (the header is not one)."""

    __tablename__ = "import_job"
    __table_args__ = (
        CheckConstraint("status IN ('queued','running','done','failed')", name="import_job_status"),
        Index("ix_import_job_owner_created", "owner", "created_at", "id"),
        Index("ix_import_job_created", "created_at", "id"),
        # The worker's claim query only ever looks at unfinished jobs.
        Index("ix_import_job_open", "created_at", postgresql_where=text("status IN ('queued','running')")),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner: str  # the token subject (client) that uploaded the file
    region: str | None = None  # the token's region claim at upload: rows outside it are refused
    status: str = Field(default=QUEUED)
    filename: str | None = None
    columns: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    size_bytes: int = Field(sa_column=Column(BigInteger, nullable=False))
    pieces: int = 0
    pieces_done: int = 0
    total: int = 0
    processed: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    # Consecutive failed attempts at the current piece; the job fails after a few.
    attempts: int = 0
    error: str | None = None
    traceparent: str | None = None
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
    started_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    finished_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class ImportPiece(Table, table=True):
    """A run of whole CSV records of the upload (UTF-8, no header), processed in one transaction
    and deleted in it. ``dup_rows[i]`` repeats the NIK of row ``dup_of[i]``."""

    __tablename__ = "import_piece"

    job_id: uuid.UUID = Field(sa_column=Column(ForeignKey("import_job.id", ondelete="CASCADE"), primary_key=True))
    seq: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    first_row: int  # file row number of the piece's first record (the header is row 1)
    row_count: int  # data rows in the piece (blank lines not counted)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    dup_rows: list[int] = Field(default_factory=list, sa_column=Column(ARRAY(Integer), nullable=False, server_default="{}"))
    dup_of: list[int] = Field(default_factory=list, sa_column=Column(ARRAY(Integer), nullable=False, server_default="{}"))


class ImportRowError(Table, table=True):
    """One line of a job's error report: the row, the column (empty for the whole row) and why."""

    __tablename__ = "import_error"
    __table_args__ = (Index("ix_import_error_job_row", "job_id", "row_no", "id"),)

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    job_id: uuid.UUID = Field(sa_column=Column(ForeignKey("import_job.id", ondelete="CASCADE"), nullable=False))
    row_no: int
    column_name: str
    reason: str
