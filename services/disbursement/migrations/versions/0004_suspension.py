"""Suspended enrolments: not payable until the registry resumes them.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE payee_enrolment DROP CONSTRAINT payee_enrolment_status")
    op.execute("ALTER TABLE payee_enrolment ADD CONSTRAINT payee_enrolment_status CHECK (status IN ('active','suspended','ended'))")


def downgrade() -> None:
    op.execute("UPDATE payee_enrolment SET status = 'active' WHERE status = 'suspended'")
    op.execute("ALTER TABLE payee_enrolment DROP CONSTRAINT payee_enrolment_status")
    op.execute("ALTER TABLE payee_enrolment ADD CONSTRAINT payee_enrolment_status CHECK (status IN ('active','ended'))")
