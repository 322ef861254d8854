#!/usr/bin/env python
"""Benchmark of Pilar's event path: outbox → Kafka → consumer applied.

Run from the repository root::

    .venv/bin/python bench/event_path.py [--events N] [--rate R] [--size 1024] [--json out.json]

It starts its own PostgreSQL + Kafka (``pilar_devstack.LocalStack`` in a temporary folder)
unless ``--database-url`` / ``--bootstrap`` point at existing ones, then measures in one run:

1. **bare producer** — an aiokafka idempotent producer with the kernel's settings
   (``pilar_kernel.kafka.make_producer``: acks=all, linger 5 ms, 256 KiB batches) sends N
   records shaped exactly like the relay's (1 KB JSON value, key, CloudEvents headers),
   all sends pipelined, then awaits every acknowledgement → msgs/s (the baseline);
2. **relay drain** — N events are put in the outbox in one transaction (not timed) while
   one warm, idle ``OutboxRelay`` waits; from that commit until the last row has
   ``published_at`` (Kafka acknowledged) → events/s and the ratio relay / bare.
   Phases 1 and 2 alternate for ``--rounds`` rounds (fresh topics each), after an untimed
   warm-up of the broker (a fresh JVM is slow until its JIT has run); means are reported;
3. **consumer apply** — a ``ConsumerRunner`` then applies round 1's backlog (an inbox row and
   a ``bench_effects`` row per event, in the runner's transactions) → events/s (informative);
4. **end-to-end latency** — a writer commits one event per transaction at a fixed offered
   rate (open loop: each commit is started on schedule, whatever the previous ones do);
   the relay publishes, the consumer applies. Latency = time the consumer's transaction
   has committed (``after_apply`` hook) − time the writer's commit returned, per event,
   → p50/p95/p99/max, split at the Kafka acknowledgement (``outbox.published_at``).

The consumer runs in a child process by default, as in production where the relay lives in
the producing service and the consumer in another one; ``--consumer-in-process`` puts it
in the benchmark's event loop instead. Every phase also reports the CPU used by this
process, the consumer, PostgreSQL and Kafka, and the machine's busy time that is not ours
("other": other people's work on a shared box). Benchmarks print figures; nothing here asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import math
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import uuid
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import structlog
from sqlalchemy import BigInteger, Column, DateTime, Identity, Integer, MetaData, Table, Text, func, insert, select
from sqlalchemy.engine import make_url

from pilar_kernel.consumer import Consumer, ConsumerRunner
from pilar_kernel.db import make_engine, make_session_factory
from pilar_kernel.events import Envelope, Event
from pilar_kernel.kafka import ensure_topics, make_producer
from pilar_kernel.outbox import OutboxRelay, add_event, lane_of
from pilar_kernel.tables import outbox
from pilar_kernel.testing import create_schema

import procstat  # bench/procstat.py: CPU accounting shared by the benchmarks

SOURCE = "/pilar/bench"
SERVICE = "bench"
TARGET_RATIO = 0.5
TARGET_P99_MS = 250.0

# --------------------------------------------------------------------------- the bench domain

bench_metadata = MetaData()

bench_effects = Table(
    "bench_effects",
    bench_metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("kind", Text, nullable=False),  # "tput" | "lat"
    Column("seq", Integer, nullable=False),
    Column("ce_id", Text, nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),  # clock_timestamp() inside the apply
)


@functools.cache
def event_class(tag: str, name: str) -> type[Event]:
    """A bench event type on its own fresh topic (a shared broker never mixes runs or phases)."""

    class BenchRecorded(Event):
        """Bench event: an aggregate key, a sequence number and padding up to the wanted size."""

        ce_type: ClassVar[str] = f"id.go.jatimprov.dinsos.bench.{name}{tag}.recorded.v1"
        topic: ClassVar[str] = f"bench.{name}{tag}"
        key_field: ClassVar[str] = "key"

        key: str
        seq: int
        pad: str

    return BenchRecorded


def event_classes(tag: str) -> tuple[type[Event], type[Event]]:
    """(throughput, latency) event types: the consumer subscribes to these two topics."""
    return event_class(tag, "tput"), event_class(tag, "lat")


def make_event(cls: type[Event], seq: int, size: int, keys: int) -> Event:
    """An event whose JSON value is exactly ``size`` bytes (when size allows)."""
    key = f"k{seq % keys:04d}"
    bare = len(cls(key=key, seq=seq, pad="").to_json())
    return cls(key=key, seq=seq, pad="x" * max(0, size - bare))


def outbox_row(event: Event) -> dict[str, Any]:
    """The row :func:`pilar_kernel.outbox.add_event` writes (for the untimed bulk pre-fill)."""
    env = Envelope.for_event(event, source=SOURCE)
    return {
        "topic": event.topic, "message_key": event.aggregate_id, "lane": lane_of(event.aggregate_id),
        "ce_id": uuid.UUID(env.id), "ce_type": env.type, "ce_source": env.source, "ce_time": env.time,
        "ce_subject": env.subject, "traceparent": env.traceparent, "payload": env.data,
    }  # fmt: skip


def bench_consumer(tag: str, tput: type[Event], lat: type[Event]) -> Consumer:
    consumer = Consumer(name=f"bench-{tag}")

    async def apply(kind: str, session, event, env) -> None:
        await session.execute(
            bench_effects.insert().values(kind=kind, seq=event.seq, ce_id=env.id, applied_at=func.clock_timestamp())
        )

    @consumer.on(tput)
    async def apply_tput(session, event, env) -> None:
        await apply("tput", session, event, env)

    @consumer.on(lat)
    async def apply_lat(session, event, env) -> None:
        await apply("lat", session, event, env)

    return consumer


# --------------------------------------------------------------------------- measuring helpers


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summary_ms(values_s: list[float]) -> dict[str, float]:
    v = sorted(x * 1000 for x in values_s)
    if not v:
        return {"n": 0}
    return {
        "n": len(v),
        "min": v[0],
        "p50": percentile(v, 50),
        "p95": percentile(v, 95),
        "p99": percentile(v, 99),
        "max": v[-1],
        "mean": sum(v) / len(v),
    }


class ProcessGroups:
    """The processes whose CPU is accounted per phase: PostgreSQL (postmaster + backends), Kafka, consumer."""

    def __init__(self, pg_port: int | None, kafka_port: int | None) -> None:
        self.postmaster = procstat.pid_listening_on(pg_port)
        self.kafka = procstat.pid_listening_on(kafka_port)
        self.consumer: int | None = None

    def pids(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        if self.postmaster:
            out["postgres"] = procstat.with_children(self.postmaster)
        if self.kafka:
            out["kafka"] = [self.kafka]
        if self.consumer:
            out["consumer"] = [self.consumer]
        return out


class CpuMeter:
    """CPU used during a phase, in % of one core: this process, the other groups, the whole machine.

    ``other`` is the machine's busy time not accounted to us: other people's work on a shared box.
    Backends that exit during a phase are missed, so ``postgres`` is a lower bound.
    """

    def __init__(self, groups: ProcessGroups) -> None:
        self.groups = groups
        self.wall = time.perf_counter()
        self.proc = time.process_time()
        self.start = procstat.group_cpu(groups.pids())
        self.busy, self.total = procstat.machine_ticks()

    def read(self, events: int | None = None) -> dict[str, Any]:
        wall = time.perf_counter() - self.wall
        used = {"bench": time.process_time() - self.proc}
        for name, now in procstat.group_cpu(self.groups.pids()).items():
            before = self.start.get(name, {})
            used[name] = sum(c - before.get(p, 0.0) for p, c in now.items())
        busy, total = procstat.machine_ticks()
        cpus = os.cpu_count() or 1
        machine = (busy - self.busy) / (total - self.total) * cpus * wall if total > self.total else math.nan
        used["other"] = max(0.0, machine - sum(used.values())) if not math.isnan(machine) else math.nan
        used["machine"] = machine
        out: dict[str, Any] = {
            "wall_s": wall,
            "loadavg_1m": os.getloadavg()[0],
            "cpu_pct_of_one_core": {k: 100 * v / wall for k, v in used.items()},
        }
        if events:
            out["cpu_ms_per_event"] = {k: 1000 * v / events for k, v in used.items() if k not in ("other", "machine")}
        return out


async def wait_for(check, *, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:.0f} s (last: {value!r})")
        await asyncio.sleep(interval)


async def _is_zero(coro) -> bool:
    return (await coro) == 0


async def _value(value):
    return value


# --------------------------------------------------------------------------- the consumer side

CHILD_FLAG = "--_consumer-child"


class AppliedTimes:
    """ce_id → wall-clock time at which the consumer's transaction had committed."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.failure: str | None = None  # set when the consumer died: waiting on it is pointless

    def add(self, ce_id: str, t: float) -> None:
        self.times[ce_id] = t

    def has_all(self, ce_ids) -> bool:
        if self.failure:
            raise RuntimeError(f"the consumer stopped: {self.failure}")
        return all(i in self.times for i in ce_ids)


