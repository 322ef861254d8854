"""Fixtures of the disbursement tests: migrated databases, the app in-process (with or
without the bank), and the bank simulator as its own process."""

from __future__ import annotations

import pytest

from disbursement_testkit import BANK_SECRET, BankSim, free_port, migrate, serve, write_jwks
from pilar_kernel.testing import running_app


def _settings(url: str, kafka_bootstrap: str, jwks: str, **overrides):
    from disbursement.settings import Settings

    return Settings(env="test", database_url=url, kafka_bootstrap=kafka_bootstrap, jwks_file=jwks, relay_poll_interval_s=0.2,
                    bank_hmac_secret=BANK_SECRET, **overrides)


@pytest.fixture(scope="module")
async def disbursement(new_database, kafka_bootstrap, tmp_path_factory):
    """An httpx client on a fresh disbursement service with no bank: payments wait as created."""
    from disbursement.app import create_app

    url = new_database("disbursement")
    migrate(url)
    app = create_app(_settings(url, kafka_bootstrap, write_jwks(tmp_path_factory.mktemp("keys"))))
    async with running_app(app) as client:
        client.app = app
        yield client


@pytest.fixture(scope="module")
def banksim(tmp_path_factory):
    sim = BankSim(log_path=tmp_path_factory.mktemp("banksim") / "banksim.log", latency_ms_min=5, latency_ms_max=30, seed=7)
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture(scope="module")
async def paying(new_database, kafka_bootstrap, tmp_path_factory, banksim):
    """An httpx client on a fresh disbursement service over real HTTP, paying through the bank simulator."""
    from disbursement.app import create_app

    url = new_database("disbursement")
    migrate(url)
    port = free_port()
    settings = _settings(url, kafka_bootstrap, write_jwks(tmp_path_factory.mktemp("keys")), bank_url=banksim.url,
                         bank_callback_url=f"http://127.0.0.1:{port}/v1/bank/callbacks", bank_batch_size=50, bank_idle_poll_s=0.1)
    app = create_app(settings)
    async with serve(app, port) as client:
        client.app = app
        yield client
