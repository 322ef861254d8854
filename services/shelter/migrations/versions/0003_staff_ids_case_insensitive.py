"""Staff user ids are unique whatever their case.

The gateway accepts a user name in any case, so ``QA.PREP`` and ``qa.prep`` are one person;
two staff records told apart only by case would let one person act as two and walk around
the four-eyes rules. New ids are kept case-folded; this index refuses a second record for
the same id in another case (an existing pair makes the upgrade fail: merge them first).

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE UNIQUE INDEX staff_user_id_folded ON staff (lower(user_id))")


def downgrade() -> None:
    op.execute("DROP INDEX staff_user_id_folded")
