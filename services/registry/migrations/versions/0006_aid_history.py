"""A person's aid history, fed by the disbursement service's payment events.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "aid_history",
        sa.Column("payment_id", sa.Uuid(), primary_key=True),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("programme_code", sa.Text(), nullable=False),
        sa.Column("round_id", sa.Uuid(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("returned_amount", sa.BigInteger()),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_aid_history_person", "aid_history", ["person_id", "first_seen_at", "payment_id"])


def downgrade() -> None:
    op.drop_table("aid_history")
