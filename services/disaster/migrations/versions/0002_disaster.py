"""Disaster tables: incidents and their status history, the rapid assessment, the registry
projection, evacuation points, Tagana volunteers and deployments, and the buffer stock.

Beyond the tables: btree_gist and the exclusion constraint that keeps one volunteer's
deployments from overlapping, and the seeded item catalogue.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The buffer-stock catalogue the agency starts with (more can be added through the API).
CATALOGUE = [
    ("family_kit", "Family kit", "pack", False, False),
    ("kids_ware", "Kids-ware", "pack", False, False),
    ("food_ware", "Food-ware", "pack", True, False),
    ("tent", "Family tent", "piece", False, False),
    ("blanket", "Blanket", "piece", False, False),
    ("mat", "Sleeping mat", "piece", False, False),
    ("ready_meal", "Ready meals", "box", True, False),
    ("rice", "Rice", "kg", True, False),
    ("wheelchair", "Wheelchair", "piece", False, True),
    ("crutches", "Crutches (pair)", "pair", False, True),
    ("walker", "Walking frame", "piece", False, True),
    ("white_cane", "White cane", "piece", False, True),
    ("hearing_aid", "Hearing aid", "piece", False, True),
]


def upgrade() -> None:
    op.create_table('incident',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('category', sa.Text(), nullable=False),
    sa.Column('hazard', sa.Text(), nullable=False),
    sa.Column('regency_codes', sa.ARRAY(sa.Text()), nullable=False),
    sa.Column('district_codes', sa.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('started_on', sa.Date(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('decree_number', sa.Text(), nullable=True),
    sa.Column('authority', sa.Text(), nullable=True),
    sa.Column('status_from', sa.Date(), nullable=False),
    sa.Column('status_until', sa.Date(), nullable=True),
    sa.Column('created_by', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("category IN ('natural','non_natural','social')", name='incident_category'),
    sa.CheckConstraint("status IN ('alert','emergency_response','transition','recovery','closed')", name='incident_status'),
    sa.CheckConstraint('cardinality(regency_codes) >= 1', name='incident_regencies'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_incident_regencies', 'incident', ['regency_codes'], unique=False, postgresql_using='gin')
    op.create_index('ix_incident_started', 'incident', ['started_on', 'id'], unique=False)
    op.create_table('item',
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('unit', sa.Text(), nullable=False),
    sa.Column('perishable', sa.Boolean(), nullable=False),
    sa.Column('assistive', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('code')
    )
    op.create_table('registry_person',
    sa.Column('person_id', sa.Uuid(), nullable=False),
    sa.Column('nik_hash', sa.Text(), nullable=True),
    sa.Column('regency_code', sa.Text(), nullable=True),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('merged_into', sa.Uuid(), nullable=True),
    sa.Column('household_id', sa.Uuid(), nullable=True),
    sa.Column('is_head', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('active','deceased','moved_out','merged')", name='registry_person_status'),
    sa.PrimaryKeyConstraint('person_id')
    )
    op.create_index(op.f('ix_registry_person_household_id'), 'registry_person', ['household_id'], unique=False)
    op.create_index(op.f('ix_registry_person_nik_hash'), 'registry_person', ['nik_hash'], unique=False)
    op.create_table('volunteer',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('member_number', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('rank', sa.Text(), nullable=False),
    sa.Column('regency_code', sa.Text(), nullable=False),
    sa.Column('skills', sa.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("rank IN ('muda','madya','utama')", name='volunteer_rank'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('member_number')
    )
    op.create_index('ix_volunteer_regency', 'volunteer', ['regency_code', 'member_number'], unique=False)
    op.create_table('affected_household',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('incident_id', sa.Uuid(), nullable=False),
    sa.Column('kk_hash', sa.Text(), nullable=True),
    sa.Column('registry_household_id', sa.Uuid(), nullable=True),
    sa.Column('regency_code', sa.Text(), nullable=False),
    sa.Column('district_code', sa.Text(), nullable=False),
    sa.Column('village_code', sa.Text(), nullable=False),
    sa.Column('damage_level', sa.Text(), nullable=False),
    sa.Column('displaced', sa.Boolean(), nullable=False),
    sa.Column('member_count', sa.Integer(), nullable=False),
    sa.Column('recipient_person_id', sa.Uuid(), nullable=True),
    sa.Column('assessed_by', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('assessed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("damage_level IN ('none','light','moderate','heavy')", name='household_damage'),
    sa.CheckConstraint('member_count >= 1', name='household_members'),
    sa.ForeignKeyConstraint(['incident_id'], ['incident.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_household_incident', 'affected_household', ['incident_id', 'regency_code', 'id'], unique=False)
    op.create_index('ux_household_kk', 'affected_household', ['incident_id', 'kk_hash'], unique=True, postgresql_where=sa.text('kk_hash IS NOT NULL'))
    op.create_index('ux_household_registry', 'affected_household', ['incident_id', 'registry_household_id'], unique=True, postgresql_where=sa.text('registry_household_id IS NOT NULL'))
    op.create_table('deployment',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('volunteer_id', sa.Uuid(), nullable=False),
    sa.Column('incident_id', sa.Uuid(), nullable=False),
    sa.Column('role', sa.Text(), nullable=False),
    sa.Column('started_on', sa.Date(), nullable=False),
    sa.Column('ended_on', sa.Date(), nullable=True),
    sa.Column('hours', sa.Integer(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('recorded_by', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('ended_on IS NULL OR ended_on >= started_on', name='deployment_period'),
    sa.CheckConstraint('ended_on IS NULL OR hours <= 24 * (ended_on - started_on + 1)', name='deployment_hours_fit'),
    sa.CheckConstraint('hours >= 0', name='deployment_hours'),
    sa.ForeignKeyConstraint(['incident_id'], ['incident.id'], ),
    sa.ForeignKeyConstraint(['volunteer_id'], ['volunteer.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_deployment_incident', 'deployment', ['incident_id', 'volunteer_id'], unique=False)
    op.create_table('evacuation_point',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('incident_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('regency_code', sa.Text(), nullable=False),
    sa.Column('district_code', sa.Text(), nullable=False),
    sa.Column('village_code', sa.Text(), nullable=True),
    sa.Column('latitude', sa.Float(), nullable=True),
    sa.Column('longitude', sa.Float(), nullable=True),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('opened_on', sa.Date(), nullable=False),
    sa.Column('closed_on', sa.Date(), nullable=True),
    sa.Column('created_by', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('capacity >= 1', name='point_capacity'),
    sa.CheckConstraint('closed_on IS NULL OR closed_on >= opened_on', name='point_period'),
    sa.CheckConstraint('latitude IS NULL OR latitude BETWEEN -90 AND 90', name='point_latitude'),
    sa.CheckConstraint('longitude IS NULL OR longitude BETWEEN -180 AND 180', name='point_longitude'),
    sa.ForeignKeyConstraint(['incident_id'], ['incident.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_evacuation_point_incident_id'), 'evacuation_point', ['incident_id'], unique=False)
    op.create_table('incident_status',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('incident_id', sa.Uuid(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('from_status', sa.Text(), nullable=True),
    sa.Column('to_status', sa.Text(), nullable=False),
    sa.Column('decree_number', sa.Text(), nullable=True),
    sa.Column('authority', sa.Text(), nullable=True),
    sa.Column('effective_from', sa.Date(), nullable=False),
    sa.Column('effective_until', sa.Date(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('recorded_by', sa.Text(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incident.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('incident_id', 'seq', name='ux_incident_status_seq')
    )
    op.create_table('warehouse',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('level', sa.Text(), nullable=False),
    sa.Column('regency_code', sa.Text(), nullable=True),
    sa.Column('incident_id', sa.Uuid(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("level <> 'field' OR incident_id IS NOT NULL", name='warehouse_field_incident'),
    sa.CheckConstraint("level = 'province' OR regency_code IS NOT NULL", name='warehouse_regency'),
    sa.CheckConstraint("level IN ('province','regency','field')", name='warehouse_level'),
    sa.ForeignKeyConstraint(['incident_id'], ['incident.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    op.create_table('affected_person',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('incident_id', sa.Uuid(), nullable=False),
    sa.Column('household_id', sa.Uuid(), nullable=True),
    sa.Column('nik_hash', sa.Text(), nullable=True),
    sa.Column('person_id', sa.Uuid(), nullable=True),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('sex', sa.Text(), nullable=False),
    sa.Column('birth_date', sa.Date(), nullable=True),
    sa.Column('relationship', sa.Text(), nullable=True),
    sa.Column('regency_code', sa.Text(), nullable=False),
    sa.Column('district_code', sa.Text(), nullable=False),
    sa.Column('village_code', sa.Text(), nullable=False),
    sa.Column('condition', sa.Text(), nullable=False),
    sa.Column('displaced', sa.Boolean(), nullable=False),
    sa.Column('vulnerabilities', sa.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('evacuation_point_id', sa.Uuid(), nullable=True),
    sa.Column('recorded_by', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("condition IN ('unharmed','injured','missing','dead')", name='person_condition'),
    sa.CheckConstraint("sex IN ('M','F')", name='person_sex'),
    sa.CheckConstraint("vulnerabilities <@ ARRAY['elderly','disabled','child','pregnant']::text[]", name='person_vulnerabilities'),
    sa.ForeignKeyConstraint(['evacuation_point_id'], ['evacuation_point.id'], ),
    sa.ForeignKeyConstraint(['household_id'], ['affected_household.id'], ),
    sa.ForeignKeyConstraint(['incident_id'], ['incident.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_affected_person_household_id'), 'affected_person', ['household_id'], unique=False)
    op.create_index('ix_person_incident', 'affected_person', ['incident_id', 'regency_code', 'id'], unique=False)
    op.create_index('ix_person_nik_unmatched', 'affected_person', ['nik_hash'], unique=False, postgresql_where=sa.text('person_id IS NULL AND nik_hash IS NOT NULL'))
    op.create_index('ux_person_nik', 'affected_person', ['incident_id', 'nik_hash'], unique=True, postgresql_where=sa.text('nik_hash IS NOT NULL'))
    op.create_index('ux_person_registry', 'affected_person', ['incident_id', 'person_id'], unique=True, postgresql_where=sa.text('person_id IS NOT NULL'))
    op.create_table('evacuation_headcount',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('point_id', sa.Uuid(), nullable=False),
    sa.Column('reported_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('elderly', sa.Integer(), nullable=False),
    sa.Column('disabled', sa.Integer(), nullable=False),
    sa.Column('children', sa.Integer(), nullable=False),
    sa.Column('pregnant', sa.Integer(), nullable=False),
    sa.Column('reported_by', sa.Text(), nullable=False),
    sa.CheckConstraint('elderly BETWEEN 0 AND total AND disabled BETWEEN 0 AND total AND children BETWEEN 0 AND total AND pregnant BETWEEN 0 AND total', name='headcount_groups'),
    sa.CheckConstraint('total >= 0', name='headcount_total'),
    sa.ForeignKeyConstraint(['point_id'], ['evacuation_point.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_headcount_point_time', 'evacuation_headcount', ['point_id', 'reported_at'], unique=False)
    op.create_table('kitchen_day',
    sa.Column('point_id', sa.Uuid(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('portions', sa.Integer(), nullable=False),
    sa.Column('updated_by', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('portions >= 0', name='kitchen_portions'),
    sa.ForeignKeyConstraint(['point_id'], ['evacuation_point.id'], ),
    sa.PrimaryKeyConstraint('point_id', 'day')
    )
    op.create_table('stock_alert',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('warehouse_id', sa.Uuid(), nullable=False),
    sa.Column('item_code', sa.Text(), nullable=False),
    sa.Column('on_hand', sa.BigInteger(), nullable=False),
    sa.Column('minimum', sa.BigInteger(), nullable=False),
    sa.Column('raised_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['warehouse_id'], ['warehouse.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ux_alert_open', 'stock_alert', ['warehouse_id', 'item_code'], unique=True, postgresql_where=sa.text('resolved_at IS NULL'))
    op.create_table('stock_lot',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('warehouse_id', sa.Uuid(), nullable=False),
    sa.Column('item_code', sa.Text(), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=True),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('received_quantity', sa.BigInteger(), nullable=False),
    sa.Column('receipt_id', sa.Uuid(), nullable=True),
    sa.Column('request_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('quantity <= received_quantity', name='lot_within_received'),
    sa.CheckConstraint('quantity >= 0', name='lot_not_negative'),
    sa.ForeignKeyConstraint(['item_code'], ['item.code'], ),
    sa.ForeignKeyConstraint(['warehouse_id'], ['warehouse.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_lot_fefo', 'stock_lot', ['warehouse_id', 'item_code', 'expires_on', 'id'], unique=False, postgresql_where=sa.text('quantity > 0'))
    op.create_table('stock_minimum',
    sa.Column('warehouse_id', sa.Uuid(), nullable=False),
    sa.Column('item_code', sa.Text(), nullable=False),
    sa.Column('minimum', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('minimum >= 0', name='minimum_not_negative'),
    sa.ForeignKeyConstraint(['item_code'], ['item.code'], ),
    sa.ForeignKeyConstraint(['warehouse_id'], ['warehouse.id'], ),
    sa.PrimaryKeyConstraint('warehouse_id', 'item_code')
    )
    op.create_table('stock_receipt',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('warehouse_id', sa.Uuid(), nullable=False),
    sa.Column('received_on', sa.Date(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('reference', sa.Text(), nullable=True),
    sa.Column('received_by', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['warehouse_id'], ['warehouse.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_stock_receipt_warehouse_id'), 'stock_receipt', ['warehouse_id'], unique=False)
    op.create_table('stock_request',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('incident_id', sa.Uuid(), nullable=False),
    sa.Column('from_warehouse_id', sa.Uuid(), nullable=False),
    sa.Column('to_warehouse_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('requested_by', sa.Text(), nullable=False),
    sa.Column('approved_by', sa.Text(), nullable=True),
    sa.Column('approved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('shipped_by', sa.Text(), nullable=True),
    sa.Column('shipped_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('received_by', sa.Text(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancel_reason', sa.Text(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('draft','approved','shipped','received','cancelled')", name='request_status'),
    sa.CheckConstraint("status IN ('draft','cancelled') OR approved_by IS NOT NULL", name='request_approved'),
    sa.CheckConstraint('approved_by IS NULL OR approved_by <> requested_by', name='request_four_eyes'),
    sa.CheckConstraint('from_warehouse_id <> to_warehouse_id', name='request_two_warehouses'),
    sa.ForeignKeyConstraint(['from_warehouse_id'], ['warehouse.id'], ),
    sa.ForeignKeyConstraint(['incident_id'], ['incident.id'], ),
    sa.ForeignKeyConstraint(['to_warehouse_id'], ['warehouse.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_request_incident', 'stock_request', ['incident_id', 'status'], unique=False)
    op.create_table('distribution',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('incident_id', sa.Uuid(), nullable=False),
    sa.Column('warehouse_id', sa.Uuid(), nullable=False),
    sa.Column('regency_code', sa.Text(), nullable=True),
    sa.Column('affected_person_id', sa.Uuid(), nullable=True),
    sa.Column('household_id', sa.Uuid(), nullable=True),
    sa.Column('evacuation_point_id', sa.Uuid(), nullable=True),
    sa.Column('person_id', sa.Uuid(), nullable=True),
    sa.Column('distributed_on', sa.Date(), nullable=False),
    sa.Column('recorded_by', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('num_nonnulls(affected_person_id, household_id, evacuation_point_id) = 1', name='distribution_one_recipient'),
    sa.ForeignKeyConstraint(['affected_person_id'], ['affected_person.id'], ),
    sa.ForeignKeyConstraint(['evacuation_point_id'], ['evacuation_point.id'], ),
    sa.ForeignKeyConstraint(['household_id'], ['affected_household.id'], ),
    sa.ForeignKeyConstraint(['incident_id'], ['incident.id'], ),
    sa.ForeignKeyConstraint(['warehouse_id'], ['warehouse.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_distribution_incident', 'distribution', ['incident_id', 'distributed_on'], unique=False)
    op.create_index(op.f('ix_distribution_person_id'), 'distribution', ['person_id'], unique=False)
    op.create_table('shipment_line',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('request_id', sa.Uuid(), nullable=False),
    sa.Column('lot_id', sa.Uuid(), nullable=False),
    sa.Column('item_code', sa.Text(), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=True),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('quantity > 0', name='shipment_line_quantity'),
    sa.ForeignKeyConstraint(['lot_id'], ['stock_lot.id'], ),
    sa.ForeignKeyConstraint(['request_id'], ['stock_request.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_shipment_line_request_id'), 'shipment_line', ['request_id'], unique=False)
    op.create_table('stock_movement',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('lot_id', sa.Uuid(), nullable=False),
    sa.Column('warehouse_id', sa.Uuid(), nullable=False),
    sa.Column('item_code', sa.Text(), nullable=False),
    sa.Column('delta', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('request_id', sa.Uuid(), nullable=True),
    sa.Column('distribution_id', sa.Uuid(), nullable=True),
    sa.Column('receipt_id', sa.Uuid(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('receipt','shipment_out','shipment_in','distribution')", name='movement_kind'),
    sa.CheckConstraint('delta <> 0', name='movement_delta'),
    sa.ForeignKeyConstraint(['lot_id'], ['stock_lot.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_movement_warehouse_item', 'stock_movement', ['warehouse_id', 'item_code', 'at'], unique=False)
    op.create_table('stock_request_line',
    sa.Column('request_id', sa.Uuid(), nullable=False),
    sa.Column('item_code', sa.Text(), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('quantity > 0', name='request_line_quantity'),
    sa.ForeignKeyConstraint(['item_code'], ['item.code'], ),
    sa.ForeignKeyConstraint(['request_id'], ['stock_request.id'], ),
    sa.PrimaryKeyConstraint('request_id', 'item_code')
    )
    op.create_table('assistive_device',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('person_id', sa.Uuid(), nullable=False),
    sa.Column('item_code', sa.Text(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('distribution_id', sa.Uuid(), nullable=False),
    sa.Column('given_on', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['distribution_id'], ['distribution.id'], ),
    sa.ForeignKeyConstraint(['item_code'], ['item.code'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_assistive_device_person_id'), 'assistive_device', ['person_id'], unique=False)
    op.create_table('distribution_line',
    sa.Column('distribution_id', sa.Uuid(), nullable=False),
    sa.Column('item_code', sa.Text(), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('quantity > 0', name='distribution_line_quantity'),
    sa.ForeignKeyConstraint(['distribution_id'], ['distribution.id'], ),
    sa.ForeignKeyConstraint(['item_code'], ['item.code'], ),
    sa.PrimaryKeyConstraint('distribution_id', 'item_code')
    )

    # One volunteer is never deployed twice at once (open deployments run to infinity).
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.execute(
        "ALTER TABLE deployment ADD CONSTRAINT deployment_no_overlap "
        "EXCLUDE USING gist (volunteer_id WITH =, daterange(started_on, ended_on, '[]') WITH &&)"
    )
    item = sa.table("item", sa.column("code", sa.Text), sa.column("name", sa.Text), sa.column("unit", sa.Text),
                    sa.column("perishable", sa.Boolean), sa.column("assistive", sa.Boolean))
    op.bulk_insert(item, [dict(zip(("code", "name", "unit", "perishable", "assistive"), row)) for row in CATALOGUE])


def downgrade() -> None:
    op.execute("ALTER TABLE deployment DROP CONSTRAINT deployment_no_overlap")
    op.drop_table('distribution_line')
    op.drop_index(op.f('ix_assistive_device_person_id'), table_name='assistive_device')
    op.drop_table('assistive_device')
    op.drop_table('stock_request_line')
    op.drop_index('ix_movement_warehouse_item', table_name='stock_movement')
    op.drop_table('stock_movement')
    op.drop_index(op.f('ix_shipment_line_request_id'), table_name='shipment_line')
    op.drop_table('shipment_line')
    op.drop_index(op.f('ix_distribution_person_id'), table_name='distribution')
    op.drop_index('ix_distribution_incident', table_name='distribution')
    op.drop_table('distribution')
    op.drop_index('ix_request_incident', table_name='stock_request')
    op.drop_table('stock_request')
    op.drop_index(op.f('ix_stock_receipt_warehouse_id'), table_name='stock_receipt')
    op.drop_table('stock_receipt')
    op.drop_table('stock_minimum')
    op.drop_index('ix_lot_fefo', table_name='stock_lot', postgresql_where=sa.text('quantity > 0'))
    op.drop_table('stock_lot')
    op.drop_index('ux_alert_open', table_name='stock_alert', postgresql_where=sa.text('resolved_at IS NULL'))
    op.drop_table('stock_alert')
    op.drop_table('kitchen_day')
    op.drop_index('ix_headcount_point_time', table_name='evacuation_headcount')
    op.drop_table('evacuation_headcount')
    op.drop_index('ux_person_registry', table_name='affected_person', postgresql_where=sa.text('person_id IS NOT NULL'))
    op.drop_index('ux_person_nik', table_name='affected_person', postgresql_where=sa.text('nik_hash IS NOT NULL'))
    op.drop_index('ix_person_nik_unmatched', table_name='affected_person', postgresql_where=sa.text('person_id IS NULL AND nik_hash IS NOT NULL'))
    op.drop_index('ix_person_incident', table_name='affected_person')
    op.drop_index(op.f('ix_affected_person_household_id'), table_name='affected_person')
    op.drop_table('affected_person')
    op.drop_table('warehouse')
    op.drop_table('incident_status')
    op.drop_index(op.f('ix_evacuation_point_incident_id'), table_name='evacuation_point')
    op.drop_table('evacuation_point')
    op.drop_index('ix_deployment_incident', table_name='deployment')
    op.drop_table('deployment')
    op.drop_index('ux_household_registry', table_name='affected_household', postgresql_where=sa.text('registry_household_id IS NOT NULL'))
    op.drop_index('ux_household_kk', table_name='affected_household', postgresql_where=sa.text('kk_hash IS NOT NULL'))
    op.drop_index('ix_household_incident', table_name='affected_household')
    op.drop_table('affected_household')
    op.drop_index('ix_volunteer_regency', table_name='volunteer')
    op.drop_table('volunteer')
    op.drop_index(op.f('ix_registry_person_nik_hash'), table_name='registry_person')
    op.drop_index(op.f('ix_registry_person_household_id'), table_name='registry_person')
    op.drop_table('registry_person')
    op.drop_table('item')
    op.drop_index('ix_incident_started', table_name='incident')
    op.drop_index('ix_incident_regencies', table_name='incident', postgresql_using='gin')
    op.drop_table('incident')
