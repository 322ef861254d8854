"""Gateway tables: clients, signing keys, webhook subscriptions, deliveries and attempts.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False, default: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, server_default=sa.func.now() if default else None)


def upgrade() -> None:
    op.create_table(
        "clients",
        sa.Column("client_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("secret_hash", sa.Text, nullable=False),
        sa.Column("scopes", ARRAY(sa.Text), nullable=False),
        sa.Column("region", sa.Text),
        sa.Column("rate_per_s", sa.Float),
        sa.Column("rate_burst", sa.Integer),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("secret_rotated_at", nullable=True, default=False),
        _ts("revoked_at", nullable=True, default=False),
        sa.CheckConstraint("client_id ~ '^[a-z0-9][a-z0-9._-]{1,62}$'", name="ck_clients_client_id"),
        sa.CheckConstraint("region IS NULL OR region ~ '^35\\.[0-9]{2}$'", name="ck_clients_region"),
    )
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.Text, primary_key=True),
        sa.Column("private_key", sa.LargeBinary),
        sa.Column("public_jwk", JSONB, nullable=False),
        sa.Column("origin", sa.Text, nullable=False),
        _ts("created_at"),
        _ts("active_from", default=False),
        _ts("retired_at", nullable=True, default=False),
    )
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("client_id", sa.Text, sa.ForeignKey("clients.client_id"), nullable=False),
        sa.Column("callback_url", sa.Text, nullable=False),
        sa.Column("event_types", ARRAY(sa.Text), nullable=False),
        sa.Column("region", sa.Text),
        sa.Column("secret", sa.LargeBinary, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="active"),
        sa.Column("disabled_reason", sa.Text),
        sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default=sa.text("0")),
        _ts("created_at"),
        _ts("updated_at"),
        sa.CheckConstraint("status IN ('active', 'disabled')", name="ck_webhook_subscriptions_status"),
    )
    op.create_index("ix_webhook_subscriptions_client", "webhook_subscriptions", ["client_id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("subscription_id", sa.Uuid, sa.ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("ce_id", sa.Text, nullable=False),
        sa.Column("ce_type", sa.Text, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        _ts("next_attempt_at"),
        sa.Column("last_status_code", sa.Integer),
        sa.Column("last_error", sa.Text),
        _ts("created_at"),
        _ts("delivered_at", nullable=True, default=False),
        sa.UniqueConstraint("subscription_id", "ce_id", name="uq_webhook_deliveries_event"),
        sa.CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="ck_webhook_deliveries_status"),
    )
    op.create_index(
        "ix_webhook_deliveries_due", "webhook_deliveries", ["next_attempt_at"], postgresql_where=sa.text("status = 'pending'")
    )
    op.create_index("ix_webhook_deliveries_subscription", "webhook_deliveries", ["subscription_id", "id"])
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("delivery_id", sa.BigInteger, sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        _ts("at"),
        sa.Column("status_code", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("duration_ms", sa.Integer, nullable=False),
    )
    op.create_index("ix_webhook_attempts_delivery", "webhook_attempts", ["delivery_id"])


def downgrade() -> None:
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_subscriptions")
    op.drop_table("signing_keys")
    op.drop_table("clients")
