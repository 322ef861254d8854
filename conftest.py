"""Test-run fixtures shared by every test folder.

The real stack (PostgreSQL + Kafka, from deploy/) is started once per test run, on free
ports in a temporary folder, and only if a selected test asks for it.

The system tests (``tests/``) also get the whole platform: every service, the gateway and
the bank simulator as processes under uvicorn, with their demo data, as ``make run`` starts
them. It has its own Kafka broker (and its own databases on the run's PostgreSQL cluster):
the services' in-process tests publish on the same topic names and use the same consumer
groups, and their leftovers must not leak into the platform's records. It is started once,
by the first test that asks for it, and stopped at the end of the run. Tests talk to it the
way partners do: through the gateway, with tokens from ``/oauth/token`` for the demo
clients (``platform_testkit.Platform``). These fixtures live here, not in
``tests/conftest.py``, because the gateway's test package is also called ``tests``.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import httpx
import pytest

from pilar_devstack import COMPONENTS, LocalStack, free_port
from platform_testkit import Platform


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory):
    run_dir = Path(tmp_path_factory.mktemp("stack"))
    s = LocalStack(
        run_dir=run_dir,
        pg_port=free_port(),
        kafka_port=free_port(),
        controller_port=free_port(),
        partitions=3,
        component_ports={c.name: free_port() for c in COMPONENTS},
    )
    try:
        s.start_postgres()
        s.start_kafka()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="session")
def new_database(stack: LocalStack):
    """Factory: a fresh, empty database on the test cluster; returns its SQLAlchemy URL."""

    def make(prefix: str = "t") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        stack.create_databases([name])
        return stack.database_url(name)

    return make


@pytest.fixture(scope="session")
def kafka_bootstrap(stack: LocalStack) -> str:
    return stack.kafka_bootstrap


# The bank simulator fails this share of first attempts, so every round has retries to make.
BANK_FAILURE_RATE = "0.06"
SYSTEM_TEST_TIMEOUT_S = 900
SYSTEM_TESTS = Path(__file__).resolve().parent / "tests"
LAST_SYSTEM_TESTS = ("test_access_sweep.py", "test_bad_input.py", "test_api_fuzz.py")  # in this order, at the end


@pytest.fixture(scope="session")
def platform_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    running = os.environ.get("PILAR_TEST_PLATFORM_DIR")
    if running:
        # A developer's platform already up (`PILAR_RUN_DIR=... python -m pilar_devstack up`):
        # iterate on system tests without restarting it. Never used by CI.
        yield LocalStack.from_saved(running)
        return
    stack: LocalStack = request.getfixturevalue("stack")
    s = LocalStack(
        run_dir=Path(tmp_path_factory.mktemp("platform")),
        pg_admin_url=stack.admin_url,
        kafka_port=free_port(),
        controller_port=free_port(),
        partitions=3,
        component_ports={c.name: free_port() for c in COMPONENTS},
    )
    try:
        s.start_kafka()
        s.create_databases()
        s.start_components(extra_env={"BANKSIM_FAILURE_RATE": BANK_FAILURE_RATE}, ready_timeout=120)
        from pilar_devstack.seed import seed

        asyncio.run(seed(s))  # the run command's demo data
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="session")
async def platform(platform_stack: LocalStack):
    async with httpx.AsyncClient(base_url=platform_stack.url("gateway"), timeout=60) as http:
        yield Platform(platform_stack, http)


def pytest_collection_modifyitems(session, config, items):
    """The walkthrough describes a fresh platform: its module runs before the other system tests.
    The first system test also waits for the platform to start (minutes on a busy machine),
    which pytest-timeout counts: system tests get a longer limit."""
    for item in items:
        if item.path.parent == SYSTEM_TESTS:
            item.add_marker(pytest.mark.timeout(SYSTEM_TEST_TIMEOUT_S))
    first = [item for item in items if item.path == SYSTEM_TESTS / "test_walkthrough.py"]
    if first:
        position = next(i for i, item in enumerate(items) if item.path.parent == first[0].path.parent)
        rest = [item for item in items if item not in first]
        items[:] = rest[:position] + first + rest[position:]
    # The sweeps run last: the access sweep on the records the scenarios left (rounds, payments,
    # imports, cases...), the fuzz after everything, since it writes arbitrary valid records.
    for name in LAST_SYSTEM_TESTS:
        moved = [item for item in items if item.path == SYSTEM_TESTS / name]
        items[:] = [item for item in items if item not in moved] + moved


def pytest_report_header(config):
    return f"pilar: stack tests start PostgreSQL + Kafka once per run (PILAR_PG_ADMIN_URL={'set' if os.environ.get('PILAR_PG_ADMIN_URL') else 'unset'})"
