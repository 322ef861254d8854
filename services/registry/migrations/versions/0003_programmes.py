"""Programme catalogue (rules as data), its append-only audit, enrolments; seeds the catalogue.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

OPEN = "('proposed','verified','active','suspended')"


def _ts(name: str, nullable: bool = False):
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, server_default=None if nullable else sa.func.now())


def _rules(**given):
    rules = {
        "min_age": None, "min_age_months": None, "max_age": None, "max_decile": None, "disability_severities": [],
        "ppks_any": [], "regions": [], "one_per_household": False, "exclusive_with": [], "requires_occupation": False,
        "occupation_keywords": [],
    }
    rules.update(given)
    return rules


# The programmes of the domain reference (shared/domain/README.md). Figures are data: they
# are edited through PUT /v1/programmes/{code} (audited), never changed in code. Seeding
# them here keeps a fresh database usable at once (the local stack, tests, a new install).
SEED = [
    {
        "code": "PKH_PLUS",
        "name": "PKH Plus Jawa Timur",
        "description": "Cash support for the elderly (lansia): age 70 or more, DTSEN decile 1-4, one per family card.",
        "rules": _rules(min_age=70, max_decile=4, one_per_household=True),
        "amount_per_stage": None,  # set per stage by the province
        "provincial": True,
    },
    {
        "code": "ASPD",
        "name": "Asistensi Sosial Penyandang Disabilitas (ASPD)",
        "description": "Cash for people with severe disability or bedridden, aged 6 months to 60 years, decile 1-5 first; 4 stages a year (2026).",
        "rules": _rules(min_age_months=6, max_age=60, max_decile=5, disability_severities=["bedridden", "severe"]),
        "amount_per_stage": 900_000,
        "provincial": True,
    },
    {
        "code": "PKE",
        "name": "Penanganan Kemiskinan Ekstrem (PKE)",
        "description": "Productive-business grant for extreme poverty (decile 1), paid once.",
        "rules": _rules(max_decile=1),
        "amount_per_stage": 1_500_000,
        "provincial": False,
    },
    {
        "code": "BLT_DBHCHT",
        "name": "BLT DBHCHT",
        "description": "Cash for cigarette/tobacco-factory workers, funded by the tobacco excise revenue share (2025).",
        "rules": _rules(
            requires_occupation=True,
            occupation_keywords=["cigarette", "kretek", "rokok", "sigaret", "tembakau", "tobacco"],
        ),
        "amount_per_stage": 1_325_900,
        "provincial": True,
    },
    {
        "code": "KUBE",
        "name": "Kelompok Usaha Bersama (KUBE)",
        "description": "Joint business groups for poor families (decile 1-4).",
        "rules": _rules(max_decile=4),
        "amount_per_stage": None,
        "provincial": False,
    },
]


def upgrade() -> None:
    programme = op.create_table(
        "programme",
        sa.Column("code", sa.Text(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("rules", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("amount_per_stage", sa.BigInteger()),
        sa.Column("provincial", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.CheckConstraint("amount_per_stage IS NULL OR amount_per_stage >= 0", name="programme_amount"),
    )
    audit = op.create_table(
        "programme_audit",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        _ts("at"),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("acting_user", sa.Text()),
        sa.Column("programme_code", sa.Text(), sa.ForeignKey("programme.code"), nullable=False, index=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("before", postgresql.JSONB()),
        sa.Column("after", postgresql.JSONB(), nullable=False),
    )
    # Append-only (pilar_append_only() comes from 0002): the catalogue's history cannot be rewritten.
    op.execute(
        "CREATE TRIGGER programme_audit_append_only BEFORE UPDATE OR DELETE ON programme_audit "
        "FOR EACH ROW EXECUTE FUNCTION pilar_append_only()"
    )

    op.create_table(
        "enrolment",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("person_id", sa.Uuid(), sa.ForeignKey("person.id"), nullable=False, index=True),
        sa.Column("programme_code", sa.Text(), sa.ForeignKey("programme.code"), nullable=False),
        sa.Column("household_id", sa.Uuid(), sa.ForeignKey("household.id")),
        sa.Column("regency_code", sa.Text()),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("proposed_by", sa.Text(), nullable=False),
        _ts("proposed_at"),
        sa.Column("verified_by", sa.Text()),
        _ts("verified_at", nullable=True),
        sa.Column("decided_by", sa.Text()),
        _ts("decided_at", nullable=True),
        sa.Column("reason", sa.Text()),
        sa.Column("active_from", sa.Date()),
        sa.Column("suspend_reason", sa.Text()),
        sa.Column("ended_on", sa.Date()),
        sa.Column("end_reason", sa.Text()),
        sa.Column("ended_by", sa.Text()),
        sa.Column("version", sa.Integer(), nullable=False),
        _ts("updated_at"),
        sa.CheckConstraint("status IN ('proposed','verified','active','suspended','rejected','ended')", name="enrolment_status"),
        sa.CheckConstraint(
            "end_reason IS NULL OR end_reason IN ('death','graduation','moved','no_longer_eligible','other','merged')",
            name="enrolment_end_reason",
        ),
        sa.CheckConstraint("status <> 'ended' OR (ended_on IS NOT NULL AND end_reason IS NOT NULL)", name="enrolment_ended"),
        sa.CheckConstraint("status <> 'rejected' OR reason IS NOT NULL", name="enrolment_rejected"),
        sa.CheckConstraint("status NOT IN ('active','suspended') OR active_from IS NOT NULL", name="enrolment_active_from"),
    )
    # One open enrolment per person and programme, enforced by the database under concurrency.
    op.create_index("ux_enrolment_open", "enrolment", ["person_id", "programme_code"], unique=True,
                    postgresql_where=sa.text(f"status IN {OPEN}"))
    op.create_index("ix_enrolment_regency_proposed", "enrolment", ["regency_code", "proposed_at", "id"])
    op.create_index("ix_enrolment_proposed", "enrolment", ["proposed_at", "id"])
    op.create_index("ix_enrolment_programme_status", "enrolment", ["programme_code", "status"])

    op.bulk_insert(programme, [{**row, "active": True, "version": 1} for row in SEED])
    op.bulk_insert(
        audit,
        [
            {"subject": "migration:0003", "acting_user": None, "programme_code": row["code"], "action": "seeded", "before": None,
             "after": {**row, "active": True, "version": 1}}
            for row in SEED
        ],
    )


def downgrade() -> None:
    op.drop_table("enrolment")
    op.execute("DROP TRIGGER IF EXISTS programme_audit_append_only ON programme_audit")
    op.drop_table("programme_audit")
    op.drop_table("programme")
