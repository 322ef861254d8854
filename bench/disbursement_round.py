#!/usr/bin/env python
"""Benchmark of one payment round, end to end against the bank simulator.

Run from the repository root::

    .venv/bin/python bench/disbursement_round.py [--payees 100000] [--json out.json]

It starts its own PostgreSQL + Kafka (``pilar_devstack.LocalStack`` in a temporary folder)
unless ``--database-url`` / ``--bootstrap`` point at existing ones (the database must be a
scratch one: it is migrated and filled). Then, each in its own process as in production:
the disbursement service (uvicorn) and the bank simulator (``deploy/banksim``).

1. fill the payable population directly in the database (not timed): N persons, each with
   an active enrolment in a programme of the bench, spread over the 38 regencies;
2. **snapshot**: ``POST /v1/rounds/{id}/snapshot`` classifies every person;
3. **approval**: ``POST /v1/rounds/{id}/approve`` by a second officer;
4. **payment creation**: ``POST /v1/rounds/{id}/disburse`` creates N payments;
5. **end to end**: from the disburse call until every payment is ``succeeded``: the bank
   sender posts signed batches, the simulator calls back signed results, each applied in one
   transaction with its events in the outbox; the relay publishes them meanwhile.

It prints the time of each step, payments/s end to end, how long the outbox took to publish
every event, and the CPU each process used. Benchmarks print figures; nothing here asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

import procstat  # bench/procstat.py: CPU accounting shared by the benchmarks

REPO = Path(__file__).resolve().parents[1]
SERVICE_DIR = REPO / "services" / "disbursement"
BANKSIM_SRC = REPO / "deploy" / "banksim" / "src"
SECRET = "bench-bank-hmac-secret"
AMOUNT = 900_000
ANCHOR = "a published bulk-payment hub: 51 payments/s on three 8-core brokers"
TARGET = 500.0  # payments/s end to end on this 2-core machine

REGENCIES = [f"35.{n:02d}" for n in range(1, 30)] + [f"35.{n:02d}" for n in range(71, 80)]


# --------------------------------------------------------------------------- processes and CPU


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the processes (0 for any that are gone)."""
    return sum(procstat.cpu_seconds(pid) or 0.0 for pid in pids)


class Cpu:
    """CPU used by each process group between two readings."""

    def __init__(self, groups: dict[str, Any]) -> None:
        self.groups = groups  # name -> callable returning pids

    def read(self) -> dict[str, float]:
        out = {name: cpu_seconds(pids()) for name, pids in self.groups.items()}
        out["_machine"] = procstat.machine_ticks()
        out["_t"] = time.perf_counter()
        return out

    @staticmethod
    def diff(a: dict, b: dict) -> dict[str, float]:
        wall = b["_t"] - a["_t"]
        out = {name: 100 * (b[name] - a[name]) / wall for name in a if not name.startswith("_")}
        busy, total = b["_machine"][0] - a["_machine"][0], b["_machine"][1] - a["_machine"][1]
        out["machine"] = 100 * (os.cpu_count() or 1) * busy / total if total else 0.0
        out["other"] = max(0.0, out["machine"] - sum(v for k, v in out.items() if k not in ("machine",)))
        return out