def make_runner(cfg: dict[str, Any], sessions, after_apply) -> ConsumerRunner:
    tput, lat = event_classes(cfg["tag"])
    return ConsumerRunner(
        bench_consumer(cfg["tag"], tput, lat), sessions, bootstrap=cfg["bootstrap"], partitions=cfg["partitions"],
        after_apply=after_apply,  # runs after the consumer's DB commit: the event is applied
    )  # fmt: skip


class InProcessConsumer:
    """The ConsumerRunner as a task in the benchmark's own event loop."""

    pid = None

    def __init__(self, cfg: dict[str, Any], applied: AppliedTimes) -> None:
        self.cfg, self.applied = cfg, applied
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._engine = make_engine(self.cfg["database_url"], pool_size=5)

        async def after_apply(env: Envelope) -> None:
            self.applied.add(env.id, time.time())

        self._runner = make_runner(self.cfg, make_session_factory(self._engine), after_apply)
        self._task = asyncio.create_task(self._runner.run())
        self._task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.applied.failure = repr(task.exception())

    async def stop(self) -> None:
        if self._task is not None:
            await self._runner.stop()
            try:
                await asyncio.wait_for(self._task, 15)
            except BaseException:
                self._task.cancel()
            await self._engine.dispose()


class ChildProcessConsumer:
    """The ConsumerRunner in a child process (``CHILD_FLAG``), reporting ``<ce_id> <time>`` lines."""

    def __init__(self, cfg: dict[str, Any], applied: AppliedTimes) -> None:
        self.cfg, self.applied = cfg, applied
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, os.path.abspath(__file__), CHILD_FLAG, json.dumps(self.cfg),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 20,
        )  # fmt: skip
        # Wait until it has imported everything, so its start-up CPU is not billed to a phase.
        first = await asyncio.wait_for(self.proc.stdout.readline(), 120)
        if first.strip() != b"ready":
            raise RuntimeError(f"consumer process did not start (exit {await self.proc.wait()}); its stderr is above")
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc and self.proc.stdout
        while line := await self.proc.stdout.readline():
            parts = line.split()
            if len(parts) == 2:
                self.applied.add(parts[0].decode(), float(parts[1]))
        if not self._stopping:
            self.applied.failure = f"consumer process exited with {await self.proc.wait()} (its stderr is above)"

    async def stop(self) -> None:
        if self.proc is None:
            return
        self._stopping = True
        if self.proc.returncode is None:
            self.proc.stdin.close()  # EOF on its stdin: it stops its runner and exits
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)


