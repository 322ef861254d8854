"""Recipients named by hand: ``recipient_assignment`` (proposed by one officer, confirmed by
another; the confirmed one overrides the automatic choice of a household's aid recipient).

Revision ID: 0004
Revises: 0002 (written beside another branch's 0003; after both are merged this revises 0003)
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recipient_assignment",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("household_id", sa.Uuid(), sa.ForeignKey("affected_household.id"), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False, server_default="proposed"),
        sa.Column("proposed_by", sa.Text(), nullable=False),
        sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("confirmed_by", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.CheckConstraint("status IN ('proposed','confirmed','withdrawn','superseded')", name="assignment_status"),
        sa.CheckConstraint("status <> 'confirmed' OR (confirmed_by IS NOT NULL AND lower(confirmed_by) <> lower(proposed_by))",
                           name="assignment_four_eyes"),
    )
    op.create_index("ix_recipient_assignment_household_id", "recipient_assignment", ["household_id"])
    op.create_index("ux_assignment_proposed", "recipient_assignment", ["household_id"], unique=True,
                    postgresql_where=sa.text("status = 'proposed'"))
    op.create_index("ux_assignment_confirmed", "recipient_assignment", ["household_id"], unique=True,
                    postgresql_where=sa.text("status = 'confirmed'"))


def downgrade() -> None:
    op.drop_table("recipient_assignment")
