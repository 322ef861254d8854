"""Return cases, care stays, counselling, legs, the holiday calendar and the projection of
registry persons.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False):
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, server_default=None if nullable else sa.func.now())


def upgrade() -> None:
    op.create_table(
        "return_case",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("status", sa.Text(), nullable=False, server_default="reported"),
        sa.Column("direction", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("found_place_code", sa.Text(), nullable=False),
        sa.Column("found_regency_code", sa.Text()),
        sa.Column("found_place_note", sa.Text()),
        sa.Column("referred_by", sa.Text(), nullable=False),
        sa.Column("sending_province_code", sa.Text()),
        sa.Column("documents", sa.Text(), nullable=False),
        sa.Column("photo_ref", sa.Text()),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("health_note_enc", sa.LargeBinary()),
        sa.Column("suspected_trafficking", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("repeat_claimant", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("previous_return_id", sa.Uuid()),
        sa.Column("name_enc", sa.LargeBinary(), nullable=False),
        sa.Column("identity_index", sa.Text()),
        sa.Column("birth_date", sa.Date()),
        sa.Column("sex", sa.Text(), nullable=False),
        sa.Column("origin_code", sa.Text()),
        sa.Column("nik_hash", sa.Text()),
        sa.Column("person_id", sa.Uuid()),
        sa.Column("intake_by", sa.Text(), nullable=False),
        sa.Column("departure_due_on", sa.Date(), nullable=False),
        sa.Column("destination_code", sa.Text()),
        sa.Column("destination_province_code", sa.Text()),
        sa.Column("destination_regency_code", sa.Text()),
        sa.Column("family_contact_name_enc", sa.LargeBinary()),
        sa.Column("family_contact_phone_enc", sa.LargeBinary()),
        sa.Column("family_relationship", sa.Text()),
        _ts("verified_at", nullable=True),
        sa.Column("verified_by", sa.Text()),
        sa.Column("verification_note", sa.Text()),
        _ts("departed_at", nullable=True),
        sa.Column("within_standard", sa.Boolean()),
        _ts("returned_at", nullable=True),
        _ts("closed_at", nullable=True),
        sa.Column("refused_by", sa.Text()),
        sa.Column("close_reason", sa.Text()),
        _ts("created_at"),
        _ts("updated_at"),
        sa.CheckConstraint(
            "status IN ('reported','in_care','verified','scheduled','in_transit','returned','refused','unresolved')",
            name="return_case_status",
        ),
        sa.CheckConstraint("direction IN ('outbound','inbound')", name="return_case_direction"),
        sa.CheckConstraint("sex IN ('M','F')", name="return_case_sex"),
    )
    op.create_index("ix_return_case_status", "return_case", ["status"])
    op.create_index("ix_return_case_nik_hash", "return_case", ["nik_hash"])
    op.create_index("ix_return_case_person_id", "return_case", ["person_id"])
    op.create_index("ix_return_case_destination_province_code", "return_case", ["destination_province_code"])
    op.create_index("ix_return_case_destination_regency_code", "return_case", ["destination_regency_code"])
    op.create_index("ix_return_case_created", "return_case", ["created_at", "id"])
    op.create_index("ix_return_case_identity_index", "return_case", ["identity_index"])

    op.create_table(
        "care_stay",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("return_id", sa.Uuid(), sa.ForeignKey("return_case.id"), nullable=False, index=True),
        sa.Column("facility_type", sa.Text(), nullable=False),
        sa.Column("facility_name", sa.Text(), nullable=False),
        sa.Column("admitted_on", sa.Date(), nullable=False),
        sa.Column("left_on", sa.Date()),
        _ts("created_at"),
        sa.CheckConstraint("facility_type IN ('shelter','upt')", name="care_stay_facility"),
        sa.CheckConstraint("left_on IS NULL OR left_on >= admitted_on", name="care_stay_dates"),
    )
    op.create_table(
        "counselling_session",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("return_id", sa.Uuid(), sa.ForeignKey("return_case.id"), nullable=False, index=True),
        sa.Column("held_on", sa.Date(), nullable=False),
        sa.Column("counsellor", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("note", sa.Text()),
        _ts("created_at"),
    )
    op.create_table(
        "return_leg",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("return_id", sa.Uuid(), sa.ForeignKey("return_case.id"), nullable=False, index=True),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("from_code", sa.Text(), nullable=False),
        sa.Column("to_code", sa.Text(), nullable=False),
        sa.Column("receiving_office", sa.Text(), nullable=False),
        sa.Column("mode", sa.Text(), nullable=False),
        sa.Column("ticket_cost", sa.Integer(), nullable=False),
        sa.Column("escort", sa.Text()),
        sa.Column("departure_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Text(), nullable=False, server_default="planned"),
        _ts("departed_at", nullable=True),
        _ts("handed_over_at", nullable=True),
        sa.Column("handover_document_no", sa.Text()),
        sa.Column("received_by", sa.Text()),
        sa.UniqueConstraint("return_id", "seq", name="return_leg_seq"),
        sa.CheckConstraint("mode IN ('bus','train','ship')", name="return_leg_mode"),
        sa.CheckConstraint("status IN ('planned','departed','handed_over')", name="return_leg_status"),
        sa.CheckConstraint("ticket_cost >= 0", name="return_leg_cost"),
    )
    op.create_table(
        "holiday",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
    )
    op.create_table(
        "known_person",
        sa.Column("person_id", sa.Uuid(), primary_key=True),
        sa.Column("nik_hash", sa.Text(), index=True),
        sa.Column("status", sa.Text(), nullable=False, server_default="active"),
        sa.Column("merged_into", sa.Uuid()),
        _ts("updated_at"),
        sa.CheckConstraint("status IN ('active','deceased','merged')", name="known_person_status"),
    )


def downgrade() -> None:
    for table in ("known_person", "holiday", "return_leg", "counselling_session", "care_stay", "return_case"):
        op.drop_table(table)
