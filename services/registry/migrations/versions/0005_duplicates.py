"""Review queue of probable duplicate persons.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "duplicate_candidate",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("person_id", sa.Uuid(), sa.ForeignKey("person.id"), nullable=False, index=True),
        sa.Column("other_id", sa.Uuid(), sa.ForeignKey("person.id"), nullable=False, index=True),
        sa.Column("regency_code", sa.Text(), index=True),
        sa.Column("similarity", sa.Float(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False, server_default="open", index=True),
        sa.Column("decided_by", sa.Text()),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("note", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("status IN ('open','merged','dismissed')", name="duplicate_status"),
        sa.CheckConstraint("person_id <> other_id", name="duplicate_distinct"),
    )
    op.create_index(
        "ux_duplicate_pair", "duplicate_candidate", [sa.text("LEAST(person_id, other_id)"), sa.text("GREATEST(person_id, other_id)")], unique=True
    )


def downgrade() -> None:
    op.drop_table("duplicate_candidate")
