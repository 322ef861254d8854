"""Kafka client factories (aiokafka) with the platform's defaults."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError


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


async def ensure_topics(bootstrap: str, topics: list[str] | set[str], partitions: int = 6) -> list[str]:
    """Create the missing topics (replication factor 1 locally); returns those created."""
    if not topics:
        return []
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = sorted(set(topics) - existing)
        if not missing:
            return []
        response = await admin.create_topics(
            [NewTopic(name=name, num_partitions=partitions, replication_factor=1) for name in missing]
        )
        created = []
        for name, code, *rest in response.topic_errors:
            if code == 0:
                created.append(name)
            elif code != TopicAlreadyExistsError.errno:  # created meanwhile elsewhere: fine
                raise RuntimeError(f"could not create topic {name}: error {code} {rest[0] if rest else ''}")
        return created
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
