"""Consumer runner: inbox deduplication, manual offsets, bounded retries, dead letters.

For each message the runner opens a transaction, records ``(consumer, ce_source, ce_id)``
in the inbox and applies the handler; both commit together, and only then is the Kafka
offset committed. A redelivery (crash between the two commits, rebalance, re-drive) finds
the inbox row and does nothing. A message that cannot be decoded goes straight to the
dead-letter topic ``<topic>.dlt.<consumer>``; a handler that keeps failing goes there after
``max_retries`` retries with exponential back-off. Either way the consumer moves on.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import ConsumerRebalanceListener, TopicPartition
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from . import metrics
from .events import Envelope, EnvelopeError, Event
from .kafka import ensure_topics, make_consumer, make_producer
from .tables import inbox
from .tracecontext import current_traceparent

log = structlog.get_logger("pilar.consumer")

Handler = Callable[[AsyncSession, Any, Envelope], Awaitable[None]]

DLT_PREFIX = "pilar_dlt_"


def dlt_topic(topic: str, consumer: str) -> str:
    return f"{topic}.dlt.{consumer}"


@dataclass
class Consumer:
    """What a service consumes: a name (also the Kafka group id) and a handler per event class."""

    name: str
    handlers: dict[type[Event], Handler] = field(default_factory=dict)

    def on(self, event_cls: type[Event]) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            self.handlers[event_cls] = fn
            return fn

        return deco

    @property
    def topics(self) -> list[str]:
        return sorted({cls.topic for cls in self.handlers})

    @property
    def types(self) -> dict[str, type[Event]]:
        return {cls.ce_type: cls for cls in self.handlers}


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, runner: "ConsumerRunner") -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked) -> None:
        # Processing is sequential between polls, so only already-applied offsets can be
        # pending here: commit them so the next owner does not redo (harmless) work.
        await self._runner._commit_pending()
        log.info("partitions revoked", consumer=self._runner.name, partitions=[f"{tp.topic}:{tp.partition}" for tp in revoked])

    async def on_partitions_assigned(self, assigned) -> None:
        log.info("partitions assigned", consumer=self._runner.name, partitions=[f"{tp.topic}:{tp.partition}" for tp in assigned])


class ConsumerRunner:
    def __init__(
        self,
        consumer: Consumer,
        session_factory: async_sessionmaker,
        *,
        bootstrap: str,
        max_retries: int = 3,
        backoff_s: float = 0.2,
        partitions: int = 6,
        after_apply: Callable[[Envelope], Awaitable[None]] | None = None,
    ) -> None:
        self.name = consumer.name
        self._spec = consumer
        self._sessions = session_factory
        self._bootstrap = bootstrap
        self._max_retries = max_retries
        self._backoff = backoff_s
        self._partitions = partitions
        self._after_apply = after_apply  # test hook: runs after the DB commit, before the offset commit
        self._kafka = None
        self._producer = None
        self._pending: dict[TopicPartition, int] = {}
        self._stopping = asyncio.Event()
        self.started = asyncio.Event()

    async def run(self) -> None:
        topics = self._spec.topics
        await ensure_topics(self._bootstrap, topics + [dlt_topic(t, self.name) for t in topics], self._partitions)
        self._kafka = make_consumer(self._bootstrap, group_id=self.name, client_id=self.name, max_poll_records=200)
        self._producer = make_producer(self._bootstrap, client_id=f"{self.name}-dlt")
        await self._producer.start()
        await self._kafka.start()
        self._kafka.subscribe(topics, listener=_Rebalance(self))
        self.started.set()
        try:
            while not self._stopping.is_set():
                batch = await self._kafka.getmany(timeout_ms=200, max_records=200)
                for tp, messages in batch.items():
                    await self._handle_batch(messages)
                    self._pending[tp] = messages[-1].offset + 1
                # One offset commit per poll (after the database commits), not per partition.
                await self._commit_pending()
        finally:
            # No offset commit here: whatever was not committed is redelivered and deduplicated.
            await self._kafka.stop()
            await self._producer.stop()

    async def stop(self) -> None:
        self._stopping.set()

    async def _commit_pending(self) -> None:
        if self._pending and self._kafka is not None:
            offsets, self._pending = dict(self._pending), {}
            await self._kafka.commit(offsets)

    async def _handle_batch(self, messages: list) -> None:
        """Apply a partition's batch in one transaction (one inbox row per event, in order);
        if anything in it fails, roll it all back and take the messages one by one, with
        retries and dead letters. One commit per batch instead of per event is what lets a
        consumer keep up with hundreds of events a second."""
        if len(messages) == 1:
            await self._handle(messages[0])
            return
        plan: list[tuple[Any, Envelope | None, Event | None]] = []
        for msg in messages:
            try:
                env = Envelope.from_kafka(msg)
                cls = self._spec.types.get(env.type)
                plan.append((msg, env, env.event() if cls is not None else None))
            except EnvelopeError:
                plan.append((msg, None, None))  # the one-by-one path dead-letters it
        if any(env is None for _, env, _ in plan):
            for msg in messages:
                await self._handle(msg)
            return
        outcomes: list[bool | None] = []
        try:
            async with self._sessions() as session, session.begin():
                # One multi-row inbox insert for the batch: the rows it returns are the new events.
                wanted = [env for _msg, env, event in plan if event is not None]
                fresh: set[tuple[str, str]] = set()
                if wanted:
                    inserted = await session.execute(
                        pg_insert(inbox)
                        .values([self._inbox_row(env) for env in wanted])
                        .on_conflict_do_nothing()
                        .returning(inbox.c.ce_source, inbox.c.ce_id)
                    )
                    fresh = {(row.ce_source, row.ce_id) for row in inserted}
                for _msg, env, event in plan:
                    if event is None:
                        outcomes.append(None)
                        continue
                    if (env.source, env.id) not in fresh:
                        outcomes.append(False)
                        continue
                    fresh.discard((env.source, env.id))  # the same event twice in one batch: once
                    token = current_traceparent.set(env.traceparent)
                    try:
                        await self._spec.handlers[type(event)](session, event, env)
                    finally:
                        current_traceparent.reset(token)
                    outcomes.append(True)
        except Exception as exc:
            log.info("batch failed, applying one by one", consumer=self.name, size=len(messages), error=str(exc))
            for msg in messages:
                await self._handle(msg)
            return
        for (_msg, env, _event), applied in zip(plan, outcomes):
            metrics.CONSUMED.labels(self.name, "ignored" if applied is None else "applied" if applied else "duplicate").inc()
            if applied is not None and self._after_apply is not None:
                await self._after_apply(env)

    async def _handle(self, msg: Any) -> None:
        try:
            env = Envelope.from_kafka(msg)
        except EnvelopeError as exc:
            await self._dead_letter(msg, exc, attempts=1)
            return
        cls = self._spec.types.get(env.type)
        if cls is None:
            # Another event type on a topic we read, or a version we do not handle yet.
            metrics.CONSUMED.labels(self.name, "ignored").inc()
            return
        try:
            event = env.event()
        except EnvelopeError as exc:  # broken schema: retrying will not help
            await self._dead_letter(msg, exc, attempts=1)
            return
        handler = self._spec.handlers[cls]
        token = current_traceparent.set(env.traceparent)
        try:
            for attempt in range(self._max_retries + 1):
                try:
                    applied = await self._apply(env, event, handler)
                    break
                except Exception as exc:
                    if attempt >= self._max_retries:
                        await self._dead_letter(msg, exc, attempts=attempt + 1)
                        return
                    metrics.CONSUMER_RETRIES.labels(self.name).inc()
                    log.warning("handler failed, retrying", consumer=self.name, ce_id=env.id, attempt=attempt + 1, error=str(exc))
                    await asyncio.sleep(self._backoff * (2**attempt))
        finally:
            current_traceparent.reset(token)
        metrics.CONSUMED.labels(self.name, "applied" if applied else "duplicate").inc()
        if self._after_apply is not None:
            await self._after_apply(env)

    async def _apply(self, env: Envelope, event: Event, handler: Handler) -> bool:
        async with self._sessions() as session, session.begin():
            return await self._apply_in(session, env, event, handler)

    def _inbox_row(self, env: Envelope) -> dict[str, Any]:
        return {
            "consumer": self.name,
            "ce_source": env.source,
            "ce_id": env.id,
            "ce_type": env.type,
            "topic": env.topic,
            "partition": env.partition,
            "kafka_offset": env.offset,
        }

    async def _apply_in(self, session: AsyncSession, env: Envelope, event: Event, handler: Handler) -> bool:
        """Record the event in the inbox and apply it, in the caller's transaction; False if seen before."""
        first = await session.execute(
            pg_insert(inbox)
            .values(**self._inbox_row(env))
            .on_conflict_do_nothing()
            .returning(inbox.c.ce_id)
        )
        if first.first() is None:
            return False  # already applied: the transaction writes nothing
        await handler(session, event, env)
        return True

    async def _dead_letter(self, msg: Any, exc: BaseException, *, attempts: int) -> None:
        headers = [(k, v) for k, v in (msg.headers or ()) if not k.startswith(DLT_PREFIX)]
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()[:4000]
        headers += [
            (f"{DLT_PREFIX}error", detail.encode()),
            (f"{DLT_PREFIX}error_type", type(exc).__name__.encode()),
            (f"{DLT_PREFIX}consumer", self.name.encode()),
            (f"{DLT_PREFIX}origin_topic", msg.topic.encode()),
            (f"{DLT_PREFIX}origin_partition", str(msg.partition).encode()),
            (f"{DLT_PREFIX}origin_offset", str(msg.offset).encode()),
            (f"{DLT_PREFIX}attempts", str(attempts).encode()),
            (f"{DLT_PREFIX}failed_at", datetime.now(UTC).isoformat().encode()),
        ]
        # Must be acknowledged before the offset moves on, or the message would be lost.
        await self._producer.send_and_wait(dlt_topic(msg.topic, self.name), value=msg.value, key=msg.key, headers=headers)
        metrics.CONSUMED.labels(self.name, "dead_lettered").inc()
        log.error("message dead-lettered", consumer=self.name, topic=msg.topic, partition=msg.partition, offset=msg.offset, error=detail)

