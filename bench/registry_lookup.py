#!/usr/bin/env python
"""Benchmark of the registry's NIK lookup (``POST /v1/persons/lookup``) under open-loop load.

Run from the repository root::

    .venv/bin/python bench/registry_lookup.py [--persons 1000000] [--rate 200] [--duration 20]

It starts its own PostgreSQL and one-node Kafka (``pilar_devstack.LocalStack`` in a temporary
folder; Kafka only because the registry's ``/ready`` and outbox relay want it), migrates the
registry, and fills ``person`` with N synthetic rows by binary ``COPY`` (asyncpg
``copy_records_to_table``): valid NIKs made with ``make_nik`` over Jawa Timur's current
districts, ``nik_hash`` with a fixed bench key, ``nik_enc`` a real ``PiiCipher`` encryption
bound to the row's id (as the registry stores it). The non-constraint indexes are dropped for
the load and built again afterwards, then ``ANALYZE``.

The registry then runs as a real uvicorn process (one worker, outbox relay on, Kafka consumers
off: they have nothing to do with a lookup) and is measured, in one run:

1. **PostgreSQL baseline, before**: the lookup's own query, ``SELECT * FROM person WHERE
   nik_hash = $1``, sent straight with asyncpg (pool of 10, hash computed per request) at the
   same rate → the database's own latency for this lookup on this machine.
2. **API**: ``POST /v1/persons/lookup {"nik": ...}`` with a ``registry:read`` token, through one
   keep-alive aiohttp session, for a random existing NIK per request.
3. **PostgreSQL baseline, after**: as 1.

The load generator is aiohttp because it shares the 2 cores with the registry: an
``httpx.AsyncClient`` with 200 pooled connections spent 1.8 ms of CPU per request here on a
quiet machine and 9 ms on a busy one (aiohttp: 0.55 and 0.8 ms), more than the registry itself;
its pool bookkeeping grows with the number of connections.
Each phase reports the CPU time, per request, of the registry process, of PostgreSQL (postmaster
and backends), of this process, and of everything else on the machine ("other").

Load is open-loop: request i is due at ``t0 + i / rate`` and is sent then whatever earlier
requests are doing; its latency runs from that due time to the end of the response, so a
slow server shows up as latency rather than a lower rate. A short unmeasured warm-up precedes
each phase. Target: API p99 < 10 ms at 200 requests/s. Benchmarks print figures; nothing
here asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx

import procstat  # bench/procstat.py: CPU accounting shared by the benchmarks

REPO = Path(__file__).resolve().parents[1]
REGISTRY_DIR = REPO / "services" / "registry"
TARGET_P99_MS = 10.0
BENCH_NIK_KEY = "bench-nik-hash-key-registry-lookup-0001"
BENCH_PII_KEY = "k1:" + "5a" * 32

GIVEN_M = ["Slamet", "Budi", "Agus", "Joko", "Suparman", "Mochammad", "Ahmad", "Hadi", "Bambang", "Eko", "Rudi", "Wahyu"]
GIVEN_F = ["Siti", "Sri", "Dewi", "Nur", "Endang", "Lestari", "Wati", "Rahayu", "Aminah", "Yuliana", "Ratna", "Fitri"]
FAMILY = ["Santoso", "Wibowo", "Susanto", "Hidayat", "Purnomo", "Setiawan", "Rahman", "Kurniawan", "Saputra", "Hasanah", ""]
COLUMNS = ("id", "nik_hash", "nik_enc", "pii_key_id", "name", "name_norm", "birth_place", "birth_date", "sex",
           "village_code", "district_code", "regency_code", "status")  # fmt: skip
CHUNK = 50_000


# --------------------------------------------------------------------------- data


def jatim_districts() -> list[tuple[str, list[str], str]]:
    """(district code, its current village codes, regency name) for every current Jatim district with villages."""
    from pilar_kernel import regions

    out = []
    for regency in regions.jatim_regencies():
        for district in regions.children(regency.code, current_only=True):
            villages = [v.code for v in regions.children(district.code, current_only=True)]
            if villages:
                out.append((district.code, villages, regency.name.replace("Kabupaten ", "").replace("Kota ", "")))
    return out


def generate(n: int, seed: int = 2026):
    """Yield (records, niks) chunks of up to CHUNK synthetic person rows."""
    from pilar_kernel.nik import make_nik
    from pilar_kernel.pii import PiiCipher, nik_hash

    cipher = PiiCipher.from_env_value(BENCH_PII_KEY)
    key_id = BENCH_PII_KEY.split(":", 1)[0]
    rng = random.Random(seed)
    districts = jatim_districts()
    serials = [0] * len(districts)
    made = 0
    while made < n:
        records, niks = [], []
        for _ in range(min(CHUNK, n - made)):
            d = rng.randrange(len(districts))
            code, villages, place = districts[d]
            serials[d] += 1
            sex = "M" if rng.random() < 0.5 else "F"
            born = date(rng.randint(1940, 2024), rng.randint(1, 12), rng.randint(1, 28))
            nik = make_nik(code, born, sex, serials[d])
            pid = uuid.UUID(bytes=rng.randbytes(16), version=4)
            name = f"{rng.choice(GIVEN_M if sex == 'M' else GIVEN_F)} {rng.choice(FAMILY)}".strip()
            records.append((
                pid, nik_hash(nik, BENCH_NIK_KEY), cipher.encrypt(nik, aad=pid.bytes), key_id, name, name.lower(), place,
                born, sex, rng.choice(villages), code, code[:5], "active",
            ))  # fmt: skip
            niks.append(nik)
        made += len(records)
        yield records, niks


async def fill(dsn: str, n: int) -> tuple[list[str], dict[str, float]]:
    """COPY N rows into ``person`` (secondary indexes dropped meanwhile); returns the NIKs and timings."""
    conn = await asyncpg.connect(dsn)
    timings = {"generate_s": 0.0, "copy_s": 0.0}
    niks: list[str] = []
    try:
        indexes = await conn.fetch(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = 'person' AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
        )
        for ix in indexes:
            await conn.execute(f'DROP INDEX "{ix["indexname"]}"')
        t_gen = time.perf_counter()
        chunks = generate(n)
        while True:
            t = time.perf_counter()
            try:
                records, chunk_niks = next(chunks)
            except StopIteration:
                break
            timings["generate_s"] += time.perf_counter() - t
            t = time.perf_counter()
            await conn.copy_records_to_table("person", records=records, columns=COLUMNS)
            timings["copy_s"] += time.perf_counter() - t
            niks.extend(chunk_niks)
            if len(niks) % 200_000 == 0:
                print(f"  {len(niks):,} rows after {time.perf_counter() - t_gen:.0f} s", flush=True)
        t = time.perf_counter()
        await conn.execute("SET maintenance_work_mem = '512MB'")
        for ix in indexes:
            await conn.execute(ix["indexdef"])
        timings["reindex_s"] = time.perf_counter() - t
        t = time.perf_counter()
        await conn.execute("ANALYZE person")
        timings["analyze_s"] = time.perf_counter() - t
        try:
            await conn.execute("CHECKPOINT")
        except asyncpg.InsufficientPrivilegeError:
            pass
        timings["indexes_rebuilt"] = len(indexes)
        timings["rows"] = await conn.fetchval("SELECT count(*) FROM person")
        timings["table_mb"] = await conn.fetchval("SELECT pg_total_relation_size('person')") / 1e6
    finally:
        await conn.close()
    return niks, timings


# --------------------------------------------------------------------------- CPU accounting


class Cpu:
    """CPU per phase of the registry, PostgreSQL (postmaster and backends) and this process
    (procstat.PhaseCpu), also per request."""

    def __init__(self, registry_pid: int | None, postmaster: int | None) -> None:
        self.registry_pid, self.postmaster = registry_pid, postmaster
        self._phase = procstat.PhaseCpu(self._groups)

    def _groups(self) -> dict[str, list[int]]:
        groups = {"registry": [self.registry_pid] if self.registry_pid else [], "bench": [os.getpid()]}
        if self.postmaster:
            groups["postgres"] = procstat.with_children(self.postmaster)
        return groups

    def start(self) -> None:
        self._phase.start()

    def stop(self, requests: int) -> dict[str, Any]:
        figures = self._phase.stop()
        out: dict[str, Any] = {
            "cpu_pct_of_one_core": figures["cpu_pct_of_one_core"],
            "cpu_ms_per_request": {g: round(1000 * v / max(1, requests), 3) for g, v in figures["cpu_s"].items()},
        }
        out.update({k: figures[k] for k in ("machine_busy_pct_of_one_core", "other_pct_of_one_core") if k in figures})
        return out


# --------------------------------------------------------------------------- the registry process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_registry(database_url: str, bootstrap: str, jwks_file: Path, port: int, log_path: Path) -> subprocess.Popen:
    env = {
        **os.environ, "PILAR_ENV": "test", "PILAR_DATABASE_URL": database_url, "PILAR_KAFKA_BOOTSTRAP": bootstrap,
        "PILAR_JWKS_FILE": str(jwks_file), "PILAR_NIK_HASH_KEY": BENCH_NIK_KEY, "PILAR_PII_KEY": BENCH_PII_KEY,
        "PILAR_LOG_LEVEL": "WARNING", "PILAR_CONSUMERS_ENABLED": "false",
    }  # fmt: skip
    log = open(log_path, "wb")
    cmd = [sys.executable, "-m", "uvicorn", "registry.app:create_app", "--factory", "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", "--no-access-log"]  # fmt: skip
    return subprocess.Popen(cmd, cwd=REGISTRY_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)


async def wait_ready(base: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    last = None
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the registry process exited with {proc.returncode}")
            try:
                r = await client.get(f"{base}/ready")
                if r.status_code == 200:
                    return
                last = r.text
            except httpx.HTTPError as exc:
                last = repr(exc)
            await asyncio.sleep(0.3)
    raise RuntimeError(f"the registry did not become ready: {last}")


# --------------------------------------------------------------------------- load


def pct(sorted_ms: list[float], p: float) -> float:
    if not sorted_ms:
        return float("nan")
    return sorted_ms[min(len(sorted_ms) - 1, max(0, int(round(p / 100 * len(sorted_ms) + 0.5)) - 1))]


async def open_loop(send, rate: float, duration: float, warmup: float, cpu: Cpu | None = None) -> dict[str, Any]:
    """Call ``send()`` at ``rate``/s for warmup + duration seconds; per-request latency from its due time.

    CPU is accounted over the measured part (after the warm-up), until the last answer."""
    loop = asyncio.get_running_loop()
    lat: list[float] = []
    errors: dict[str, int] = {}
    send_lag: list[float] = []
    tasks: set[asyncio.Task] = set()
    n_warm, n = int(warmup * rate), int(duration * rate)
    t0 = loop.time() + 0.05

    async def one(i: int, due: float) -> None:
        send_lag.append(loop.time() - due) if i >= n_warm else None
        try:
            await send()
        except Exception as exc:  # noqa: BLE001 - a benchmark counts errors, it does not stop on them
            if i >= n_warm:
                key = type(exc).__name__ + (f": {exc}"[:120] if str(exc) else "")
                errors[key] = errors.get(key, 0) + 1
            return
        if i >= n_warm:
            lat.append((loop.time() - due) * 1000)

    measured_start = t0 + n_warm / rate
    for i in range(n_warm + n):
        due = t0 + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if i == n_warm and cpu is not None:
            cpu.start()
        task = asyncio.create_task(one(i, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    sent_end = loop.time()
    if tasks:
        await asyncio.wait(tasks, timeout=60)
    end = loop.time()
    cpu_figures = cpu.stop(n) if cpu is not None else {}
    unfinished = len(tasks)
    for task in list(tasks):  # a backlog that outlived the wait: counted, then dropped
        task.cancel()
    if unfinished:
        errors["unfinished after 60 s (cancelled)"] = unfinished
    lat.sort()
    ok = len(lat)
    return {
        "requests": n, "ok": ok, "errors": errors, "error_count": sum(errors.values()),
        "offered_rate": rate, "sent_rate": n / max(1e-9, sent_end - measured_start),
        "achieved_rate": ok / max(1e-9, end - measured_start),
        "max_send_lag_ms": 1000 * max(send_lag, default=0.0),
        "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95), "p99_ms": pct(lat, 99), "max_ms": lat[-1] if lat else float("nan"),
        "mean_ms": sum(lat) / ok if ok else float("nan"), **cpu_figures,
    }  # fmt: skip


async def phase_api(base: str, token: str, niks: list[str], rate: float, duration: float, warmup: float, cpu: Cpu) -> dict[str, Any]:
    rng = random.Random(7)
    url = f"{base}/v1/persons/lookup"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=200, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def send() -> None:
            body = b'{"nik":"' + rng.choice(niks).encode() + b'"}'
            async with session.post(url, data=body, headers=headers) as r:
                text = await r.read()
                if r.status != 200:
                    raise RuntimeError(f"HTTP {r.status} {text[:80]!r}")

        return await open_loop(send, rate, duration, warmup, cpu)


async def phase_pg(dsn: str, niks: list[str], rate: float, duration: float, warmup: float, cpu: Cpu) -> dict[str, Any]:
    from pilar_kernel.pii import nik_hash

    rng = random.Random(11)
    pool = await asyncpg.create_pool(dsn, min_size=10, max_size=10)
    try:
        async def send() -> None:
            async with pool.acquire() as conn:
                row = await conn.fetchrow("SELECT * FROM person WHERE nik_hash = $1", nik_hash(rng.choice(niks), BENCH_NIK_KEY))
            if row is None:
                raise RuntimeError("not found")

        return await open_loop(send, rate, duration, warmup, cpu)
    finally:
        await pool.close()


# --------------------------------------------------------------------------- run and report


def migrate(url: str) -> None:
    subprocess.run([sys.executable, "-m", "pilar_kernel.prestart"], cwd=REGISTRY_DIR, env={**os.environ, "PILAR_DATABASE_URL": url},
                   check=True, capture_output=True)  # fmt: skip


async def run(args: argparse.Namespace, work_dir: Path, postmaster: int | None) -> dict[str, Any]:
    from pilar_kernel.testing import TestKeys

    dsn = args.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "loadavg_at_start": os.getloadavg()},
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }  # fmt: skip
    print(f"filling person with {args.persons:,} rows (binary COPY, real PiiCipher encryption) ...", flush=True)
    t = time.perf_counter()
    niks, result["fill"] = await fill(dsn, args.persons)
    result["fill"]["total_s"] = time.perf_counter() - t
    f = result["fill"]
    print(f"  {f['rows']:,} rows in {f['total_s']:.0f} s (generate {f['generate_s']:.0f} s, COPY {f['copy_s']:.0f} s, "
          f"{f['indexes_rebuilt']} indexes rebuilt {f['reindex_s']:.0f} s, ANALYZE {f['analyze_s']:.1f} s), {f['table_mb']:,.0f} MB", flush=True)  # fmt: skip

    keys = TestKeys()
    jwks = work_dir / "jwks.json"
    jwks.write_text(json.dumps(keys.jwks))
    token = keys.token("bench-lookup", ("registry:read",), ttl_s=24 * 3600)
    port = _free_port()
    proc = start_registry(args.database_url, args.bootstrap, jwks, port, work_dir / "registry.log")
    base = f"http://127.0.0.1:{port}"
    try:
        t = time.perf_counter()
        await wait_ready(base, proc)
        print(f"registry ready in {time.perf_counter() - t:.1f} s (pid {proc.pid}, port {port})", flush=True)
        phases = {}
        print(f"[postgres, before] {args.rate:g}/s for {args.duration:g} s ...", flush=True)
        cpu = Cpu(proc.pid, postmaster)
        phases["pg_before"] = await phase_pg(dsn, niks, args.rate, args.duration, args.warmup, cpu)
        print(f"[api] {args.rate:g}/s for {args.duration:g} s ...", flush=True)
        phases["api"] = await phase_api(base, token, niks, args.rate, args.duration, args.warmup, cpu)
        print(f"[postgres, after] {args.rate:g}/s for {args.duration:g} s ...", flush=True)
        phases["pg_after"] = await phase_pg(dsn, niks, args.rate, args.duration, args.warmup, cpu)
        result["phases"] = phases
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.returncode not in (0, -15):
            tail = (work_dir / "registry.log").read_text(errors="replace")[-2000:]
            print(f"registry exited with {proc.returncode}; log tail:\n{tail}", flush=True)
    result["machine"]["loadavg_at_end"] = os.getloadavg()
    return result


def report(r: dict[str, Any]) -> str:
    ph = r["phases"]
    la0, la1 = r["machine"]["loadavg_at_start"], r["machine"]["loadavg_at_end"]
    api = ph["api"]
    lines = [
        f"Pilar registry NIK lookup benchmark — {r['when']}, {r['machine']['cpus']} CPUs, "
        f"load average {la0[0]:.2f} at start, {la1[0]:.2f} at end",
        f"{r['fill']['rows']:,} persons; open-loop {r['args']['rate']:g} req/s for {r['args']['duration']:g} s "
        f"(+{r['args']['warmup']:g} s unmeasured warm-up) per phase",
        "",
    ]
    row = "{:<20} {:>9} {:>9} {:>7} {:>7} {:>7} {:>8} {:>8} {:>7}"
    lines += [row.format("phase", "offered/s", "achieved", "p50 ms", "p95 ms", "p99 ms", "max ms", "send lag", "errors"), "-" * 92]
    for label, key in (("PostgreSQL, before", "pg_before"), ("API lookup", "api"), ("PostgreSQL, after", "pg_after")):
        p = ph[key]
        lines.append(row.format(label, f"{p['offered_rate']:g}", f"{p['achieved_rate']:.1f}", f"{p['p50_ms']:.2f}", f"{p['p95_ms']:.2f}",
                                f"{p['p99_ms']:.2f}", f"{p['max_ms']:.1f}", f"{p['max_send_lag_ms']:.1f}", p["error_count"]))  # fmt: skip
    held = api["achieved_rate"] >= 0.95 * api["offered_rate"] and api["error_count"] == 0
    ok = held and api["p99_ms"] < TARGET_P99_MS
    lines += [
        "",
        f"target: API p99 < {TARGET_P99_MS:g} ms at {r['args']['rate']:g} req/s → p99 {api['p99_ms']:.2f} ms, "
        f"{api['achieved_rate']:.1f} req/s achieved, {api['error_count']} errors: {'PASS' if ok else 'MISS'}",
        f"API p99 over PostgreSQL p99 (mean of before/after): "
        f"{api['p99_ms'] / ((ph['pg_before']['p99_ms'] + ph['pg_after']['p99_ms']) / 2):.1f}x",
    ]  # fmt: skip
    lines += ["", "CPU per request, ms (and % of one core); 'other' = busy time on the machine that is not this run's:"]
    for label, key in (("PostgreSQL, before", "pg_before"), ("API lookup", "api"), ("PostgreSQL, after", "pg_after")):
        p = ph[key]
        if "cpu_ms_per_request" in p:
            cells = [f"{g} {p['cpu_ms_per_request'][g]:.2f} ({p['cpu_pct_of_one_core'][g]:.0f}%)" for g in ("registry", "postgres", "bench")
                     if g in p["cpu_ms_per_request"]]  # fmt: skip
            if "other_pct_of_one_core" in p:
                cells.append(f"other {p['other_pct_of_one_core']:.0f}%")
            lines.append(f"  {label:<20} " + ", ".join(cells))
    for key in ("pg_before", "api", "pg_after"):
        if ph[key]["errors"]:
            lines.append(f"errors in {key}: {ph[key]['errors']}")
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Benchmark the registry's NIK lookup against the bare PostgreSQL query.")
    p.add_argument("--persons", type=int, default=1_000_000, help="persons to load (default 1000000)")
    p.add_argument("--rate", type=float, default=200.0, help="offered requests per second (default 200)")
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds per phase (default 20)")
    p.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds at the rate before each phase (default 3)")
    p.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (stack, registry log) after the run")
    args = p.parse_args(argv)
    if args.persons < 1 or args.rate <= 0 or args.duration <= 0:
        p.error("--persons, --rate and --duration must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from pilar_devstack import LocalStack, free_port

    work_dir = Path(tempfile.mkdtemp(prefix="pilar-bench-lookup-"))
    stack = LocalStack(run_dir=work_dir / "stack", pg_admin_url="", pg_port=free_port(), kafka_port=free_port(),
                       controller_port=free_port(), partitions=1)  # fmt: skip
    result = None
    try:
        t = time.perf_counter()
        stack.start_postgres()
        stack.create_databases(["registry_lookup_bench"])
        args.database_url = stack.database_url("registry_lookup_bench")
        stack.start_kafka()
        args.bootstrap = stack.kafka_bootstrap
        print(f"local stack up in {time.perf_counter() - t:.1f} s ({work_dir})", flush=True)
        migrate(args.database_url)
        # The standard event loop: uvloop's clock and timers tick in whole milliseconds, too
        # coarse for latencies of a few milliseconds.
        result = asyncio.run(run(args, work_dir, stack.postgres.pid()))
    finally:
        stack.stop()
        if not args.keep:
            shutil.rmtree(work_dir, ignore_errors=True)
    print()
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"\nJSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