async def consumer_child(cfg: dict[str, Any]) -> None:
    engine = make_engine(cfg["database_url"], pool_size=5)
    out = sys.stdout

    async def after_apply(env: Envelope) -> None:
        out.write(f"{env.id} {time.time():.6f}\n")
        out.flush()

    runner = make_runner(cfg, make_session_factory(engine), after_apply)
    out.write("ready\n")
    out.flush()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    stdin = sys.stdin.fileno()
    loop.add_reader(stdin, lambda: None if os.read(stdin, 4096) else stop.set())
    task = asyncio.create_task(runner.run())
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # raise whatever ended it
    loop.remove_reader(stdin)
    await runner.stop()
    try:
        await asyncio.wait_for(task, 15)
    except TimeoutError:
        task.cancel()
    await engine.dispose()


# --------------------------------------------------------------------------- phases


async def phase_bare_producer(bootstrap: str, topic: str, records: list[tuple], groups: ProcessGroups) -> dict[str, Any]:
    """The baseline: the kernel's producer settings, no database, every send pipelined."""
    producer = make_producer(bootstrap, client_id="bench-bare")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=b"{}", key=b"warmup")  # metadata + producer id
        meter = CpuMeter(groups)
        t0 = time.perf_counter()
        futures = [await producer.send(topic, value=v, key=k, headers=h) for v, k, h in records]
        await asyncio.gather(*futures)
        elapsed = time.perf_counter() - t0
        cpu = meter.read(len(records))
    finally:
        await producer.stop()
    return {"events": len(records), "seconds": elapsed, "rate": len(records) / elapsed, "cpu": cpu}


