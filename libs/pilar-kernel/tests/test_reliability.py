"""The kernel's guarantees against the real broker and database.

* a state change and its event commit together; a rollback publishes nothing;
* Kafka killed while 1,000 writes are accepted: all 1,000 delivered after restart, per-key
  order kept, each effect applied once;
* a consumer dying after its database commit but before its offset commit: the redelivery
  is a no-op;
* poison messages land on the dead-letter topic and the ones behind them still flow;
  re-drive works;
* two relays side by side publish every row exactly once, in per-key order.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import func, select, update

from kernelkit import applying_consumer, assert_per_key_order, effect_count, effect_rows, event_class, metadata, things
from pilar_kernel.consumer import ConsumerRunner, dlt_topic
from pilar_kernel.db import make_engine, make_session_factory
from pilar_kernel.dlt import peek, redrive
from pilar_kernel.events import Envelope
from pilar_kernel.kafka import ensure_topics, make_consumer, make_producer
from pilar_kernel.outbox import OutboxRelay, add_event, pending_count
from pilar_kernel.tables import outbox
from pilar_kernel.testing import create_schema, eventually

pytestmark = pytest.mark.stack
SOURCE = "/pilar/kerneltest"


@pytest.fixture
async def db(new_database):
    url = new_database("kernel")
    await create_schema(url, metadata)
    engine = make_engine(url, pool_size=5)
    sessions = make_session_factory(engine)
    yield url, sessions
    await engine.dispose()


class Workers:
    """Runs relays and consumer runners as tasks and stops them at the end of a test."""

    def __init__(self) -> None:
        self.items: list[tuple[object, asyncio.Task]] = []

    def start(self, worker) -> asyncio.Task:
        task = asyncio.create_task(worker.run())
        self.items.append((worker, task))
        return task

    async def stop_all(self) -> None:
        for worker, _ in self.items:
            await worker.stop()
        for _, task in self.items:
            try:
                await asyncio.wait_for(task, 15)
            except BaseException:
                task.cancel()


@pytest.fixture
async def workers():
    w = Workers()
    yield w
    await w.stop_all()


def relay(url, sessions, bootstrap, **kw) -> OutboxRelay:
    return OutboxRelay(sessions, database_url=url, bootstrap=bootstrap, service="kerneltest", poll_interval_s=0.5, request_timeout_ms=3000, **kw)


def runner(consumer, sessions, bootstrap, **kw) -> ConsumerRunner:
    return ConsumerRunner(consumer, sessions, bootstrap=bootstrap, partitions=3, backoff_s=0.01, **kw)


async def change(sessions, cls, thing_id: str, seq: int, *, fail: bool = False) -> None:
    """One business transaction: update the thing and record its event."""
    async with sessions() as s, s.begin():
        await s.execute(things.insert().values(id=thing_id, seq=seq) if seq == 0 else update(things).where(things.c.id == thing_id).values(seq=seq))
        await add_event(s, cls(thing_id=thing_id, seq=seq), source=SOURCE)
        if fail:
            raise RuntimeError("business rule failed after the write")


async def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 30) -> list:
    """Every record of ``topic`` from the beginning (fresh group), waiting for ``expected``."""
    consumer = make_consumer(bootstrap, group_id=f"reader-{uuid.uuid4().hex[:6]}")
    await consumer.start()
    consumer.subscribe([topic])
    out: list = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for msgs in batch.values():
                out.extend(msgs)
            if len(out) >= expected and not batch:
                break
    finally:
        await consumer.stop()
    return out


async def test_event_commits_with_state_and_rollback_publishes_nothing(db, kafka_bootstrap, workers):
    url, sessions = db
    cls = event_class()
    await ensure_topics(kafka_bootstrap, [cls.topic], 3)
    await change(sessions, cls, "kept", 0)
    with pytest.raises(RuntimeError):
        await change(sessions, cls, "rolled-back", 0, fail=True)
    async with sessions() as s:
        assert (await s.execute(select(things.c.id))).scalars().all() == ["kept"]
        assert (await s.execute(select(outbox.c.message_key))).scalars().all() == ["kept"]
    workers.start(relay(url, sessions, kafka_bootstrap))
    records = await read_topic(kafka_bootstrap, cls.topic, expected=1, timeout=15)
    assert [r.key for r in records] == [b"kept"]
    env = Envelope.from_kafka(records[0])
    assert env.event() == cls(thing_id="kept", seq=0) and env.source == SOURCE
    await eventually(lambda: pending_zero(sessions))


async def pending_zero(sessions) -> bool:
    async with sessions() as s:
        return await pending_count(s) == 0


async def test_kafka_down_while_1000_writes_then_all_delivered_in_order_once(db, stack, kafka_bootstrap, workers):
    url, sessions = db
    cls = event_class()
    await ensure_topics(kafka_bootstrap, [cls.topic], 3)
    workers.start(relay(url, sessions, kafka_bootstrap))
    workers.start(runner(applying_consumer(f"kt-{uuid.uuid4().hex[:6]}", cls), sessions, kafka_bootstrap))
    await change(sessions, cls, "warmup", 0)
    await eventually(lambda: effect_count(sessions), timeout=30)

    stack.kill_kafka()
    keys, per_key = 50, 20
    for seq in range(per_key):
        # Writes keep being accepted while the broker is dead.
        await asyncio.gather(*(change(sessions, cls, f"k{k:02d}", seq) for k in range(keys)))
    async with sessions() as s:
        assert await pending_count(s) == keys * per_key

    await asyncio.to_thread(stack.start_kafka)
    await eventually(lambda: _count_at_least(sessions, keys * per_key + 1), timeout=120, interval=0.5)
    await asyncio.sleep(2)  # let any duplicate that is still in flight show up
    rows = [r for r in await effect_rows(sessions) if r[0] != "warmup"]
    assert len(rows) == keys * per_key, "each event applied exactly once"
    assert len({(t, s) for t, s, _ in rows}) == keys * per_key
    assert_per_key_order(rows)
    await eventually(lambda: pending_zero(sessions))


async def _count_at_least(sessions, n: int) -> bool:
    return await effect_count(sessions) >= n


async def test_consumer_dying_between_db_commit_and_offset_commit_is_a_no_op_on_redelivery(db, kafka_bootstrap, workers):
    url, sessions = db
    cls = event_class()
    await ensure_topics(kafka_bootstrap, [cls.topic], 3)
    name = f"kt-crash-{uuid.uuid4().hex[:6]}"

    class Crash(Exception):
        pass

    async def die(env):  # runs after the DB commit, before the offset commit
        raise Crash(env.id)

    await change(sessions, cls, "once", 0)
    workers.start(relay(url, sessions, kafka_bootstrap))
    first = runner(applying_consumer(name, cls), sessions, kafka_bootstrap, after_apply=die)
    with pytest.raises(Crash) as crashed:
        await asyncio.wait_for(first.run(), 60)
    assert await effect_count(sessions) == 1

    seen: list[str] = []

    async def record(env):
        seen.append(env.id)

    second = runner(applying_consumer(name, cls), sessions, kafka_bootstrap, after_apply=record)
    workers.start(second)
    await eventually(lambda: _as_coro(seen), timeout=60)
    assert seen == [str(crashed.value)], "the same event was delivered again"
    assert await effect_count(sessions) == 1, "and applying it again changed nothing"


async def _as_coro(value):
    return value


async def test_poison_messages_go_to_dead_letter_and_the_rest_flows_then_redrive(db, kafka_bootstrap, workers):
    url, sessions = db
    cls = event_class()
    name = f"kt-poison-{uuid.uuid4().hex[:6]}"
    dlt = dlt_topic(cls.topic, name)
    await ensure_topics(kafka_bootstrap, [cls.topic], 3)
    broken = {"on": True}
    consumer = applying_consumer(name, cls, fail_when=lambda e: broken["on"] and e.seq == 13)
    workers.start(runner(consumer, sessions, kafka_bootstrap, max_retries=2))

    good = Envelope.for_event(cls(thing_id="p", seq=1), source=SOURCE)
    failing = Envelope.for_event(cls(thing_id="p", seq=13), source=SOURCE)
    bad_schema = Envelope.for_event(cls(thing_id="p", seq=2), source=SOURCE)
    after = Envelope.for_event(cls(thing_id="p", seq=20), source=SOURCE)
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(cls.topic, value=good.data, key=b"p", headers=good.headers())
        await producer.send_and_wait(cls.topic, value=b"not json at all", key=b"p", headers=[("x", b"y")])  # no envelope
        await producer.send_and_wait(cls.topic, value=failing.data, key=b"p", headers=failing.headers())
        await producer.send_and_wait(cls.topic, value=b'{"thing_id": "p"}', key=b"p", headers=bad_schema.headers())
        await producer.send_and_wait(cls.topic, value=after.data, key=b"p", headers=after.headers())
    finally:
        await producer.stop()

    await eventually(lambda: _seqs(sessions, {1, 20}), timeout=60)
    letters = await eventually(lambda: _peek(kafka_bootstrap, dlt, 3), timeout=30)
    assert [l["error"] is not None for l in letters] == [True, True, True]
    assert "ce_specversion" in letters[0]["error"]
    assert "handler refuses seq 13" in letters[1]["error"]
    assert "schema" in letters[2]["error"] and "seq" in letters[2]["error"]
    assert all(l["origin"].startswith(f"{cls.topic}:") for l in letters)

    broken["on"] = False  # the handler is fixed: re-drive
    assert await redrive(kafka_bootstrap, dlt) == 3
    await eventually(lambda: _seqs(sessions, {1, 13, 20}), timeout=60)
    # The two undecodable ones come back to the dead-letter topic; nothing is lost.
    await eventually(lambda: _peek(kafka_bootstrap, dlt, 5), timeout=30)
    assert await redrive(kafka_bootstrap, dlt) == 2  # only what arrived since the last re-drive


async def _seqs(sessions, wanted: set[int]):
    got = {seq for _, seq, _ in await effect_rows(sessions)}
    return got == wanted


async def _peek(bootstrap, dlt, n):
    letters = await peek(bootstrap, dlt)
    return letters if len(letters) >= n else None


async def test_two_relays_side_by_side_publish_each_row_once_in_key_order(db, kafka_bootstrap, workers):
    url, sessions = db
    cls = event_class()
    await ensure_topics(kafka_bootstrap, [cls.topic], 3)
    workers.start(relay(url, sessions, kafka_bootstrap, batch_size=50))
    workers.start(relay(url, sessions, kafka_bootstrap, batch_size=50))
    keys, per_key = 40, 25
    for seq in range(per_key):
        async with sessions() as s, s.begin():
            for k in range(keys):
                await add_event(s, cls(thing_id=f"k{k:02d}", seq=seq), source=SOURCE)
    records = await read_topic(kafka_bootstrap, cls.topic, expected=keys * per_key, timeout=60)
    ids = [Envelope.from_kafka(r).id for r in records]
    assert len(ids) == keys * per_key and len(set(ids)) == len(ids), "every row published exactly once"
    by_partition_key: dict[bytes, list[int]] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_partition_key.setdefault(r.key, []).append(Envelope.from_kafka(r).event().seq)
    for key, seqs in by_partition_key.items():
        assert seqs == sorted(seqs), f"{key!r} out of order"
    async with sessions() as s:
        assert (await s.execute(select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None)))).scalar_one() == 0


async def test_a_failing_event_inside_a_batch_does_not_lose_or_double_its_neighbours(db, kafka_bootstrap, workers):
    url, sessions = db
    cls = event_class()
    name = f"kt-batch-{uuid.uuid4().hex[:6]}"
    await ensure_topics(kafka_bootstrap, [cls.topic], 3)
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:
        for seq in range(30):  # all queued before the consumer starts: they arrive as one batch
            env = Envelope.for_event(cls(thing_id="b", seq=seq), source=SOURCE)
            await producer.send_and_wait(cls.topic, value=env.data, key=b"b", headers=env.headers())
    finally:
        await producer.stop()
    workers.start(runner(applying_consumer(name, cls, fail_when=lambda e: e.seq == 17), sessions, kafka_bootstrap, max_retries=1))
    await eventually(lambda: _count_at_least(sessions, 29), timeout=60)
    letters = await eventually(lambda: _peek(kafka_bootstrap, dlt_topic(cls.topic, name), 1), timeout=30)
    await asyncio.sleep(1)
    rows = await effect_rows(sessions)
    assert [seq for _, seq, _ in rows] == [s for s in range(30) if s != 17], "in order, each once"
    assert "seq 17" in letters[0]["error"]
