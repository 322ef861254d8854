"""Relief programmes and their grants: emergency cash for disaster-affected households.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = [
    """
    CREATE TABLE relief_programme (
        id uuid PRIMARY KEY,
        name text NOT NULL,
        round_id uuid NOT NULL REFERENCES payment_round (id),
        incident_categories text[] NOT NULL DEFAULT '{}'
            CONSTRAINT relief_categories CHECK (incident_categories <@ ARRAY['natural','non_natural','social']::text[]),
        regency_codes text[] NOT NULL DEFAULT '{}',
        amount_light bigint NOT NULL DEFAULT 0,
        amount_moderate bigint NOT NULL DEFAULT 0,
        amount_heavy bigint NOT NULL DEFAULT 0,
        active boolean NOT NULL DEFAULT true,
        created_by text NOT NULL,
        version integer NOT NULL DEFAULT 1,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT relief_amounts CHECK (amount_light >= 0 AND amount_moderate >= 0 AND amount_heavy >= 0)
    )
    """,
    """
    CREATE TABLE relief_grant (
        id uuid PRIMARY KEY,
        incident_id uuid NOT NULL,
        household_id uuid NOT NULL,
        relief_programme_id uuid NOT NULL REFERENCES relief_programme (id),
        regency_code text,
        damage_level text NOT NULL,
        person_id uuid,
        amount bigint NOT NULL DEFAULT 0,
        status text NOT NULL CONSTRAINT relief_grant_status CHECK (status IN ('paid','held')),
        reason text,
        payment_id uuid UNIQUE REFERENCES payment (id),
        household_version integer NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        -- Once per household per incident.
        CONSTRAINT ux_relief_household UNIQUE (incident_id, household_id),
        CONSTRAINT relief_grant_payment CHECK ((status = 'paid') = (payment_id IS NOT NULL)),
        CONSTRAINT relief_grant_reason CHECK (status <> 'held' OR reason IS NOT NULL)
    )
    """,
    "CREATE INDEX ix_relief_grant_incident ON relief_grant (incident_id, status)",
]


def upgrade() -> None:
    for statement in TABLES:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE relief_grant, relief_programme")