async def count_pending(sessions, ce_type: str) -> int:
    async with sessions() as s:
        q = select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None), outbox.c.ce_type == ce_type)
        return (await s.execute(q)).scalar_one()


async def phase_relay_drain(sessions, events: list[Event], groups: ProcessGroups) -> dict[str, Any]:
    """A warm, idle relay; the whole backlog appears with one commit; timed until the last ack."""
    ce_type = events[0].ce_type
    async with sessions() as s:
        before = (await s.execute(select(func.coalesce(func.max(outbox.c.id), 0)))).scalar_one()
    t_fill = time.perf_counter()
    async with sessions() as s:
        async with s.begin():
            rows = [outbox_row(e) for e in events]
            for i in range(0, len(rows), 1000):
                await s.execute(insert(outbox), rows[i : i + 1000])
            fill_s = time.perf_counter() - t_fill
            meter = CpuMeter(groups)
            t0_wall = time.time()  # just before the commit: the rows cannot be seen earlier
        # committed here; the trigger's NOTIFY wakes the relay
    await wait_for(lambda: _is_zero(count_pending(sessions, ce_type)), timeout=300, interval=0.02, what="outbox drained")
    async with sessions() as s:
        stamps = (
            await s.execute(
                select(outbox.c.published_at, func.count())
                .where(outbox.c.ce_type == ce_type, outbox.c.id > before)
                .group_by(outbox.c.published_at)
                .order_by(outbox.c.published_at)
            )
        ).all()
    cpu = meter.read(len(events))
    # Each relay batch stamps its rows with one published_at: one group = one batch.
    times = [r[0].timestamp() for r in stamps]
    drain_s = times[-1] - t0_wall
    gaps = [b - a for a, b in zip([t0_wall, *times], times)]
    return {
        "events": len(events),
        "fill_seconds": fill_s,
        "seconds": drain_s,
        "rate": len(events) / drain_s,
        "batches": len(times),
        "mean_batch": len(events) / len(times),
        "batch_cycle_ms": summary_ms(gaps[1:]) if len(gaps) > 1 else summary_ms(gaps),
        "first_batch_ms": gaps[0] * 1000,
        "cpu": cpu,
    }


async def phase_consumer_apply(applied: AppliedTimes, ce_ids: list[str], groups: ProcessGroups) -> dict[str, Any]:
    meter = CpuMeter(groups)
    await wait_for(lambda: _value(applied.has_all(ce_ids)), timeout=600, interval=0.1, what="backlog applied")
    cpu = meter.read(len(ce_ids))
    times = sorted(applied.times[i] for i in ce_ids)
    span = times[-1] - times[0]
    return {"events": len(times), "seconds": span, "rate": (len(times) - 1) / span if span > 0 else math.nan, "cpu": cpu}


async def phase_latency(
    sessions, applied: AppliedTimes, cls: type[Event], groups: ProcessGroups, *, rate: float, duration: float,
    size: int, keys: int, concurrency: int,
) -> dict[str, Any]:  # fmt: skip
    """Open-loop writer: event i's transaction starts at t0 + i/rate, whatever the others do."""
    n = max(2, int(rate * duration))
    events = [make_event(cls, seq, size, keys) for seq in range(n)]
    committed: dict[str, float] = {}
    lag: list[float] = []
    gate = asyncio.Semaphore(concurrency)
    loop = asyncio.get_running_loop()

    async def write(event: Event, due: float) -> None:
        async with gate:
            lag.append(loop.time() - due)
            async with sessions() as s, s.begin():  # one business transaction per event
                env = await add_event(s, event, source=SOURCE)
            committed[env.id] = time.time()  # the commit has returned

    meter = CpuMeter(groups)
    start = loop.time() + 0.05
    tasks = []
    for i, event in enumerate(events):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(write(event, due)))
    await asyncio.gather(*tasks)
    commit_times = sorted(committed.values())
    achieved = (n - 1) / (commit_times[-1] - commit_times[0])
    try:
        await wait_for(lambda: _value(applied.has_all(committed)), timeout=120, interval=0.05, what="all events applied")
    except TimeoutError as exc:
        print(f"      warning: {exc}", file=sys.stderr)
    cpu = meter.read(n)
    async with sessions() as s:
        result = await s.execute(select(outbox.c.ce_id, outbox.c.published_at).where(outbox.c.ce_type == cls.ce_type))
        acked = {str(r.ce_id): r.published_at.timestamp() for r in result.all() if r.published_at is not None}
    ids = [i for i in committed if i in applied.times]
    return {
        "offered_rate": rate,
        "duration_s": duration,
        "events": n,
        "achieved_rate": achieved,
        "applied": len(ids),
        "missing": n - len(ids),
        "commit_to_applied_ms": summary_ms([applied.times[i] - committed[i] for i in ids]),
        "commit_to_kafka_ack_ms": summary_ms([acked[i] - committed[i] for i in ids if i in acked]),
        "kafka_ack_to_applied_ms": summary_ms([applied.times[i] - acked[i] for i in ids if i in acked]),
        "writer_start_lag_ms": summary_ms(lag),
        "cpu": cpu,
    }