def start_process(args: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen(args, env={**os.environ, **env}, cwd=cwd, stdout=open(log, "wb"), stderr=subprocess.STDOUT)


async def wait_http(url: str, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while True:
            try:
                if (await client.get(url, timeout=2)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start")
            await asyncio.sleep(0.2)


# --------------------------------------------------------------------------- the run


async def fill_population(dsn: str, code: str, n: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """
            INSERT INTO payee_person (person_id, nik_hash, regency_code, status)
            SELECT gen_random_uuid(), md5(g::text) || md5((g * 7)::text), ($2::text[])[1 + g % array_length($2::text[], 1)], 'active'
            FROM generate_series(1, $1) AS g
            """,
            n, REGENCIES,
        )
        await conn.execute(
            """
            INSERT INTO payee_enrolment (enrolment_id, person_id, programme_code, regency_code, status, active_from)
            SELECT gen_random_uuid(), person_id, $1, regency_code, 'active', DATE '2025-01-01' + (abs(hashtext(person_id::text)) % 300)
            FROM payee_person
            """,
            code,
        )
        await conn.execute("ANALYZE payee_person; ANALYZE payee_enrolment")
    finally:
        await conn.close()


async def run(args: argparse.Namespace, stack) -> dict[str, Any]:
    from pilar_kernel.testing import TestKeys

    dsn = args.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    work = Path(tempfile.mkdtemp(prefix="pilar-bench-round-"))
    keys = TestKeys()
    (work / "jwks.json").write_text(json.dumps(keys.jwks))
    preparer = keys.headers("disbursement:read", "disbursement:prepare", "disbursement:programme-admin", subject="dinsos-jatim",
                            user="officer-a", ttl_s=7200)
    approver = keys.headers("disbursement:read", "disbursement:approve", subject="dinsos-jatim", user="kabid", ttl_s=7200)
    bank_token = keys.token("bank-jatim", ["disbursement:bank-callback"], ttl_s=7200)

    print("migrating ...", flush=True)
    subprocess.run([sys.executable, "-m", "pilar_kernel.prestart"], cwd=SERVICE_DIR, env={**os.environ, "PILAR_DATABASE_URL": args.database_url},
                   check=True, capture_output=True)
    code = "BENCH"
    t = time.perf_counter()
    await fill_population(dsn, code, args.payees)
    print(f"payable population of {args.payees:,} filled in {time.perf_counter() - t:.1f} s (not timed)", flush=True)

    svc_port, bank_port = free_port(), free_port()
    bank = start_process(
        [sys.executable, "-m", "banksim", "--port", str(bank_port)],
        {"PYTHONPATH": str(BANKSIM_SRC), "BANKSIM_HMAC_SECRET": SECRET, "BANKSIM_CALLBACK_TOKEN": bank_token,
         "BANKSIM_LATENCY_MS_MIN": str(args.latency_ms[0]), "BANKSIM_LATENCY_MS_MAX": str(args.latency_ms[1]),
         "BANKSIM_CHUNK_SIZE": str(args.chunk), "BANKSIM_MAX_CONCURRENT_CALLBACKS": str(args.callbacks_in_flight), "BANKSIM_SEED": "1"},
        work / "banksim.log",
    )
    service = start_process(
        [sys.executable, "-m", "uvicorn", "disbursement.app:create_app", "--factory", "--host", "127.0.0.1", "--port", str(svc_port),
         "--log-level", "warning", "--no-access-log"],
        {"PILAR_ENV": "test", "PILAR_DATABASE_URL": args.database_url, "PILAR_KAFKA_BOOTSTRAP": args.bootstrap,
         "PILAR_TOPIC_PARTITIONS": str(args.partitions), "PILAR_JWKS_FILE": str(work / "jwks.json"), "PILAR_LOG_LEVEL": "WARNING",
         "PILAR_BANK_URL": f"http://127.0.0.1:{bank_port}", "PILAR_BANK_CALLBACK_URL": f"http://127.0.0.1:{svc_port}/v1/bank/callbacks",
         "PILAR_BANK_HMAC_SECRET": SECRET, "PILAR_BANK_BATCH_SIZE": str(args.batch_size), "PILAR_BANK_MAX_IN_FLIGHT": str(args.in_flight),
         "PILAR_BANK_IDLE_POLL_S": "0.2"},
        work / "disbursement.log", cwd=SERVICE_DIR,
    )
    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "loadavg_at_start": os.getloadavg()},
        "args": {k: v for k, v in vars(args).items() if k not in ("json",)},
    }
    cpu = Cpu({
        "disbursement": lambda: [service.pid],
        "banksim": lambda: [bank.pid],
        "postgres": lambda: procstat.with_children(stack.postgres.pid() if stack else None),
        "kafka": lambda: [stack.kafka.pid()] if stack and stack.kafka.pid() else [],
    })
    try:
        await wait_http(f"http://127.0.0.1:{bank_port}/health", bank, "the bank simulator")
        await wait_http(f"http://127.0.0.1:{svc_port}/ready", service, "the disbursement service", timeout=90)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc_port}", timeout=600) as api:
            async def call(method: str, path: str, headers, **kw) -> dict:
                r = await api.request(method, path, headers=headers, **kw)
                if r.status_code >= 300:
                    raise RuntimeError(f"{method} {path}: {r.status_code} {r.text}")
                return r.json()

            today = date.today()
            await call("POST", "/v1/programmes", preparer, json={"code": code, "name": "Benchmark programme"})
            await call("PUT", f"/v1/programmes/{code}/budgets/{today.year}", preparer, json={"amount": AMOUNT * args.payees})
            rnd = await call("POST", "/v1/rounds", preparer, json={
                "programme_code": code, "year": today.year, "stage": 1, "amount": AMOUNT, "ceiling": AMOUNT * args.payees,
                "period_start": today.isoformat(), "period_end": (today + timedelta(days=90)).isoformat()})
            steps: dict[str, float] = {}
            c0 = cpu.read()
            t0 = time.perf_counter()
            rnd = await call("POST", f"/v1/rounds/{rnd['id']}/snapshot", preparer)
            steps["snapshot_s"] = time.perf_counter() - t0
            print(f"snapshot: {rnd['payee_count']:,} payees in {steps['snapshot_s']:.2f} s", flush=True)
            t = time.perf_counter()
            await call("POST", f"/v1/rounds/{rnd['id']}/approve", approver, json={"sk_number": "188/1/KPTS/013/BENCH",
                                                                                    "snapshot_version": rnd["snapshot_version"]})
            steps["approval_s"] = time.perf_counter() - t
            print(f"approval: {steps['approval_s']:.2f} s", flush=True)
            c1 = cpu.read()
            t_pay = time.perf_counter()
            await call("POST", f"/v1/rounds/{rnd['id']}/disburse", preparer)
            steps["payment_creation_s"] = time.perf_counter() - t_pay
            print(f"payment creation: {args.payees:,} payments in {steps['payment_creation_s']:.2f} s", flush=True)

            conn = await asyncpg.connect(dsn)
            try:
                last_print, succeeded = time.perf_counter(), 0
                while succeeded < args.payees:
                    await asyncio.sleep(0.2)
                    succeeded, failed = await conn.fetchrow(
                        "SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'failed') FROM payment WHERE round_id = $1",
                        uuid.UUID(rnd["id"]))
                    now = time.perf_counter()
                    if now - last_print >= 10:
                        print(f"  {now - t_pay:6.1f} s: {succeeded:,} succeeded ({succeeded / (now - t_pay):,.0f}/s)", flush=True)
                        last_print = now
                    if failed:
                        raise RuntimeError(f"{failed} payments failed; the simulator is set to pay everything")
                    if now - t_pay > args.timeout:
                        raise RuntimeError(f"only {succeeded:,} of {args.payees:,} succeeded after {args.timeout} s")
                steps["end_to_end_s"] = time.perf_counter() - t_pay
                c2 = cpu.read()
                print(f"end to end: every payment succeeded {steps['end_to_end_s']:.1f} s after the disburse call", flush=True)
                while await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"):
                    await asyncio.sleep(0.2)
                steps["events_published_s"] = time.perf_counter() - t_pay
                events = await conn.fetchval("SELECT count(*) FROM outbox WHERE ce_type LIKE '%disbursement.payment.%'")
                callbacks = await conn.fetchrow("SELECT count(*) AS n, sum(result_count) AS results FROM bank_callback")
                batches = await conn.fetchval("SELECT count(*) FROM bank_batch")
            finally:
                await conn.close()
        result.update(steps)
        result["payments"] = args.payees
        result["payments_per_s_end_to_end"] = args.payees / steps["end_to_end_s"]
        result["payments_per_s_whole_round"] = args.payees / (steps["snapshot_s"] + steps["approval_s"] + steps["end_to_end_s"])
        result["events"] = events
        result["bank"] = {"batches": batches, "callbacks": callbacks["n"], "results": callbacks["results"]}
        result["cpu_percent"] = {"snapshot+approval": Cpu.diff(c0, c1), "payments": Cpu.diff(c1, c2)}
    finally:
        for proc in (service, bank):
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if args.keep:
            print(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    result["machine"]["loadavg_at_end"] = os.getloadavg()
    return result


def report(r: dict[str, Any]) -> str:
    rate = r["payments_per_s_end_to_end"]
    lines = [
        f"disbursement round of {r['payments']:,} payees ({r['machine']['cpus']} CPUs, load {r['machine']['loadavg_at_start'][0]:.2f} at start)",
        f"  snapshot            {r['snapshot_s']:8.2f} s",
        f"  approval            {r['approval_s']:8.2f} s",
        f"  payment creation    {r['payment_creation_s']:8.2f} s",
        f"  end to end          {r['end_to_end_s']:8.2f} s  (disburse call → every payment succeeded at the simulator)",
        f"  events published    {r['events_published_s']:8.2f} s  ({r['events']:,} payment events through the outbox to Kafka)",
        f"  bank traffic        {r['bank']['batches']:,} batches out, {r['bank']['callbacks']:,} callbacks in",
        "",
        f"  payments/s end to end: {rate:,.0f}   {'PASS' if rate >= TARGET else 'MISS'} (target ≥ {TARGET:.0f}; anchor: {ANCHOR})",
        f"  payments/s for the whole round (snapshot + approval + end to end): {r['payments_per_s_whole_round']:,.0f}",
        "",
        "  CPU, % of one core:  " + "  ".join(f"{k:>12}" for k in r["cpu_percent"]["payments"]),
    ]
    for phase, row in r["cpu_percent"].items():
        lines.append(f"  {phase:<20}" + "  ".join(f"{v:12.0f}" for v in row.values()))
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--payees", type=int, default=100_000)
    p.add_argument("--batch-size", type=int, default=1000, help="payment instructions per bank batch (PILAR_BANK_BATCH_SIZE)")
    p.add_argument("--in-flight", type=int, default=4, help="bank batches posted at once (PILAR_BANK_MAX_IN_FLIGHT)")
    p.add_argument("--chunk", type=int, default=500, help="results per bank callback (BANKSIM_CHUNK_SIZE)")
    p.add_argument("--callbacks-in-flight", type=int, default=4, help="callbacks the simulator sends at once")
    p.add_argument("--latency-ms", type=lambda s: [int(x) for x in s.split(",")], default=[20, 100], help="the bank's delay, min,max")
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--database-url", help="a scratch database (postgresql+asyncpg://...); default: a fresh local stack")
    p.add_argument("--bootstrap", help="Kafka bootstrap; default: a fresh local stack")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder with the processes' logs")
    p.add_argument("--json", type=Path, help="also write the figures as JSON here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    stack = run_dir = None
    try:
        if not args.database_url or not args.bootstrap:
            from pilar_devstack import LocalStack, free_port as stack_port

            run_dir = Path(tempfile.mkdtemp(prefix="pilar-bench-"))
            stack = LocalStack(run_dir=run_dir, pg_admin_url="", pg_port=stack_port(), kafka_port=stack_port(), controller_port=stack_port(),
                               partitions=args.partitions)
            t = time.perf_counter()
            if not args.database_url:
                stack.start_postgres()
                stack.create_databases(["bench_disbursement"])
                args.database_url = stack.database_url("bench_disbursement")
            if not args.bootstrap:
                stack.start_kafka()
                args.bootstrap = stack.kafka_bootstrap
            print(f"local stack up in {time.perf_counter() - t:.1f} s ({run_dir})", flush=True)
        result = asyncio.run(run(args, stack))
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
