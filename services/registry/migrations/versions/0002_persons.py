"""Persons, households (with membership history) and the append-only PII access log.

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


def _ts(name: str, nullable: bool = False):
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, server_default=None if nullable else sa.func.now())


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_table(
        "person",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("nik_hash", sa.Text(), unique=True),
        sa.Column("nik_enc", sa.LargeBinary()),
        sa.Column("provisional_id", sa.Text(), unique=True),
        sa.Column("pii_key_id", sa.Text()),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("name_norm", sa.Text(), nullable=False),
        sa.Column("birth_place", sa.Text()),
        sa.Column("birth_date", sa.Date(), index=True),
        sa.Column("sex", sa.Text(), nullable=False),
        sa.Column("village_code", sa.Text()),
        sa.Column("district_code", sa.Text(), index=True),
        sa.Column("regency_code", sa.Text()),
        sa.Column("rt", sa.Text()),
        sa.Column("rw", sa.Text()),
        sa.Column("street", sa.Text()),
        sa.Column("phone_enc", sa.LargeBinary()),
        sa.Column("phone_index", sa.Text(), index=True),
        sa.Column("disability_type", sa.Text()),
        sa.Column("disability_severity", sa.Text()),
        sa.Column("ppks", postgresql.ARRAY(sa.Text()), nullable=False, server_default="{}"),
        sa.Column("decile", sa.Integer()),
        sa.Column("decile_date", sa.Date()),
        sa.Column("occupation", sa.Text()),
        sa.Column("employer", sa.Text()),
        sa.Column("status", sa.Text(), nullable=False, server_default="active", index=True),
        sa.Column("deceased_date", sa.Date()),
        sa.Column("merged_into", sa.Uuid(), sa.ForeignKey("person.id")),
        sa.Column("domicile_note", sa.Text()),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
        _ts("created_at"),
        _ts("updated_at"),
        sa.CheckConstraint("status IN ('active','deceased','moved_out','merged')", name="person_status"),
        sa.CheckConstraint("sex IN ('M','F')", name="person_sex"),
        sa.CheckConstraint("decile IS NULL OR decile BETWEEN 1 AND 10", name="person_decile"),
        sa.CheckConstraint("nik_hash IS NOT NULL OR provisional_id IS NOT NULL", name="person_identified"),
    )
    op.create_index("ix_person_name_trgm", "person", ["name_norm"], postgresql_using="gin", postgresql_ops={"name_norm": "gin_trgm_ops"})
    op.create_index("ix_person_regency_created", "person", ["regency_code", "created_at", "id"])
    op.create_index("ix_person_created", "person", ["created_at", "id"])

    op.create_table(
        "household",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("kk_number", sa.Text(), nullable=False, unique=True),
        sa.Column("regency_code", sa.Text(), index=True),
        _ts("created_at"),
    )
    op.create_table(
        "household_member",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("household_id", sa.Uuid(), sa.ForeignKey("household.id"), nullable=False, index=True),
        sa.Column("person_id", sa.Uuid(), sa.ForeignKey("person.id"), nullable=False, index=True),
        sa.Column("relationship", sa.Text(), nullable=False),
        _ts("valid_from"),
        _ts("valid_to", nullable=True),
    )
    op.create_index("ux_household_member_current", "household_member", ["person_id"], unique=True, postgresql_where=sa.text("valid_to IS NULL"))

    op.create_table(
        "pii_access",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        _ts("at"),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("person_id", sa.Uuid(), sa.ForeignKey("person.id"), nullable=False, index=True),
        sa.Column("fields", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("correlation_id", sa.Text()),
    )
    # Append-only: the audit of who read unmasked data cannot be edited or erased by the service.
    op.execute(
        """
        CREATE FUNCTION pilar_append_only() RETURNS trigger AS $$
        BEGIN
            RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
        END $$ LANGUAGE plpgsql
        """
    )
    op.execute("CREATE TRIGGER pii_access_append_only BEFORE UPDATE OR DELETE ON pii_access FOR EACH ROW EXECUTE FUNCTION pilar_append_only()")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS pii_access_append_only ON pii_access")
    op.drop_table("pii_access")
    op.execute("DROP FUNCTION IF EXISTS pilar_append_only()")
    op.drop_table("household_member")
    op.drop_table("household")
    op.drop_table("person")
