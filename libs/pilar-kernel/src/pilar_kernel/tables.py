"""The kernel's own tables, present in every service database.

They live in a separate MetaData so that a service's SQLModel metadata stays its own; each
service's first Alembic revision creates them with :func:`pilar_kernel.migrations.create_kernel_tables`.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

kernel_metadata = MetaData()

# Transactional outbox: written in the business transaction, published by the relay.
outbox = Table(
    "outbox",
    kernel_metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("topic", Text, nullable=False),
    Column("message_key", Text, nullable=False),
    # Lane = hash(message_key) mod N. A relay holds a lane's advisory lock while it
    # publishes, so two relays never publish one aggregate's rows concurrently.
    Column("lane", SmallInteger, nullable=False),
    Column("ce_id", Uuid, nullable=False, unique=True),
    Column("ce_type", Text, nullable=False),
    Column("ce_source", Text, nullable=False),
    Column("ce_time", DateTime(timezone=True), nullable=False),
    Column("ce_subject", Text),
    Column("traceparent", Text),
    Column("payload", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()),
    Column("published_at", DateTime(timezone=True)),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text),
    Index("ix_outbox_pending", "id", postgresql_where=text("published_at IS NULL")),
    Index("ix_outbox_published_at", "published_at", postgresql_where=text("published_at IS NOT NULL")),
)

# Inbox: one row per event applied by a consumer, written in the same transaction as the effect.
inbox = Table(
    "inbox",
    kernel_metadata,
    Column("consumer", Text, primary_key=True),
    Column("ce_source", Text, primary_key=True),
    Column("ce_id", Text, primary_key=True),
    Column("ce_type", Text, nullable=False),
    Column("topic", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("kafka_offset", BigInteger, nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Idempotency-Key records for POSTs: stored in the same transaction as the effect.
idempotency_keys = Table(
    "idempotency_keys",
    kernel_metadata,
    Column("owner", Text, primary_key=True),  # the token's subject: keys are per client
    Column("key", Text, primary_key=True),
    Column("method", Text, nullable=False),
    Column("path", Text, nullable=False),
    Column("request_hash", Text, nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response_body", JSONB),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

OUTBOX_CHANNEL = "pilar_outbox"

# Statement-level trigger: one NOTIFY per inserting transaction, delivered at commit.
OUTBOX_NOTIFY_DDL = [
    f"""
    CREATE OR REPLACE FUNCTION pilar_outbox_notify() RETURNS trigger AS $$
    BEGIN
        PERFORM pg_notify('{OUTBOX_CHANNEL}', '');
        RETURN NULL;
    END $$ LANGUAGE plpgsql
    """,
    "DROP TRIGGER IF EXISTS outbox_notify ON outbox",
    "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION pilar_outbox_notify()",
]
