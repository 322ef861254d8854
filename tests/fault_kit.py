"""Helpers of the fault suite (``test_faults.py``): a burst of writes that carries on through a
fault the way a careful client does, counting in the services' own databases, the dead-letter
topics, and the time until every process answers ``/ready`` again.

Everything here talks to real processes: the gateway over HTTP, PostgreSQL with asyncpg,
Kafka with aiokafka. The faults themselves are ``LocalStack`` calls (``kill_kafka``,
``kill_component``, ``restart_component``, ``restart_postgres``), which block: run them with
``asyncio.to_thread`` so that the burst goes on while they happen.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta

import asyncpg
import httpx

from pilar_devstack import LocalStack
from pilar_kernel import regions
from pilar_kernel.nik import make_nik
from platform_testkit import Platform

READY_TIMEOUT_S = 90.0


# --------------------------------------------------------------------------- the databases


def dsn(stack: LocalStack, database: str) -> str:
    """A plain asyncpg URL of a service database (the role the services use)."""
    return stack.database_url(database).replace("postgresql+asyncpg://", "postgresql://", 1)


async def fetch(stack: LocalStack, database: str, sql: str, *args) -> list[asyncpg.Record]:
    """One query on a service's own database, on a connection of its own (so that a restarted
    server costs nothing but this call)."""
    conn = await asyncpg.connect(dsn(stack, database), timeout=10)
    try:
        return await conn.fetch(sql, *args, timeout=30)
    finally:
        await conn.close()


async def fetchval(stack: LocalStack, database: str, sql: str, *args):
    rows = await fetch(stack, database, sql, *args)
    return rows[0][0] if rows else None


# --------------------------------------------------------------------------- readiness


async def _ready(client: httpx.AsyncClient, stack: LocalStack, name: str, seen: dict[str, str] | None = None) -> int | str:
    """The status of ``GET /ready``, or the error in the way; ``seen`` keeps the last answer that was not green."""
    try:
        response = await client.get(f"{stack.url(name)}/ready", timeout=5.0)
    except httpx.HTTPError as exc:
        if seen is not None:
            seen[name] = type(exc).__name__
        return type(exc).__name__
    if response.status_code != 200 and seen is not None:
        seen[name] = f"{response.status_code} {response.text[:160]}"
    return response.status_code


async def all_ready(stack: LocalStack, since: float, *, what: str, timeout: float = READY_TIMEOUT_S) -> float:
    """Poll every process's ``/ready`` (each on its own) until all answer 200 at once; print and
    return the seconds from ``since`` (a ``time.monotonic()`` taken when the restart began), with
    the last processes to get there. Nobody helps them along."""
    deadline = since + timeout
    names = [c.name for c in stack.components]
    seen: dict[str, str] = {}
    async with httpx.AsyncClient() as client:

        async def green(name: str) -> float:
            while True:
                state = await _ready(client, stack, name, seen)
                if state == 200:
                    return time.monotonic() - since
                if time.monotonic() > deadline:
                    raise AssertionError(f"{what}: {name} /ready still {state} {timeout:.0f} s after the restart began; "
                                         f"log {stack.log_path(name)}")
                await asyncio.sleep(0.2)

        while True:
            at = dict(zip(names, await asyncio.gather(*(green(name) for name in names))))
            states = dict(zip(names, await asyncio.gather(*(_ready(client, stack, name) for name in names))))
            if all(state == 200 for state in states.values()):  # all at once, not one after another
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not every /ready green at once after {timeout:.0f} s: {states}; logs in {stack.logs_dir}")
    elapsed = time.monotonic() - since
    slowest = sorted(at.items(), key=lambda item: -item[1])[:3]
    print(f"\n[faults] {what}: every /ready green {elapsed:.1f} s after the restart began "
          f"(last: {', '.join(f'{name} {seconds:.1f} s' for name, seconds in slowest)})")
    for name, _seconds in slowest:
        if name in seen:
            print(f"         {name} answered before: {seen[name]}")
    return elapsed


# --------------------------------------------------------------------------- dead letters


async def dead_letters(stack: LocalStack) -> dict[str, int]:
    """Messages on every dead-letter topic (``<topic>.dlt.<consumer>``) with any, by topic."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=stack.kafka_bootstrap, enable_auto_commit=False, request_timeout_ms=10_000)
    await asyncio.wait_for(consumer.start(), 30)
    try:
        topics = [t for t in await consumer.topics() if ".dlt." in t]
        partitions = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        if not partitions:
            return {}
        ends = await consumer.end_offsets(partitions)
        begins = await consumer.beginning_offsets(partitions)
        found: Counter[str] = Counter()
        for tp in partitions:
            found[tp.topic] += ends[tp] - begins[tp]
        return {topic: n for topic, n in found.items() if n}
    finally:
        await consumer.stop()


