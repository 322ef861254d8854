"""Moments of a case within the years the API accepts.

PostgreSQL keeps ``0001-01-01T00:00:00Z`` as ``-infinity`` (and the far future as
``infinity``), which the driver reads back as a naive ``datetime.min``/``max``: the list of
returns then answered ``found_at: 0001-01-01T00:00:00`` against its own schema. The API now
refuses moments outside 2000..2099; these checks back that rule in the database. A row
written before the rule whose ``found_at`` or planned ``departure_at`` is not a real moment
takes the moment the case was taken in (``created_at``), the closest truth there is.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_RANGE = "{col} >= '1999-12-31T00:00:00Z' AND {col} <= '2100-01-02T00:00:00Z'"


def upgrade() -> None:
    op.execute(f"UPDATE return_case SET found_at = created_at WHERE NOT ({_RANGE.format(col='found_at')})")
    op.execute(
        "UPDATE return_leg l SET departure_at = c.created_at FROM return_case c "
        f"WHERE c.id = l.return_id AND NOT ({_RANGE.format(col='l.departure_at')})"
    )
    op.create_check_constraint("return_case_found_at", "return_case", _RANGE.format(col="found_at"))
    op.create_check_constraint("return_leg_departure_at", "return_leg", _RANGE.format(col="departure_at"))


def downgrade() -> None:
    op.drop_constraint("return_leg_departure_at", "return_leg", type_="check")
    op.drop_constraint("return_case_found_at", "return_case", type_="check")
