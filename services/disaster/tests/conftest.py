"""Fixtures of the disaster tests: a migrated database and the app running in-process."""

from __future__ import annotations

import pytest

from disaster_testkit import disaster_app, migrate, write_jwks


@pytest.fixture(scope="module")
async def disaster(new_database, kafka_bootstrap, tmp_path_factory):
    """An httpx client on a fresh disaster service (own database, real Kafka, relay and consumer running)."""
    url = new_database("disaster")
    migrate(url)
    async with disaster_app(url, kafka_bootstrap, write_jwks(tmp_path_factory.mktemp("keys"))) as client:
        yield client
