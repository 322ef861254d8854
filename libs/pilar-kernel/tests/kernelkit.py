"""A tiny test-only domain used to prove the kernel against real Kafka and PostgreSQL.

``Thing`` rows change in business transactions that also write ``ThingChanged`` events to
the outbox; a consumer applies each event to ``effects``, so duplicates or losses show.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from sqlalchemy import BigInteger, Column, Identity, Integer, MetaData, Table, Text, func, select

from pilar_kernel.consumer import Consumer
from pilar_kernel.events import Event

metadata = MetaData()

things = Table(
    "things",
    metadata,
    Column("id", Text, primary_key=True),
    Column("seq", Integer, nullable=False),
)

effects = Table(
    "effects",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("thing_id", Text, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("ce_id", Text, nullable=False),  # deliberately not unique: a double apply must show
)


def event_class(tag: str | None = None) -> type[Event]:
    """A fresh event type on a fresh topic, so tests sharing one broker never see each other."""
    tag = tag or uuid.uuid4().hex[:8]

    class ThingChanged(Event):
        """A thing got a new sequence number (test event)."""

        ce_type: ClassVar[str] = f"id.go.jatimprov.dinsos.kerneltest.thing{tag}.changed.v1"
        topic: ClassVar[str] = f"kerneltest.thing{tag}"
        key_field: ClassVar[str] = "thing_id"

        thing_id: str
        seq: int

    return ThingChanged


def applying_consumer(name: str, cls: type[Event], *, fail_when=lambda event: False) -> Consumer:
    consumer = Consumer(name=name)

    @consumer.on(cls)
    async def apply(session, event, env) -> None:
        if fail_when(event):
            raise RuntimeError(f"handler refuses seq {event.seq}")
        await session.execute(effects.insert().values(thing_id=event.thing_id, seq=event.seq, ce_id=env.id))

    return consumer


async def effect_rows(sessions) -> list:
    async with sessions() as s:
        return (await s.execute(select(effects.c.thing_id, effects.c.seq, effects.c.ce_id).order_by(effects.c.id))).all()


async def effect_count(sessions) -> int:
    async with sessions() as s:
        return (await s.execute(select(func.count()).select_from(effects))).scalar_one()


def assert_per_key_order(rows) -> None:
    last: dict[str, int] = {}
    for thing_id, seq, _ in rows:
        assert seq > last.get(thing_id, -1), f"{thing_id}: seq {seq} after {last.get(thing_id)}"
        last[thing_id] = seq
