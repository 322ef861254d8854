"""Alembic wiring shared by every service.

A service's ``migrations/env.py`` is two lines: import its models, then call
:func:`run_alembic` with its metadata. The database URL comes from ``PILAR_DATABASE_URL``
(never from alembic.ini, so no credentials sit in the repository). The first revision of
every service calls :func:`create_kernel_tables` for the outbox, inbox and idempotency keys.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context, op
from sqlalchemy import MetaData, pool
from sqlalchemy.ext.asyncio import async_engine_from_config

from .tables import OUTBOX_NOTIFY_DDL, kernel_metadata


def database_url() -> str:
    url = os.environ.get("PILAR_DATABASE_URL") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set PILAR_DATABASE_URL to run migrations")
    return url


def run_alembic(target_metadata: MetaData | None) -> None:
    if context.is_offline_mode():
        context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    def do_run(connection) -> None:
        context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        engine = async_engine_from_config({"sqlalchemy.url": database_url()}, prefix="sqlalchemy.", poolclass=pool.NullPool)
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
        await engine.dispose()

    asyncio.run(run_async())


def create_kernel_tables() -> None:
    bind = op.get_bind()
    kernel_metadata.create_all(bind=bind)
    for ddl in OUTBOX_NOTIFY_DDL:
        op.execute(ddl)


def drop_kernel_tables() -> None:
    op.execute("DROP TRIGGER IF EXISTS outbox_notify ON outbox")
    op.execute("DROP FUNCTION IF EXISTS pilar_outbox_notify()")
    kernel_metadata.drop_all(bind=op.get_bind())
