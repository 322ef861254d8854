"""Fixtures of the homeless-return tests."""

from __future__ import annotations

import pytest

from homeless_return_testkit import homeless_app, migrate, write_jwks


@pytest.fixture(scope="module")
def jwks(tmp_path_factory) -> str:
    return write_jwks(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
async def homeless(new_database, kafka_bootstrap, jwks):
    """The service on a fresh database. The relay and the consumers are off, so events stay
    in the outbox where the tests read them (the full-flow test runs them)."""
    url = new_database("homeless_return")
    migrate(url)
    async with homeless_app(url, kafka_bootstrap, jwks, relay_enabled=False, consumers_enabled=False) as client:
        yield client
