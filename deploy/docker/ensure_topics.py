"""Create the Kafka topics of one component's events before it starts.

The compose broker runs with auto-creation off, and a consumer creates only its own topics
(and their dead-letter topics), so the outbox relay would otherwise publish into topics that
do not exist. Importing ``<package>.app`` registers every event model the component uses;
``pilar_kernel.events.all_topics()`` then lists their topics, created here with
``PILAR_TOPIC_PARTITIONS`` partitions. Creating a topic that exists is a no-op, so replicas and
restarts are safe.

Kafka unreachable is a warning, not a failure: the service must start and accept writes
without Kafka (the outbox holds its events); the topics are created at its next start.

Usage: python ensure_topics.py <package>
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import time

from pilar_kernel.events import all_topics
from pilar_kernel.kafka import ensure_topics


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: ensure_topics.py <package>", file=sys.stderr)
        return 2
    package = argv[1]
    importlib.import_module(f"{package}.app")  # an import error is a broken image: fail
    topics = all_topics()
    if not topics:
        print(f"ensure_topics: {package} declares no events; nothing to create")
        return 0
    bootstrap = os.environ.get("PILAR_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    partitions = int(os.environ.get("PILAR_TOPIC_PARTITIONS", "6"))
    deadline = time.monotonic() + float(os.environ.get("PILAR_TOPICS_TIMEOUT_S", "60"))
    while True:
        try:
            created = asyncio.run(asyncio.wait_for(ensure_topics(bootstrap, topics, partitions), timeout=15))
        except Exception as exc:
            if time.monotonic() >= deadline:
                print(
                    f"ensure_topics: WARNING could not create topics on {bootstrap} ({exc!r}); "
                    "starting anyway, events wait in the outbox",
                    file=sys.stderr,
                )
                return 0
            time.sleep(2)
            continue
        print(f"ensure_topics: {len(topics)} topic(s) present, created {created or 'none'}")
        return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