# --------------------------------------------------------------------------- the run


def _local_port(url_or_bootstrap: str, *, kafka: bool) -> int | None:
    try:
        if kafka:
            host, port = url_or_bootstrap.split(",")[0].rsplit(":", 1)
        else:
            u = make_url(url_or_bootstrap)
            host, port = u.host or "localhost", u.port or 5432
        return int(port) if host in ("127.0.0.1", "localhost", "::1") else None
    except (ValueError, TypeError):
        return None


async def consumer_side(args, result, sessions, applied, groups, tput_cls, lat_cls, consumer) -> None:
    """Phases 3 and 4: the consumer applies the throughput backlog, then the latency run."""
    where = "in process" if args.consumer_in_process else "child process"
    query = select(outbox.c.ce_type, outbox.c.ce_id).where(outbox.c.ce_type.in_([tput_cls.ce_type, lat_cls.ce_type]))
    async with sessions() as s:
        rows = (await s.execute(query)).all()
    tput_ids = [str(r.ce_id) for r in rows if r.ce_type == tput_cls.ce_type]
    warm_ids = [str(r.ce_id) for r in rows if r.ce_type == lat_cls.ce_type]  # the relay warm-up event
    if "consumer" in args.phases:
        # 3. consumer apply of round 1's backlog --------------------------------------------
        print(f"[consumer] applying round 1's {args.events} events ({where}) ...", end=" ", flush=True)
        result["consumer_apply"] = await phase_consumer_apply(applied, tput_ids, groups)
        print(f"{result['consumer_apply']['rate']:,.0f} events/s", flush=True)
    elif tput_ids:
        await wait_for(lambda: _value(applied.has_all(tput_ids)), timeout=600, what="backlog applied")
    await wait_for(lambda: _value(applied.has_all(warm_ids)), timeout=60, what="consumer warm-up")
    if "latency" not in args.phases:
        return

    # 4. latency at a fixed offered rate ----------------------------------------------------
    print(f"[latency] {args.rate:g} events/s offered for {args.duration:g} s ...", end=" ", flush=True)
    result["latency"] = await phase_latency(
        sessions, applied, lat_cls, groups, rate=args.rate, duration=args.duration, size=args.size,
        keys=args.keys, concurrency=args.writer_concurrency,
    )  # fmt: skip
    lat = result["latency"]["commit_to_applied_ms"]
    print(f"p50 {lat.get('p50', math.nan):,.1f} ms, p99 {lat.get('p99', math.nan):,.1f} ms", flush=True)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    tput_cls, lat_cls = event_classes(tag)
    partitions = args.partitions
    groups = ProcessGroups(_local_port(args.database_url, kafka=False), _local_port(args.bootstrap, kafka=True))
    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "loadavg_at_start": os.getloadavg()},
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }  # fmt: skip
    print(f"tag {tag}; {os.cpu_count()} CPUs; load average {'/'.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)

    await create_schema(args.database_url, bench_metadata)
    round_cls = [tput_cls] + [event_class(tag, f"tput{r}x") for r in range(2, args.rounds + 1)]
    topics = [c.topic for c in round_cls] + [lat_cls.topic, f"bench.bare{tag}", f"bench.warm{tag}"]
    await ensure_topics(args.bootstrap, topics, partitions)

    engine = make_engine(args.database_url, pool_size=10)  # the producing service's engine: writer + relay
    sessions = make_session_factory(engine)
    relay = OutboxRelay(
        sessions, database_url=args.database_url, bootstrap=args.bootstrap, service=SERVICE,
        batch_size=args.batch_size, poll_interval_s=args.poll_interval, partitions=partitions,
    )  # fmt: skip
    relay_task = asyncio.create_task(relay.run())
    applied = AppliedTimes()
    cfg = {"tag": tag, "database_url": args.database_url, "bootstrap": args.bootstrap, "partitions": partitions}
    consumer = InProcessConsumer(cfg, applied) if args.consumer_in_process else ChildProcessConsumer(cfg, applied)
    try:
        # Warm the relay: LISTEN connection and producer up, and one event on every topic it
        # will publish to (it checks a topic's existence on first use); then it idles.
        for cls in (lat_cls, *round_cls):
            async with sessions() as s, s.begin():
                await add_event(s, make_event(cls, -1, args.size, args.keys), source=SOURCE)
        for cls in (lat_cls, *round_cls):
            await wait_for(lambda: _is_zero(count_pending(sessions, cls.ce_type)), timeout=60, what="relay warm-up")

        # 1 + 2. bare producer and relay drain, alternating --------------------------------
        result["bare_rounds"], result["relay_rounds"] = [], []
        for r, cls in enumerate(round_cls if "throughput" in args.phases else [], 1):
            events = [make_event(cls, seq, args.size, args.keys) for seq in range(args.events)]
            records = [(e.to_json(), e.aggregate_id.encode(), Envelope.for_event(e, source=SOURCE).headers()) for e in events]
            if r == 1 and args.warmup:
                # A freshly started broker runs slowly until its JIT has compiled the hot paths.
                print(f"[warm-up] {args.warmup} untimed records through the broker ...", end=" ", flush=True)
                warm_records = (records * (args.warmup // len(records) + 1))[: args.warmup]
                warm = await phase_bare_producer(args.bootstrap, f"bench.warm{tag}", warm_records, groups)
                print(f"{warm['rate']:,.0f} msg/s", flush=True)
            print(f"[round {r}/{args.rounds}] bare idempotent producer, {args.events} × {args.size} B ...", end=" ", flush=True)
            bare = await phase_bare_producer(args.bootstrap, f"bench.bare{tag}", records, groups)
            result["bare_rounds"].append(bare)
            print(f"{bare['rate']:,.0f} msg/s", flush=True)
            print(f"[round {r}/{args.rounds}] relay drain of a {args.events}-event backlog, batch {args.batch_size} ...",
                  end=" ", flush=True)  # fmt: skip
            drain = await phase_relay_drain(sessions, events, groups)
            drain["ratio_to_bare"] = drain["rate"] / bare["rate"]
            result["relay_rounds"].append(drain)
            print(f"{drain['rate']:,.0f} events/s (ratio {drain['ratio_to_bare']:.2f}; pre-fill {drain['fill_seconds']:.1f} s "
                  "not counted)", flush=True)  # fmt: skip
        if result["relay_rounds"]:
            bare_rate = sum(b["rate"] for b in result["bare_rounds"]) / args.rounds
            relay_rate = sum(d["rate"] for d in result["relay_rounds"]) / args.rounds
            result["throughput"] = {"bare_rate": bare_rate, "relay_rate": relay_rate, "ratio": relay_rate / bare_rate}

        if "consumer" in args.phases or "latency" in args.phases:
            await consumer.start()
            groups.consumer = consumer.pid
            await consumer_side(args, result, sessions, applied, groups, tput_cls, lat_cls, consumer)
    finally:
        await consumer.stop()
        await relay.stop()
        try:
            await asyncio.wait_for(relay_task, 15)
        except BaseException:
            relay_task.cancel()
        async with sessions() as s:
            counts = (await s.execute(select(bench_effects.c.kind, func.count()).group_by(bench_effects.c.kind))).all()
        await engine.dispose()
    result["effects_rows"] = {k: n for k, n in counts}
    result["machine"]["loadavg_at_end"] = os.getloadavg()
    return result


# --------------------------------------------------------------------------- report


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _f(d: dict, key: str) -> float:
    return d.get(key, math.nan)


def report(r: dict[str, Any]) -> str:
    a = r["args"]
    la0, la1 = r["machine"]["loadavg_at_start"], r["machine"]["loadavg_at_end"]
    lines = [
        f"Pilar event path benchmark — {r['when']}, {r['machine']['cpus']} CPUs, "
        f"load average {la0[0]:.2f} at start, {la1[0]:.2f} at end",
        f"{a['events']} events × {a['size']} B per throughput round ({a['rounds']} rounds), {a['partitions']} partitions, "
        f"{a['keys']} keys; relay batch {a['batch_size']}, poll {a['poll_interval']:g} s; consumer "
        f"{'in process' if a['consumer_in_process'] else 'in a child process'}",
        "",
    ]  # fmt: skip
    row = "{:<46} {:>18} {:>10}  {}"
    lines += [row.format("figure", "value", "target", ""), "-" * 82]
    phases: list[tuple[str, dict]] = []
    if "throughput" in r:
        tp, d0 = r["throughput"], r["relay_rounds"][0]
        rounds = " / ".join(f"{b['rate']:,.0f}" for b in r["bare_rounds"])
        lines.append(row.format(f"bare idempotent producer (rounds {rounds})", f"{tp['bare_rate']:,.0f} msg/s", "", ""))
        rounds = " / ".join(f"{d['rate']:,.0f}" for d in r["relay_rounds"])
        lines.append(row.format(f"relay drain, outbox → acked (rounds {rounds})", f"{tp['relay_rate']:,.0f} ev/s", "", ""))
        ok = tp["ratio"] >= TARGET_RATIO
        lines.append(row.format("relay / bare producer", f"{tp['ratio']:.2f}", f"≥ {TARGET_RATIO:.2f}", verdict(ok)))
        cyc = d0["batch_cycle_ms"]
        lines.append(row.format(f"  relay: {d0['batches']} batches of {d0['mean_batch']:.0f}, cycle p50",
                                f"{_f(cyc, 'p50'):,.1f} ms", "", ""))  # fmt: skip
        phases += [("bare producer", r["bare_rounds"][0]["cpu"]), ("relay drain", d0["cpu"])]
    if "consumer_apply" in r:
        cons = r["consumer_apply"]
        lines.append(row.format("consumer apply (ConsumerRunner, backlog)", f"{cons['rate']:,.0f} ev/s", "", ""))
        phases.append(("consumer apply", cons["cpu"]))
    if "latency" in r:
        lat = r["latency"]
        e2e, ack, app = lat["commit_to_applied_ms"], lat["commit_to_kafka_ack_ms"], lat["kafka_ack_to_applied_ms"]
        lines.append(row.format("latency run: offered / achieved commit rate",
                                f"{lat['offered_rate']:g} / {lat['achieved_rate']:,.0f} ev/s", "", ""))  # fmt: skip
        lines.append(row.format("latency run: applied / written", f"{lat['applied']} / {lat['events']}", "", ""))
        for p in ("p50", "p95", "p99", "max"):
            target, word = "", ""
            if p == "p99":
                kept_rate = lat["achieved_rate"] >= 0.95 * lat["offered_rate"]
                ok = _f(e2e, p) < TARGET_P99_MS and lat["missing"] == 0 and kept_rate
                target, word = f"< {TARGET_P99_MS:g} ms", verdict(ok) + ("" if kept_rate else " (rate not held)")
            lines.append(row.format(f"commit → applied {p}", f"{_f(e2e, p):,.1f} ms", target, word))
        for label, d in (("commit → Kafka ack (relay)", ack), ("Kafka ack → applied (consumer)", app),
                         ("writer behind its schedule", lat["writer_start_lag_ms"])):  # fmt: skip
            lines.append(row.format(f"  {label} p50 / p99", f"{_f(d, 'p50'):,.1f} / {_f(d, 'p99'):,.1f} ms", "", ""))
        phases.append(("latency run", lat["cpu"]))
    lines += ["", "CPU, % of one core (CPU ms per event) — 'other' is busy time on the machine that is not this run's:"]
    names = ["bench", "consumer", "postgres", "kafka", "other", "machine"]
    lines.append("  {:<15}".format("") + "".join(f"{n:>17}" for n in names) + "    load")
    for label, cpu in phases:
        pct, per = cpu["cpu_pct_of_one_core"], cpu.get("cpu_ms_per_event", {})
        cells = []
        for n in names:
            if n not in pct:
                cells.append(f"{'–':>17}")
            elif n in per:
                cells.append(f"{pct[n]:>7.0f}% ({per[n]:4.2f} ms)")
            else:
                cells.append(f"{pct[n]:>7.0f}%" + " " * 10)
        lines.append(f"  {label:<15}" + "".join(cells) + f"    {cpu['loadavg_1m']:.2f}")
    if not a["consumer_in_process"]:
        lines.append("  (bench = writer + relay + bare producer; the consumer runs in its own process)")
    else:
        lines.append("  (bench = writer + relay + bare producer + consumer, all in one event loop)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- entry point


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Benchmark the outbox → Kafka → consumer event path.")
    p.add_argument("--events", type=int, default=10_000, help="events per throughput round (default 10000)")
    p.add_argument("--rounds", type=int, default=2, help="bare/relay throughput rounds, alternating (default 2)")
    p.add_argument("--warmup", type=int, default=30_000, help="untimed records sent first to warm the broker (default 30000)")
    p.add_argument("--rate", type=float, default=500.0, help="offered rate of the latency run, events/s (default 500)")
    p.add_argument("--duration", type=float, default=20.0, help="length of the latency run, seconds (default 20)")
    p.add_argument("--size", type=int, default=1024, help="event JSON size in bytes (default 1024)")
    p.add_argument("--keys", type=int, default=100, help="distinct aggregate keys (default 100)")
    p.add_argument("--partitions", type=int, default=3, help="partitions per topic (default 3)")
    p.add_argument("--batch-size", type=int, default=500, help="OutboxRelay batch_size (kernel default 500)")
    p.add_argument("--poll-interval", type=float, default=1.0, help="OutboxRelay poll_interval_s (kernel default 1.0)")
    p.add_argument("--writer-concurrency", type=int, default=16, help="most writer transactions in flight (default 16)")
    p.add_argument("--consumer-in-process", action="store_true", help="run the consumer in this event loop, not a child")
    p.add_argument("--phases", default="throughput,consumer,latency",
                   help="comma-separated subset of throughput,consumer,latency to run (default: all)")
    p.add_argument("--bootstrap", help="use this Kafka instead of starting one")
    p.add_argument("--database-url", help="use this SCRATCH database: the kernel tables in it are dropped and re-created")
    p.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    p.add_argument("--keep", action="store_true", help="keep the temporary stack folder (logs) after the run")
    args = p.parse_args(argv)
    args.phases = [x.strip() for x in args.phases.split(",") if x.strip()]
    if not set(args.phases) <= {"throughput", "consumer", "latency"} or not args.phases:
        p.error("--phases takes a comma-separated subset of throughput,consumer,latency")
    if "consumer" in args.phases and "throughput" not in args.phases:
        p.error("the consumer phase applies the throughput phase's backlog: add throughput")
    if args.events < 1 or args.rounds < 1 or args.rate <= 0 or args.duration <= 0:
        p.error("--events, --rounds, --rate and --duration must be positive")
    return args


def quiet_logs() -> None:
    # SQLModel's AsyncSession flags session.execute() (the kernel's own idiom) as deprecated.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    quiet_logs()
    if argv[:1] == [CHILD_FLAG]:
        asyncio.run(consumer_child(json.loads(argv[1])))
        return 0
    args = parse_args(argv)
    stack = run_dir = None
    try:
        if not args.database_url or not args.bootstrap:
            from pilar_devstack import LocalStack, free_port

            run_dir = Path(tempfile.mkdtemp(prefix="pilar-bench-"))
            stack = LocalStack(run_dir=run_dir, pg_admin_url="", pg_port=free_port(), kafka_port=free_port(),
                               controller_port=free_port(), partitions=args.partitions)  # fmt: skip
            t = time.perf_counter()
            if not args.database_url:
                stack.start_postgres()
                stack.create_databases(["bench"])
                args.database_url = stack.database_url("bench")
            if not args.bootstrap:
                stack.start_kafka()
                args.bootstrap = stack.kafka_bootstrap
            print(f"local stack up in {time.perf_counter() - t:.1f} s ({run_dir})", flush=True)
        result = asyncio.run(run(args))
    finally:
        if stack is not None:
            stack.stop()
        if run_dir is not None and not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    print()
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"\nJSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