# --------------------------------------------------------------------------- a burst of writes


def person_bodies(count: int, *, seed: str, serial_base: int) -> list[dict]:
    """``count`` synthetic persons (valid NIKs, unique by serial) spread over every regency."""
    rng = random.Random(seed)
    regencies = regions.jatim_regencies()
    bodies = []
    for i in range(count):
        regency = regencies[i % len(regencies)]
        district = rng.choice([d for d in regions.children(regency.code, current_only=True) if d.level == "district"])
        villages = regions.children(district.code, current_only=True)
        birth = date(1950, 1, 1) + timedelta(days=rng.randrange(0, 365 * 50))
        sex = rng.choice("MF")
        bodies.append({
            "nik": make_nik(district.code, birth, sex, serial_base + i),
            "name": f"{rng.choice(['Sri', 'Budi', 'Siti', 'Agus', 'Dewi', 'Joko'])} Uji{seed.title().replace('-', '')}{i:04d}",
            "birth_date": birth.isoformat(),
            "sex": sex,
            "village_code": rng.choice(villages).code if villages else None,
            "rt": str(rng.randint(1, 9)),
            "rw": str(rng.randint(1, 5)),
            "decile": rng.randint(1, 4),
            "decile_date": "2026-07-01",
        })
    return bodies


@dataclass
class Burst:
    """POSTs through the gateway, a few at a time, as a field office's tablets would send them.

    Each request carries an ``Idempotency-Key``; a request that fails for a reason not its own
    (a 5xx, a dropped connection, a 429) is sent again with the same key until it is answered,
    so that every write ends acknowledged exactly once, whatever broke in between. Statuses
    met on the way are counted in ``hiccups``.
    """

    platform: Platform
    path: str
    bodies: list[dict]
    headers: dict[str, str]
    concurrency: int = 8
    give_up_after_s: float = 120.0
    answers: list[dict | None] = field(default_factory=list)
    hiccups: Counter = field(default_factory=Counter)
    samples: dict[str, str] = field(default_factory=dict)  # the first answer of each kind of hiccup
    done: int = 0
    started_at: float = 0.0
    finished_at: float = 0.0

    async def run(self) -> list[dict]:
        self.answers = [None] * len(self.bodies)
        self.started_at = time.monotonic()
        gate = asyncio.Semaphore(self.concurrency)

        async def one(i: int, body: dict) -> None:
            async with gate:
                self.answers[i] = await self._send(body)
                self.done += 1

        await asyncio.gather(*(one(i, b) for i, b in enumerate(self.bodies)))
        self.finished_at = time.monotonic()
        return self.answers  # type: ignore[return-value]

    async def _send(self, body: dict) -> dict:
        headers = {**self.headers, "Idempotency-Key": f"faults-{uuid.uuid4()}"}
        deadline = time.monotonic() + self.give_up_after_s
        delay = 0.2
        while True:
            try:
                response = await self.platform.http.post(self.path, json=body, headers=headers, timeout=30)
            except httpx.TransportError as exc:
                self.hiccups[type(exc).__name__] += 1
                self.samples.setdefault(type(exc).__name__, str(exc)[:300])
            else:
                if response.status_code in (200, 201):
                    return response.json()
                if response.status_code == 429:
                    self.hiccups["429"] += 1
                    await asyncio.sleep(float(response.headers.get("retry-after", "1")))
                    continue
                if response.status_code < 500:
                    raise AssertionError(f"POST {self.path}: {response.status_code} {response.text[:500]}")
                self.hiccups[str(response.status_code)] += 1
                self.samples.setdefault(str(response.status_code), response.text[:300])
            if time.monotonic() > deadline:
                raise AssertionError(f"POST {self.path}: still failing after {self.give_up_after_s:.0f} s; hiccups {dict(self.hiccups)}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def reached(self, count: int, timeout: float = 60.0) -> None:
        """Wait until ``count`` writes are acknowledged."""
        deadline = time.monotonic() + timeout
        while self.done < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"the burst acknowledged only {self.done} writes in {timeout:.0f} s; hiccups {dict(self.hiccups)}")
            await asyncio.sleep(0.02)

    def report(self, what: str) -> str:
        took = self.finished_at - self.started_at
        line = f"[faults] {what}: {len(self.bodies)} writes in {took:.1f} s; retried after {dict(self.hiccups) or 'nothing'}"
        return line + "".join(f"\n         first {kind}: {sample}" for kind, sample in self.samples.items())
