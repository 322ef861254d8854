"""Fixtures of the registry's tests: a migrated database and the app running in-process."""

from __future__ import annotations

import json

import pytest

from pilar_kernel.testing import running_app
from registry_testkit import KEYS, migrate


@pytest.fixture(scope="module")
async def registry(new_database, kafka_bootstrap, tmp_path_factory):
    """An httpx client on a fresh registry (own database, real Kafka, relay running)."""
    from registry.app import create_app
    from registry.settings import Settings

    url = new_database("registry")
    migrate(url)
    jwks = tmp_path_factory.mktemp("keys") / "jwks.json"
    jwks.write_text(json.dumps(KEYS.jwks))
    settings = Settings(env="test", database_url=url, kafka_bootstrap=kafka_bootstrap, jwks_file=str(jwks), relay_poll_interval_s=0.2)
    app = create_app(settings)
    async with running_app(app) as client:
        client.app = app
        yield client
