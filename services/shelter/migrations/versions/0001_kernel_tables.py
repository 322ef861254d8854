"""Kernel tables: outbox (with its NOTIFY trigger), inbox, idempotency keys.

Revision ID: 0001
Revises:
"""

from pilar_kernel.migrations import create_kernel_tables, drop_kernel_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_kernel_tables()


def downgrade() -> None:
    drop_kernel_tables()
