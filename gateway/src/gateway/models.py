"""Tables of the gateway: agency clients, signing keys, webhook subscriptions and deliveries.

The kernel's outbox, inbox and idempotency tables are created by the first migration; the
inbox deduplicates the events the webhook consumer reads.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
# The gateway's own metadata: never shared with another service's tables in one process.
metadata = MetaData()


def _now() -> Column:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


# One row per agency system. The secret is stored only as an argon2 hash.
clients = Table(
    "clients",
    metadata,
    Column("client_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("secret_hash", Text, nullable=False),
    Column("scopes", ARRAY(Text), nullable=False),
    Column("region", Text),  # a regency/city code (35.xx); NULL = province-wide
    Column("rate_per_s", Float),  # NULL = the gateway's default
    Column("rate_burst", Integer),
    _now(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("secret_rotated_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    CheckConstraint("client_id ~ '^[a-z0-9][a-z0-9._-]{1,62}$'", name="ck_clients_client_id"),
    CheckConstraint("region IS NULL OR region ~ '^35\\.[0-9]{2}$'", name="ck_clients_region"),
)

# Token signing keys. The private key is encrypted with the PII key and dropped on retirement;
# the public JWK of every key not retired is published.
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", Text, primary_key=True),
    Column("private_key", LargeBinary),
    Column("public_jwk", JSONB, nullable=False),
    Column("origin", Text, nullable=False),  # "file" (imported) or "generated"
    _now(),
    Column("active_from", DateTime(timezone=True), nullable=False),
    Column("retired_at", DateTime(timezone=True)),
)

webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("client_id", Text, ForeignKey("clients.client_id"), nullable=False),
    Column("callback_url", Text, nullable=False),
    Column("event_types", ARRAY(Text), nullable=False),
    Column("region", Text),
    Column("secret", LargeBinary, nullable=False),  # encrypted with the PII key
    Column("status", Text, nullable=False, server_default="active"),
    Column("disabled_reason", Text),
    Column("consecutive_failures", Integer, nullable=False, server_default=text("0")),
    _now(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("status IN ('active', 'disabled')", name="ck_webhook_subscriptions_status"),
    Index("ix_webhook_subscriptions_client", "client_id"),
)

# One row per (subscription, event): the unit of retry. The body is kept exactly as signed.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("subscription_id", Uuid, ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"), nullable=False),
    Column("ce_id", Text, nullable=False),
    Column("ce_type", Text, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    _now(),
    Column("delivered_at", DateTime(timezone=True)),
    UniqueConstraint("subscription_id", "ce_id", name="uq_webhook_deliveries_event"),
    CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="ck_webhook_deliveries_status"),
    Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
    Index("ix_webhook_deliveries_subscription", "subscription_id", "id"),
)

# The delivery log: one row per HTTP attempt.
webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("delivery_id", BigInteger, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("status_code", Integer),
    Column("error", Text),
    Column("duration_ms", Integer, nullable=False),
    Index("ix_webhook_attempts_delivery", "delivery_id"),
)
