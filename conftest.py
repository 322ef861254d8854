"""Test-run fixtures shared by every test folder.

The real stack (PostgreSQL + Kafka, from deploy/) is started once per test run, on free
ports in a temporary folder, and only if a selected test asks for it.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from pilar_devstack import COMPONENTS, LocalStack, free_port


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


def pytest_report_header(config):
    return f"pilar: stack tests start PostgreSQL + Kafka once per run (PILAR_PG_ADMIN_URL={'set' if os.environ.get('PILAR_PG_ADMIN_URL') else 'unset'})"
