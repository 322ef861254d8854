"""Four eyes regardless of case: the gateway accepts a user name in any case, so the CHECK that
nobody approves their own stock request compares the names case-insensitively. The service
records actors case-folded from now on; older rows keep the case they were written with.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint("request_four_eyes", "stock_request", type_="check")
    op.create_check_constraint("request_four_eyes", "stock_request", "approved_by IS NULL OR lower(approved_by) <> lower(requested_by)")


def downgrade() -> None:
    op.drop_constraint("request_four_eyes", "stock_request", type_="check")
    op.create_check_constraint("request_four_eyes", "stock_request", "approved_by IS NULL OR approved_by <> requested_by")
