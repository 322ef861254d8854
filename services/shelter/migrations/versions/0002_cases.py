"""Shelters, staff, cases and their care records, beds, referrals and the append-only audit log.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SHELTER_KINDS = ("women", "children")
STAFF_ROLES = ("caseworker", "supervisor")
STATUSES = ("intake", "assessment", "plan_pending", "in_service", "closure_pending", "closed")
REFERRAL_SOURCES = ("upt_ppa", "police", "hospital", "hotline", "walk_in")
VIOLENCE_TYPES = ("physical", "psychological", "sexual", "neglect", "exploitation", "trafficking")
RELATIONSHIPS = (
    "spouse", "former_spouse", "partner", "parent", "step_parent", "sibling", "other_relative",
    "employer", "teacher", "acquaintance", "stranger", "other", "unknown",
)
SERVICE_KINDS = ("medical", "psychosocial", "legal_aid", "education", "safe_housing")
CONSENT_KINDS = ("services", "partner_sharing", "registry_enrolment")
CONSENT_GIVERS = ("survivor", "guardian", "legal_representative")
PARTNER_KINDS = ("upt_ppa", "police", "hospital", "lks", "legal_aid", "other")
CLOSURE_REASONS = ("reintegrated", "referred", "other")
RISK_LEVELS = ("low", "medium", "high", "critical")
REFERRAL_STATUSES = ("in_progress", "accepted", "rejected", "done", "revoked")


def _in(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _ts(name: str, nullable: bool = False):
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, server_default=None if nullable else sa.func.now())


def _case_fk():
    return sa.Column("case_id", sa.Uuid(), sa.ForeignKey("shelter_case.id"), nullable=False, index=True)


def upgrade() -> None:
    op.create_table(
        "shelter",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False, unique=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("regency_code", sa.Text(), nullable=False, index=True),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("occupied", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
        _ts("created_at"),
        _ts("updated_at"),
        sa.CheckConstraint(f"kind IN ({_in(SHELTER_KINDS)})", name="shelter_kind"),
        sa.CheckConstraint("occupied >= 0 AND occupied <= capacity", name="shelter_beds"),
    )
    op.create_table(
        "staff",
        sa.Column("user_id", sa.Text(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("shelter_id", sa.Uuid(), sa.ForeignKey("shelter.id"), nullable=False, index=True),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
        _ts("created_at"),
        _ts("updated_at"),
        sa.CheckConstraint(f"role IN ({_in(STAFF_ROLES)})", name="staff_role"),
    )
    op.create_table(
        "shelter_case",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("shelter_id", sa.Uuid(), sa.ForeignKey("shelter.id"), nullable=False),
        sa.Column("caseworker_id", sa.Text(), sa.ForeignKey("staff.user_id"), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("paused_status", sa.Text()),
        sa.Column("child", sa.Boolean(), nullable=False),
        sa.Column("sex", sa.Text(), nullable=False),
        sa.Column("regency_code", sa.Text(), nullable=False),
        sa.Column("referral_source", sa.Text(), nullable=False),
        sa.Column("profile_enc", sa.LargeBinary(), nullable=False),
        sa.Column("person_enc", sa.LargeBinary()),
        sa.Column("opened_by", sa.Text(), nullable=False),
        _ts("opened_at"),
        _ts("closed_at", nullable=True),
        sa.Column("closure_reason", sa.Text()),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
        _ts("updated_at"),
        sa.CheckConstraint(f"status IN ({_in(STATUSES)})", name="case_status"),
        sa.CheckConstraint(f"referral_source IN ({_in(REFERRAL_SOURCES)})", name="case_referral_source"),
        sa.CheckConstraint("sex IN ('F','M')", name="case_sex"),
        sa.CheckConstraint(f"closure_reason IS NULL OR closure_reason IN ({_in(CLOSURE_REASONS)})", name="case_closure_reason"),
        sa.CheckConstraint("status <> 'closed' OR (closed_at IS NOT NULL AND closure_reason IS NOT NULL)", name="case_closed"),
    )
    op.create_index("ix_case_shelter_opened", "shelter_case", ["shelter_id", "opened_at", "id"])
    op.create_index("ix_case_caseworker_opened", "shelter_case", ["caseworker_id", "opened_at", "id"])
    op.create_table(
        "case_assignment",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        _case_fk(),
        sa.Column("shelter_id", sa.Uuid(), sa.ForeignKey("shelter.id"), nullable=False),
        sa.Column("caseworker_id", sa.Text(), sa.ForeignKey("staff.user_id"), nullable=False),
        sa.Column("assigned_by", sa.Text(), nullable=False),
        sa.Column("reason_enc", sa.LargeBinary()),
        _ts("started_at"),
        _ts("ended_at", nullable=True),
    )
    op.create_index("ux_case_assignment_current", "case_assignment", ["case_id"], unique=True, postgresql_where=sa.text("ended_at IS NULL"))
    op.create_table(
        "consent",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        _case_fk(),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("given_by", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.Text(), nullable=False),
        _ts("recorded_at"),
        sa.CheckConstraint(f"kind IN ({_in(CONSENT_KINDS)})", name="consent_kind"),
        sa.CheckConstraint(f"given_by IN ({_in(CONSENT_GIVERS)})", name="consent_given_by"),
    )
    op.create_table(
        "incident",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _case_fk(),
        sa.Column("violence_types", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("perpetrator_relationship", sa.Text(), nullable=False),
        sa.Column("occurred_on", sa.Date()),
        sa.Column("regency_code", sa.Text(), nullable=False),
        sa.Column("narrative_enc", sa.LargeBinary()),
        sa.Column("recorded_by", sa.Text(), nullable=False),
        _ts("recorded_at"),
        sa.CheckConstraint(f"perpetrator_relationship IN ({_in(RELATIONSHIPS)})", name="incident_relationship"),
        sa.CheckConstraint(f"violence_types <@ ARRAY[{_in(VIOLENCE_TYPES)}]::text[] AND cardinality(violence_types) > 0", name="incident_types"),
    )
    op.create_table(
        "risk_assessment",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _case_fk(),
        sa.Column("questionnaire", sa.Text(), nullable=False),
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("answers_enc", sa.LargeBinary(), nullable=False),
        sa.Column("assessed_by", sa.Text(), nullable=False),
        _ts("assessed_at"),
        sa.CheckConstraint(f"level IN ({_in(RISK_LEVELS)})", name="risk_level"),
    )
    op.create_table(
        "case_plan",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _case_fk(),
        sa.Column("goals_enc", sa.LargeBinary(), nullable=False),
        sa.Column("planned_services", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("submitted_by", sa.Text(), nullable=False),
        _ts("submitted_at"),
        sa.Column("decided_by", sa.Text()),
        _ts("decided_at", nullable=True),
        sa.Column("note_enc", sa.LargeBinary()),
        sa.CheckConstraint("status IN ('submitted','approved','returned')", name="plan_status"),
        sa.CheckConstraint(f"planned_services <@ ARRAY[{_in(SERVICE_KINDS)}]::text[]", name="plan_services"),
    )
    op.create_index("ux_case_plan_submitted", "case_plan", ["case_id"], unique=True, postgresql_where=sa.text("status = 'submitted'"))
    op.create_table(
        "case_service",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _case_fk(),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("delivered_on", sa.Date(), nullable=False),
        sa.Column("outcome_enc", sa.LargeBinary(), nullable=False),
        sa.Column("recorded_by", sa.Text(), nullable=False),
        _ts("recorded_at"),
        sa.CheckConstraint(f"kind IN ({_in(SERVICE_KINDS)})", name="service_kind"),
    )
    op.create_table(
        "closure_request",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _case_fk(),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("note_enc", sa.LargeBinary()),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=False),
        _ts("requested_at"),
        sa.Column("decided_by", sa.Text()),
        _ts("decided_at", nullable=True),
        sa.CheckConstraint("status IN ('pending','approved','rejected')", name="closure_status"),
        sa.CheckConstraint(f"reason IN ({_in(CLOSURE_REASONS)})", name="closure_reason"),
    )
    op.create_index("ux_closure_pending", "closure_request", ["case_id"], unique=True, postgresql_where=sa.text("status = 'pending'"))
    op.create_table(
        "stay",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _case_fk(),
        sa.Column("shelter_id", sa.Uuid(), sa.ForeignKey("shelter.id"), nullable=False),
        sa.Column("admitted_by", sa.Text(), nullable=False),
        _ts("admitted_at"),
        sa.Column("discharged_by", sa.Text()),
        _ts("discharged_at", nullable=True),
        sa.Column("economic_support_programme", sa.Text()),
    )
    op.create_index("ux_stay_open", "stay", ["case_id"], unique=True, postgresql_where=sa.text("discharged_at IS NULL"))
    op.create_index("ix_stay_shelter_open", "stay", ["shelter_id"], postgresql_where=sa.text("discharged_at IS NULL"))
    op.create_table(
        "referral",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _case_fk(),
        sa.Column("partner_kind", sa.Text(), nullable=False),
        sa.Column("partner_name", sa.Text(), nullable=False),
        sa.Column("purpose_enc", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("successful", sa.Boolean()),
        sa.Column("reason_enc", sa.LargeBinary()),
        sa.Column("created_by", sa.Text(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
        sa.CheckConstraint(f"status IN ({_in(REFERRAL_STATUSES)})", name="referral_status"),
        sa.CheckConstraint(f"partner_kind IN ({_in(PARTNER_KINDS)})", name="referral_partner_kind"),
        sa.CheckConstraint("status <> 'done' OR successful IS NOT NULL", name="referral_done"),
        sa.CheckConstraint("status NOT IN ('rejected','revoked') OR reason_enc IS NOT NULL", name="referral_reason"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.clock_timestamp()),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text()),
        sa.Column("role", sa.Text()),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False, server_default="ok"),
        sa.Column("case_id", sa.Uuid(), sa.ForeignKey("shelter_case.id"), nullable=False),
        sa.Column("shelter_id", sa.Uuid(), sa.ForeignKey("shelter.id"), nullable=False),
        sa.Column("detail", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("correlation_id", sa.Text()),
        sa.CheckConstraint("outcome IN ('ok','denied')", name="audit_outcome"),
    )
    op.create_index("ix_audit_shelter", "audit_log", ["shelter_id", "id"])
    op.create_index("ix_audit_case", "audit_log", ["case_id", "id"])
    # The audit log and the consent records are append-only: no UPDATE, DELETE or TRUNCATE.
    op.execute(
        """
        CREATE FUNCTION shelter_append_only() RETURNS trigger AS $$
        BEGIN
            RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
        END $$ LANGUAGE plpgsql
        """
    )
    for table in ("audit_log", "consent"):
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION shelter_append_only()")
        op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION shelter_append_only()")


def downgrade() -> None:
    for table in ("audit_log", "referral", "stay", "closure_request", "case_service", "case_plan", "risk_assessment", "incident",
                  "consent", "case_assignment", "shelter_case", "staff", "shelter"):
        op.drop_table(table)
    op.execute("DROP FUNCTION IF EXISTS shelter_append_only()")
