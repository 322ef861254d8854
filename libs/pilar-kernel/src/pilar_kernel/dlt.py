"""Dead-letter re-drive: ``pilar-dlt redrive <dlt-topic>`` (or ``python -m pilar_kernel.dlt``).

Reads the dead-letter topic from the re-drive group's position up to its current end and
publishes each message back to its origin topic with its original key, value and
CloudEvents headers (the ``ce_id`` is unchanged, so consumers that already applied it skip
it through their inbox). Use it after fixing the cause; ``list`` shows what is waiting.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from .consumer import DLT_PREFIX
from .kafka import make_consumer, make_producer


def _header(msg, name: str) -> str | None:
    for k, v in msg.headers or ():
        if k == name:
            return v.decode(errors="replace")
    return None


async def _partitions(bootstrap: str, topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return [p["partition"] for d in described if d.get("error_code", 0) == 0 for p in d.get("partitions", [])]


async def _read_until_end(bootstrap: str, dlt: str, group: str, handle) -> int:
    consumer = make_consumer(bootstrap, group_id=group, client_id=group)
    await consumer.start()
    try:
        partitions = await _partitions(bootstrap, dlt)
        tps = [TopicPartition(dlt, p) for p in sorted(partitions)]
        if not tps:
            return 0
        consumer.assign(tps)
        end = await consumer.end_offsets(tps)
        count = 0
        remaining = {tp for tp in tps if end[tp] > 0 and (await consumer.position(tp)) < end[tp]}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, messages in batch.items():
                for msg in messages:
                    if msg.offset >= end[tp]:
                        continue
                    await handle(msg)
                    count += 1
                if messages:
                    await consumer.commit({tp: messages[-1].offset + 1})
            remaining = {tp for tp in remaining if (await consumer.position(tp)) < end[tp]}
        return count
    finally:
        await consumer.stop()


async def redrive(bootstrap: str, dlt: str) -> int:
    """Re-publish every waiting dead letter of ``dlt`` to its origin topic; returns how many."""
    producer = make_producer(bootstrap, client_id="pilar-dlt-redrive")
    await producer.start()
    try:

        async def handle(msg) -> None:
            origin = _header(msg, f"{DLT_PREFIX}origin_topic") or dlt.split(".dlt.", 1)[0]
            headers = [(k, v) for k, v in msg.headers or () if not k.startswith(DLT_PREFIX)]
            headers.append((f"{DLT_PREFIX}redriven_from", dlt.encode()))
            await producer.send_and_wait(origin, value=msg.value, key=msg.key, headers=headers)

        return await _read_until_end(bootstrap, dlt, f"{dlt}.redrive", handle)
    finally:
        await producer.stop()


async def peek(bootstrap: str, dlt: str) -> list[dict]:
    """What is waiting in ``dlt`` (not yet re-driven), without moving the re-drive position."""
    out: list[dict] = []

    async def handle(msg) -> None:
        out.append(
            {
                "offset": msg.offset,
                "ce_type": _header(msg, "ce_type"),
                "ce_id": _header(msg, "ce_id"),
                "error": _header(msg, f"{DLT_PREFIX}error"),
                "origin": f"{_header(msg, f'{DLT_PREFIX}origin_topic')}:{_header(msg, f'{DLT_PREFIX}origin_partition')}@{_header(msg, f'{DLT_PREFIX}origin_offset')}",
            }
        )

    # A throwaway group id: reading does not move the re-drive group's committed position.
    await _read_until_end(bootstrap, dlt, f"{dlt}.peek.{uuid.uuid4().hex[:8]}", handle)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pilar-dlt", description="Inspect and re-drive dead-letter topics")
    parser.add_argument("--bootstrap", default=os.environ.get("PILAR_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("list", "redrive"):
        p = sub.add_parser(name)
        p.add_argument("topic", help="dead-letter topic, <topic>.dlt.<consumer>")
    args = parser.parse_args(argv)
    if ".dlt." not in args.topic:
        print(f"{args.topic}: not a dead-letter topic (expected <topic>.dlt.<consumer>)", file=sys.stderr)
        return 2
    if args.command == "list":
        for row in asyncio.run(peek(args.bootstrap, args.topic)):
            print(row)
    else:
        n = asyncio.run(redrive(args.bootstrap, args.topic))
        print(f"re-drove {n} message(s) from {args.topic}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
