"""Transactional outbox and its relay.

``add_event`` writes the event into the ``outbox`` table inside the caller's transaction,
so the state change and its event commit (or roll back) together. The relay publishes
pending rows to Kafka:

* wakes on ``LISTEN pilar_outbox`` (a trigger notifies at commit), polls as a backstop;
* claims rows with ``FOR UPDATE SKIP LOCKED`` and, per lane (hash of the key), a
  transaction-scoped advisory lock, so several relays can run side by side while one
  aggregate's rows are only ever published by one relay at a time, in id order;
* uses the idempotent producer (acks=all) and marks rows published only after Kafka has
  acknowledged them; a crash in between re-publishes with the same ``ce_id``, which the
  consumers' inbox turns into a no-op.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import zlib
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from . import metrics
from .db import asyncpg_dsn
from .events import Envelope, Event
from .kafka import ensure_topics, make_producer
from .tables import OUTBOX_CHANNEL, outbox

log = structlog.get_logger("pilar.outbox")

LANES = 64
_LOCK_CLASS = 0x5049  # first key of the two-key advisory lock, "PI"


def lane_of(key: str) -> int:
    return zlib.crc32(key.encode()) % LANES


async def add_event(session: AsyncSession, event: Event, *, source: str, traceparent: str | None = None) -> Envelope:
    """Record ``event`` in the outbox within ``session``'s transaction; returns its envelope."""
    env = Envelope.for_event(event, source=source, traceparent=traceparent)
    await session.execute(
        insert(outbox).values(
            topic=event.topic,
            message_key=event.aggregate_id,
            lane=lane_of(event.aggregate_id),
            ce_id=uuid.UUID(env.id),
            ce_type=env.type,
            ce_source=env.source,
            ce_time=env.time,
            ce_subject=env.subject,
            traceparent=env.traceparent,
            payload=env.data,
        )
    )
    return env


_CLAIM = text(
    """
    SELECT id, topic, message_key, ce_id, ce_type, ce_source, ce_time, ce_subject, traceparent, payload
    FROM outbox
    WHERE published_at IS NULL AND pg_try_advisory_xact_lock(:lock_class, lane)
    ORDER BY id
    LIMIT :batch
    FOR UPDATE SKIP LOCKED
    """
)


