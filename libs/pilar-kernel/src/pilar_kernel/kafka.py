"""Kafka client factories (aiokafka) with the platform's defaults."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code


def make_producer(bootstrap: str, *, client_id: str = "pilar", request_timeout_ms: int = 10_000) -> AIOKafkaProducer:
    # Idempotent producer: acks=all, broker-side dedup of retried batches and no
    # reordering within a partition, which is what per-aggregate order relies on.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
        request_timeout_ms=request_timeout_ms,
    )


def make_consumer(bootstrap: str, *, group_id: str, client_id: str = "pilar", **kwargs) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,  # offsets are committed by hand after the database commit
        auto_offset_reset="earliest",
        **kwargs,
    )


class TopicSetupError(RuntimeError):
    """Topics could not be created or got no leader in time."""


async def ensure_topics(
    bootstrap: str,
    topics: Iterable[str],
    partitions: int,
    *,
    replication_factor: int = 1,
    timeout: float = 60.0,
) -> list[str]:
    """Create the topics that do not exist yet (idempotent); return the ones created.

    Waits until every requested topic has a leader for each partition, so producers and
    consumers can use them at once. Existing topics are left as they are.
    """
    wanted = sorted(set(topics))
    if not wanted:
        return []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    created: list[str] = []
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    try:
        await asyncio.wait_for(admin.start(), timeout)
        while True:
            try:
                existing = set(await admin.list_topics())
                missing = [topic for topic in wanted if topic not in existing]
                if not missing:
                    break
                response = await admin.create_topics(
                    [NewTopic(topic, partitions, replication_factor) for topic in missing]
                )
            except KafkaError as exc:
                if loop.time() >= deadline:
                    raise TopicSetupError(f"kafka: cannot create topics at {bootstrap}: {exc!r}") from exc
                await asyncio.sleep(0.5)
                continue
            retry = False
            for entry in response.topic_errors:
                name, code = entry[0], entry[1]
                if code == 0:
                    created.append(name)
                elif code == TopicAlreadyExistsError.errno:
                    pass
                else:
                    error = for_code(code)
                    message = entry[2] if len(entry) > 2 and entry[2] else ""
                    if not error.retriable or loop.time() >= deadline:
                        raise TopicSetupError(f"kafka: cannot create topic {name}: {error.__name__} {message}".rstrip())
                    retry = True
            if not retry:
                break
            await asyncio.sleep(0.5)
        while True:  # every partition has a leader
            described = await admin.describe_topics(wanted)
            if all(
                topic["error_code"] == 0
                and topic["partitions"]
                and all(p["error_code"] == 0 and p["leader"] >= 0 for p in topic["partitions"])
                for topic in described
            ):
                return created
            if loop.time() >= deadline:
                raise TopicSetupError(f"kafka: topics {', '.join(wanted)} have no leaders after {timeout:.0f} s")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def kafka_reachable(bootstrap: str, timeout_s: float = 3.0) -> bool:
    """True when the broker answers a metadata request."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        await admin.start()
        await admin.list_topics()
        return True
    except Exception:
        return False
    finally:
        try:
            await admin.close()
        except Exception:
            pass
