"""Bulk import: jobs, the uploaded files (in pieces of whole records) and the error reports.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False):
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, server_default=None if nullable else sa.func.now())


def upgrade() -> None:
    op.create_table(
        "import_job",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("region", sa.Text()),
        sa.Column("status", sa.Text(), nullable=False, server_default="queued"),
        sa.Column("filename", sa.Text()),
        sa.Column("columns", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        *(sa.Column(c, sa.Integer(), nullable=False, server_default="0") for c in (
            "pieces", "pieces_done", "total", "processed", "inserted", "updated", "unchanged", "failed", "attempts")),
        sa.Column("error", sa.Text()),
        sa.Column("traceparent", sa.Text()),
        _ts("created_at"),
        _ts("started_at", nullable=True),
        _ts("finished_at", nullable=True),
        _ts("updated_at"),
        sa.CheckConstraint("status IN ('queued','running','done','failed')", name="import_job_status"),
    )
    op.create_index("ix_import_job_owner_created", "import_job", ["owner", "created_at", "id"])
    op.create_index("ix_import_job_created", "import_job", ["created_at", "id"])
    op.create_index("ix_import_job_open", "import_job", ["created_at"], postgresql_where=sa.text("status IN ('queued','running')"))

    op.create_table(
        "import_piece",
        sa.Column("job_id", sa.Uuid(), sa.ForeignKey("import_job.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("first_row", sa.Integer(), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("dup_rows", postgresql.ARRAY(sa.Integer()), nullable=False, server_default="{}"),
        sa.Column("dup_of", postgresql.ARRAY(sa.Integer()), nullable=False, server_default="{}"),
    )
    # Pieces live minutes (read once, deleted by the worker): stored out of line but not
    # compressed, so neither the upload nor the worker pays for pglz.
    op.execute("ALTER TABLE import_piece ALTER COLUMN data SET STORAGE EXTERNAL")

    op.create_table(
        "import_error",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("job_id", sa.Uuid(), sa.ForeignKey("import_job.id", ondelete="CASCADE"), nullable=False),
        sa.Column("row_no", sa.Integer(), nullable=False),
        sa.Column("column_name", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
    )
    op.create_index("ix_import_error_job_row", "import_error", ["job_id", "row_no", "id"])


def downgrade() -> None:
    op.drop_table("import_error")
    op.drop_table("import_piece")
    op.drop_table("import_job")