class OutboxRelay:
    """Publishes one database's outbox to Kafka. Run it with :meth:`run`; stop with :meth:`stop`."""

    def __init__(
        self,
        session_factory: async_sessionmaker,
        *,
        database_url: str,
        bootstrap: str,
        service: str,
        batch_size: int = 500,
        poll_interval_s: float = 1.0,
        request_timeout_ms: int = 10_000,
        retention: timedelta = timedelta(days=3),
        partitions: int = 6,
    ) -> None:
        self._sessions = session_factory
        self._dsn = asyncpg_dsn(database_url)
        self._bootstrap = bootstrap
        self._service = service
        self._batch = batch_size
        self._poll = poll_interval_s
        self._timeout_ms = request_timeout_ms
        self._retention = retention
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._producer = None
        self._listen_conn: asyncpg.Connection | None = None
        self._last_purge = 0.0
        self._partitions = partitions
        self._known_topics: set[str] = set()

    # -- lifecycle -------------------------------------------------------------------
    async def run(self) -> None:
        backoff = 0.5
        try:
            while not self._stopping.is_set():
                try:
                    await self._ensure_listener()
                    await self._ensure_producer()
                    published = await self.publish_batch()
                    backoff = 0.5
                    if published >= self._batch:
                        continue  # more waiting: no sleep
                    await self._refresh_backlog()
                    await self._maybe_purge()
                    await self._sleep(self._poll)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    metrics.OUTBOX_ERRORS.labels(self._service).inc()
                    log.warning("outbox relay error, backing off", error=str(exc), backoff_s=backoff)
                    await self._reset_producer()
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            await self._reset_producer()
            await self._close_listener()

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        except TimeoutError:
            pass
        self._wake.clear()

    async def _ensure_listener(self) -> None:
        if self._listen_conn is not None and not self._listen_conn.is_closed():
            return
        try:
            conn = await asyncpg.connect(self._dsn)
            await conn.add_listener(OUTBOX_CHANNEL, lambda *_: self._wake.set())
            self._listen_conn = conn
        except Exception as exc:  # polling still works without LISTEN
            log.warning("outbox LISTEN unavailable, polling only", error=str(exc))

    async def _close_listener(self) -> None:
        if self._listen_conn is not None:
            try:
                await self._listen_conn.close(timeout=2)
            except Exception:
                pass
            self._listen_conn = None

    async def _ensure_producer(self) -> None:
        if self._producer is None:
            producer = make_producer(self._bootstrap, client_id=f"{self._service}-relay", request_timeout_ms=self._timeout_ms)
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer

    async def _reset_producer(self) -> None:
        # After a send failure the idempotent producer's sequence state is suspect: start afresh.
        if self._producer is not None:
            producer, self._producer = self._producer, None
            try:
                await asyncio.wait_for(producer.stop(), timeout=5)
            except Exception:
                pass

    # -- the work --------------------------------------------------------------------
    async def publish_batch(self) -> int:
        """Claim, publish and mark one batch. Returns the number of rows acknowledged."""
        async with self._sessions() as session, session.begin():
            rows = (await session.execute(_CLAIM, {"lock_class": _LOCK_CLASS, "batch": self._batch})).all()
            if not rows:
                return 0
            await self._ensure_topics({row.topic for row in rows})
            futures = []
            for row in rows:
                env = Envelope(
                    id=str(row.ce_id),
                    source=row.ce_source,
                    type=row.ce_type,
                    time=row.ce_time,
                    data=row.payload,
                    subject=row.ce_subject,
                    traceparent=row.traceparent,
                )
                futures.append(
                    await self._producer.send(row.topic, value=row.payload, key=row.message_key.encode(), headers=env.headers())
                )
            results = await asyncio.gather(*futures, return_exceptions=True)
            ok_ids = [row.id for row, res in zip(rows, results) if not isinstance(res, BaseException)]
            failed = [(row, res) for row, res in zip(rows, results) if isinstance(res, BaseException)]
            now = datetime.now(UTC)
            if ok_ids:
                await session.execute(update(outbox).where(outbox.c.id.in_(ok_ids)).values(published_at=now))
            for row, exc in failed:
                await session.execute(
                    update(outbox)
                    .where(outbox.c.id == row.id)
                    .values(attempts=outbox.c.attempts + 1, last_error=repr(exc)[:2000])
                )
        # Committed: only now are the rows published as far as anyone can tell.
        metrics.OUTBOX_PUBLISHED.labels(self._service).inc(len(ok_ids))
        hist = metrics.OUTBOX_LATENCY.labels(self._service)
        for row, res in zip(rows, results):
            if not isinstance(res, BaseException):
                hist.observe(max(0.0, (now - row.ce_time).total_seconds()))
        if failed:
            metrics.OUTBOX_ERRORS.labels(self._service).inc(len(failed))
            raise RuntimeError(f"{len(failed)} of {len(rows)} outbox rows were not acknowledged: {failed[0][1]!r}")
        return len(ok_ids)

    async def _ensure_topics(self, topics: set[str]) -> None:
        # The broker does not auto-create topics; the first event of a topic creates it
        # (idempotent, once per topic and process), so no deployment step can forget one.
        missing = topics - self._known_topics
        if missing:
            await ensure_topics(self._bootstrap, missing, self._partitions)
            self._known_topics |= missing

    async def _refresh_backlog(self) -> None:
        async with self._sessions() as session:
            n = (await session.execute(select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None)))).scalar_one()
        metrics.OUTBOX_BACKLOG.labels(self._service).set(n)

    async def _maybe_purge(self) -> None:
        if time.monotonic() - self._last_purge < 600:
            return
        self._last_purge = time.monotonic()
        cutoff = datetime.now(UTC) - self._retention
        async with self._sessions() as session, session.begin():
            await session.execute(outbox.delete().where(outbox.c.published_at < cutoff))


async def pending_count(session: AsyncSession) -> int:
    return (await session.execute(select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None)))).scalar_one()
