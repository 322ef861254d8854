"""Fixtures of the shelter's tests: one migrated database and the app running in-process
(real PostgreSQL and Kafka), shared by the test modules; each test makes its own shelters,
staff and cases, so tests do not see each other's data through the API."""

from __future__ import annotations

import json

import pytest

from pilar_kernel.testing import running_app
from shelter_testkit import KEYS, migrate


@pytest.fixture(scope="session")
async def shelter_api(new_database, kafka_bootstrap, tmp_path_factory):
    """An httpx client on a fresh shelter service; ``client.app`` is the app (for its database)."""
    from shelter.app import create_app
    from shelter.settings import Settings

    url = new_database("shelter")
    migrate(url)
    jwks = tmp_path_factory.mktemp("shelter-keys") / "jwks.json"
    jwks.write_text(json.dumps(KEYS.jwks))
    settings = Settings(env="test", database_url=url, kafka_bootstrap=kafka_bootstrap, jwks_file=str(jwks), relay_poll_interval_s=0.2)
    app = create_app(settings)
    async with running_app(app) as client:
        client.app = app
        yield client
