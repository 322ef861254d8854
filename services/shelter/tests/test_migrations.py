"""The hand-written migrations create exactly the tables, columns, nullability, keys and
indexes the models describe (types are not compared: the models' strings are SQLModel's
VARCHAR, the migration's TEXT, which PostgreSQL treats alike)."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from pilar_kernel.tables import kernel_metadata
from shelter import models
from shelter_testkit import migrate

pytestmark = pytest.mark.stack


async def test_migrations_match_the_models(new_database):
    url = new_database("shelter_schema")
    migrate(url)
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            opts = {"compare_type": False}
            diff = await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync, opts=opts), [models.metadata, kernel_metadata]))
    finally:
        await engine.dispose()
    assert [d for d in diff if not (d[0] == "remove_table" and d[1].name == "alembic_version")] == []
