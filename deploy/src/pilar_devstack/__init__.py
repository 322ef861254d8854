"""Pilar's local development stack: PostgreSQL, Kafka (KRaft) and the platform's processes, no Docker.

Importing this package starts nothing. ``pilar-stack up`` runs everything; test suites use
``LocalStack`` directly on free ports in a temporary folder::

    stack = LocalStack(run_dir=tmp, pg_port=free_port(), kafka_port=free_port(),
                       controller_port=free_port(), partitions=3)
    stack.start_postgres(); stack.create_databases(["kernel_test"])
    stack.start_kafka(); stack.kafka_bootstrap
    ...
    stack.stop()
"""

from .components import COMPONENTS, PLATFORM, Component, StackConfig
from pilar_kernel.kafka import ensure_topics

from .processes import StackError, free_port, repo_root
from .stack import LocalStack, Status

__all__ = [
    "COMPONENTS",
    "PLATFORM",
    "Component",
    "LocalStack",
    "StackConfig",
    "StackError",
    "Status",
    "ensure_topics",
    "free_port",
    "repo_root",
]
