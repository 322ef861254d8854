#!/usr/bin/env python
"""Benchmark of the registry's bulk import of persons (``POST /v1/imports``).

Run from the repository root::

    .venv/bin/python bench/registry_import.py [--rows 1000000] [--json out.json]

It starts its own PostgreSQL (``pilar_devstack.LocalStack`` in a temporary folder) unless
``--database-url`` points at a SCRATCH database (its registry tables are dropped and
migrated afresh), migrates the registry, generates N valid rows (NIKs made with
``make_nik`` over Jawa Timur's districts, families of 1-6 on one KK, a village of the
NIK's district) and measures in one run:

1. **COPY baseline, before**: the same rows, checked, hashed and sealed by the import's own
   code (not timed), are loaded with one binary ``COPY`` in one transaction into
   ``person_copy (LIKE person INCLUDING ALL)``, a table with the person table's indexes →
   rows/s: the database's own limit for this load.
2. **import, end to end**: the registry runs in a child process (uvicorn, as in
   production: the API and its import worker, which applies ``--lanes`` pieces at once, the
   service's default when not given; the outbox relay only with ``--with-relay``).
   From the start of the upload until ``GET /v1/imports/{id}`` says ``done`` (every row
   committed with its household membership and its outbox events) → rows/s. Target
   ≥ 20,000 rows/s.
3. **COPY baseline, after**: the very rows the import stored in ``person`` are exported
   (not timed), the import's tables emptied, and loaded again as in 1.

The ratio import / COPY (target ≥ 0.25) is taken against the mean of the two COPY runs: on
a shared machine a single short COPY can fall into a quiet or a busy minute.
A ``CHECKPOINT`` precedes each timed phase. CPU is reported per phase for the registry
process and for PostgreSQL (postmaster and its backends; % of one core; with
``--database-url``, when the server listens on this machine, found by its port). Benchmarks
print figures; nothing here asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
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
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

import procstat  # bench/procstat.py: CPU accounting shared by the benchmarks

REPO = Path(__file__).resolve().parents[1]
REGISTRY_DIR = REPO / "services" / "registry"
TARGET_RATE = 20_000.0
TARGET_RATIO = 0.25
SERVE_FLAG = "--serve-child"

# --------------------------------------------------------------------------- the rows

GIVEN_M = ["Slamet", "Budi", "Agus", "Joko", "Suparman", "Mochammad", "Ahmad", "Hadi", "Bambang", "Eko", "Rudi", "Wahyu"]
GIVEN_F = ["Siti", "Sri", "Dewi", "Nur", "Endang", "Lestari", "Wati", "Rahayu", "Aminah", "Yuliana", "Ratna", "Fitri"]
FAMILY = ["Santoso", "Wibowo", "Susanto", "Hidayat", "Purnomo", "Setiawan", "Rahman", "Kurniawan", "Saputra", "Hasanah", ""]
OCCUPATIONS = ["petani", "buruh tani", "nelayan", "pedagang", "buruh pabrik", "ibu rumah tangga", "pelajar", "tidak bekerja", "sopir"]
PPKS = ["fakir_miskin", "lansia_telantar", "penyandang_disabilitas", "perempuan_rawan_sosial_ekonomi", "anak_telantar"]
COLUMNS = (
    "nik", "name", "birth_place", "birth_date", "sex", "kk_number", "relationship", "village_code", "rt", "rw",
    "street", "phone", "disability_type", "disability_severity", "ppks", "decile", "decile_date", "occupation",
    "employer",
)  # fmt: skip


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


def generate_csv(n: int, seed: int = 2026) -> tuple[bytes, int]:
    """N valid rows as the CSV an office would upload; returns (file, number of households)."""
    from pilar_kernel.nik import make_nik

    rng = random.Random(seed)
    districts = jatim_districts()
    serials = [0] * len(districts)
    households = [0] * len(districts)
    today = date.today()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    rows = families = 0
    while rows < n:
        d = rng.randrange(len(districts))
        code, villages, place = districts[d]
        households[d] += 1
        families += 1
        kk = code.replace(".", "") + f"{households[d]:010d}"
        village = rng.choice(villages)
        street = f"Jl. {rng.choice(FAMILY) or 'Merdeka'} No. {rng.randint(1, 200)}"
        rt, rw = f"{rng.randint(1, 20):03d}", f"{rng.randint(1, 10):03d}"
        decile = rng.randint(1, 10)
        surname = rng.choice(FAMILY)
        size = min(n - rows, rng.choice((1, 2, 3, 3, 4, 4, 4, 5, 6)))
        head_born = date(rng.randint(1945, 1995), rng.randint(1, 12), rng.randint(1, 28))
        for i in range(size):
            if i == 0:
                rel, sex, born = "KEPALA KELUARGA", rng.choice("MMMMF"), head_born
            elif i == 1:
                rel, sex, born = "ISTRI", "F", head_born + timedelta(days=rng.randint(-1500, 3000))
            else:
                rel, sex = "ANAK", rng.choice("MF")
                born = min(today - timedelta(days=30), head_born + timedelta(days=rng.randint(7000, 12000)))
            if born.month == 2 and born.day == 29:
                born = born.replace(day=28)
            serials[d] += 1
            nik = make_nik(code, born, sex, serials[d])
            given = rng.choice(GIVEN_M if sex == "M" else GIVEN_F)
            disabled = rng.random() < 0.05
            writer.writerow((
                nik, f"{given} {surname}".strip(), place, born.isoformat(), "L" if sex == "M" else "P", kk, rel, village,
                rt, rw, street, f"08{rng.randint(11, 99)}-{rng.randint(1000, 9999)}-{rng.randint(100, 9999)}" if rng.random() < 0.6 else "",
                "physical" if disabled else "", rng.choice(("mild", "moderate", "severe")) if disabled else "",
                ";".join(rng.sample(PPKS, rng.randint(1, 2))) if rng.random() < 0.3 else "",
                decile, "2026-07-01", rng.choice(OCCUPATIONS), "",
            ))  # fmt: skip
            rows += 1
    return out.getvalue().encode(), families


# --------------------------------------------------------------------------- CPU accounting


class Cpu:
    """CPU seconds of the registry process and of PostgreSQL during a phase (procstat.PhaseCpu)."""

    def __init__(self, server_pid: int | None, postmaster: int | None) -> None:
        self.server_pid, self.postmaster = server_pid, postmaster

    def _groups(self) -> dict[str, list[int]]:
        groups = {"registry": [self.server_pid] if self.server_pid else []}
        if self.postmaster:
            groups["postgres"] = procstat.with_children(self.postmaster)
        return groups

    @asynccontextmanager
    async def measure(self, into: dict[str, Any]):
        phase = procstat.PhaseCpu(self._groups)
        phase.start()
        yield
        figures = phase.stop()
        figures.pop("wall_s")
        into.update(figures)


# --------------------------------------------------------------------------- the registry process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(cfg: dict[str, Any]) -> None:
    """Child process: the registry app (imports router and worker added if app.py lacks them)."""
    import uvicorn

    from registry.app import create_app
    from registry.imports import api as imports_api
    from registry.imports.service import import_worker
    from registry.settings import Settings

    settings = Settings(
        env="test", database_url=cfg["database_url"], kafka_bootstrap=cfg["bootstrap"], jwks_file=cfg["jwks_file"],
        relay_enabled=cfg["relay"], consumers_enabled=False, log_level="WARNING",
        **({"import_lanes": cfg["lanes"]} if cfg.get("lanes") else {}),
    )  # fmt: skip
    app = create_app(settings)
    if not any(getattr(r, "path", None) == "/v1/imports" for r in app.routes):
        app.include_router(imports_api.router)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a):
        async with inner(a):
            wired = any(getattr(s, "name", None) == "import_worker" for s in getattr(a.state, "workers", ()))
            worker = None if wired else import_worker(a)  # until app.py lists it in ServiceSpec.workers
            task = None if worker is None else asyncio.create_task(worker.run())
            try:
                yield
            finally:
                if worker is not None:
                    await worker.stop()
                    await asyncio.wait_for(task, timeout=30)

    app.router.lifespan_context = lifespan
    uvicorn.run(app, host="127.0.0.1", port=cfg["port"], log_level="warning", access_log=False)


def start_server(cfg: dict[str, Any], log_path: Path) -> subprocess.Popen:
    log = open(log_path, "wb")
    return subprocess.Popen([sys.executable, __file__, SERVE_FLAG, json.dumps(cfg)], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


async def wait_ready(base: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the registry process exited with {proc.returncode}")
            try:
                if (await client.get(f"{base}/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("the registry process did not become healthy")


# --------------------------------------------------------------------------- the phases


async def checkpoint(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CHECKPOINT")
    except asyncpg.InsufficientPrivilegeError:
        pass  # an external database where we are not allowed to: run without
    finally:
        await conn.close()


async def phase_import(base: str, token: str, data: bytes, rows: int, cpu: Cpu, dsn: str, relay: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": rows, "bytes": len(data)}
    headers = {"Authorization": f"Bearer {token}"}
    await checkpoint(dsn)
    async with httpx.AsyncClient(timeout=httpx.Timeout(600.0)) as client:
        async with cpu.measure(out):
            t0 = time.perf_counter()
            r = await client.post(f"{base}/v1/imports?filename=bench.csv", content=data,
                                  headers={**headers, "Content-Type": "text/csv", "Idempotency-Key": f"bench-{time.time_ns()}"})  # fmt: skip
            if r.status_code != 202:
                raise RuntimeError(f"upload refused: {r.status_code} {r.text[:500]}")
            t_upload = time.perf_counter()
            job_id, last_print = r.json()["id"], t_upload
            print(f"  upload accepted after {t_upload - t0:.1f} s", flush=True)
            while True:
                job = (await client.get(f"{base}/v1/imports/{job_id}", headers=headers)).json()
                if job["status"] in ("done", "failed"):
                    break
                if time.perf_counter() - last_print > 10:
                    last_print = time.perf_counter()
                    print(f"  {job['status']}: {job['processed']:,} of {job['total']:,} rows after {last_print - t0:.0f} s", flush=True)
                await asyncio.sleep(0.1)
            t_done = time.perf_counter()
    out.update(job={k: job[k] for k in ("status", "total", "processed", "inserted", "updated", "unchanged", "failed", "error")})
    out["upload_s"], out["processing_s"], out["duration_s"] = t_upload - t0, t_done - t_upload, t_done - t0
    out["rate"] = rows / out["duration_s"]
    conn = await asyncpg.connect(dsn)
    try:
        out["stored"] = {
            "person": await conn.fetchval("SELECT count(*) FROM person"),
            "household": await conn.fetchval("SELECT count(*) FROM household"),
            "household_member": await conn.fetchval("SELECT count(*) FROM household_member WHERE valid_to IS NULL"),
            "outbox_person_registered": await conn.fetchval("SELECT count(*) FROM outbox WHERE ce_type LIKE '%.person.registered.v1'"),
            "outbox_household_changed": await conn.fetchval("SELECT count(*) FROM outbox WHERE ce_type LIKE '%.household.changed.v1'"),
        }
        if relay:
            t = time.perf_counter()
            while await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"):
                await asyncio.sleep(0.5)
            out["relay_drained_s_after_done"] = time.perf_counter() - t
    finally:
        await conn.close()
    return out


async def _person_columns(conn: asyncpg.Connection) -> list[str]:
    return [r["attname"] for r in await conn.fetch(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'person'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
    )]  # fmt: skip


async def export_prepared(dsn: str, data: bytes, path: Path) -> int:
    """The person rows the import will store for ``data`` (checked, hashed and sealed by the
    import's own code), written as a binary COPY file through an index-free staging table."""
    from registry.imports import domain, service
    from registry.privacy import Privacy
    from registry.settings import Settings

    privacy = Privacy.from_settings(Settings(env="test"))
    upload = domain.split_upload(domain.decode(data))
    ctx = domain.RowContext(columns=upload.columns, region=None, today=date.today())
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP TABLE IF EXISTS person_stage")
        await conn.execute("CREATE UNLOGGED TABLE person_stage (LIKE person INCLUDING DEFAULTS)")
        rows = 0
        for piece in upload.pieces:
            raw = {"seq": piece.seq, "first_row": piece.first_row, "row_count": piece.row_count,
                   "data": piece.text.encode(), "dup_rows": piece.dup_rows, "dup_of": piece.dup_of}  # fmt: skip
            prepared = service.prepare(raw, ctx, privacy)
            await conn.copy_records_to_table("person_stage", records=prepared.new_records, columns=service.PERSON_COLUMNS)
            rows += len(prepared.new_records)
        columns = await _person_columns(conn)
        await conn.copy_from_query(f"SELECT {', '.join(columns)} FROM person_stage", output=str(path), format="binary")
        await conn.execute("DROP TABLE person_stage")
        return rows
    finally:
        await conn.close()


async def export_imported(dsn: str, path: Path) -> int:
    """The rows the import stored in ``person``, as a binary COPY file; then the import's tables are emptied."""
    conn = await asyncpg.connect(dsn)
    try:
        columns = await _person_columns(conn)
        await conn.copy_from_query(f"SELECT {', '.join(columns)} FROM person", output=str(path), format="binary")
        rows = await conn.fetchval("SELECT count(*) FROM person")
        await conn.execute("TRUNCATE person, household, household_member, pii_access, outbox, import_job, import_piece, import_error CASCADE")
        return rows
    finally:
        await conn.close()


async def phase_copy(dsn: str, cpu: Cpu, path: Path, rows: int) -> dict[str, Any]:
    """One binary COPY of the file into a fresh ``person_copy (LIKE person INCLUDING ALL)``, in one transaction."""
    out: dict[str, Any] = {"rows": rows, "file_bytes": path.stat().st_size}
    conn = await asyncpg.connect(dsn)
    try:
        columns = await _person_columns(conn)
        await conn.execute("DROP TABLE IF EXISTS person_copy")
        await conn.execute("CREATE TABLE person_copy (LIKE person INCLUDING ALL)")
        out["indexes"] = await conn.fetchval("SELECT count(*) FROM pg_indexes WHERE tablename = 'person_copy'")
        await checkpoint(dsn)
        async with cpu.measure(out):
            t0 = time.perf_counter()
            async with conn.transaction():
                await conn.copy_to_table("person_copy", source=str(path), columns=columns, format="binary")
            out["duration_s"] = time.perf_counter() - t0
        out["rate"] = rows / out["duration_s"]
        await conn.execute("DROP TABLE person_copy")
        await checkpoint(dsn)
    finally:
        await conn.close()
        path.unlink(missing_ok=True)
    return out


def migrate(url: str, fresh: bool) -> None:
    if fresh:
        dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)

        async def reset():
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public; CREATE EXTENSION IF NOT EXISTS pg_trgm")
            finally:
                await conn.close()

        asyncio.run(reset())
    subprocess.run([sys.executable, "-m", "pilar_kernel.prestart"], cwd=REGISTRY_DIR, env={**os.environ, "PILAR_DATABASE_URL": url},
                   check=True, capture_output=True)  # fmt: skip


async def run(args: argparse.Namespace, postmaster: int | None, work_dir: Path) -> dict[str, Any]:
    from pilar_kernel.testing import TestKeys

    dsn = args.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "loadavg_at_start": os.getloadavg()},
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }  # fmt: skip
    t = time.perf_counter()
    print(f"generating {args.rows:,} rows ...", end=" ", flush=True)
    data, families = generate_csv(args.rows)
    result["households"] = families
    print(f"{len(data) / 1e6:,.0f} MB, {families:,} households in {time.perf_counter() - t:.0f} s", flush=True)

    t = time.perf_counter()
    print("[copy 1] preparing the same rows with the import's code (not timed), then one COPY ...", flush=True)
    rows = await export_prepared(dsn, data, work_dir / "before.copy")
    print(f"  prepared in {time.perf_counter() - t:.0f} s", flush=True)
    copies = [await phase_copy(dsn, Cpu(None, postmaster), work_dir / "before.copy", rows)]
    print(f"  {copies[0]['rate']:,.0f} rows/s ({copies[0]['duration_s']:.1f} s, {copies[0]['indexes']} indexes)", flush=True)

    keys = TestKeys()
    jwks = work_dir / "jwks.json"
    jwks.write_text(json.dumps(keys.jwks))
    token = keys.token("bench-province", ("registry:write", "registry:read"), ttl_s=24 * 3600)
    port = _free_port()
    cfg = {"database_url": args.database_url, "bootstrap": args.bootstrap or "127.0.0.1:1", "jwks_file": str(jwks),
           "relay": args.with_relay, "port": port, "lanes": args.lanes}  # fmt: skip
    proc = start_server(cfg, work_dir / "registry.log")
    try:
        base = f"http://127.0.0.1:{port}"
        await wait_ready(base, proc)
        cpu = Cpu(proc.pid, postmaster)
        print("[import] upload → done ...", flush=True)
        result["import"] = imp = await phase_import(base, token, data, args.rows, cpu, dsn, args.with_relay)
        print(f"  {imp['job']['status']}: {imp['rate']:,.0f} rows/s end to end ({imp['duration_s']:.1f} s)", flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    del data
    print("[copy 2] the rows the import stored, exported (not timed), tables emptied, one COPY ...", flush=True)
    rows = await export_imported(dsn, work_dir / "after.copy")
    copies.append(await phase_copy(dsn, Cpu(None, postmaster), work_dir / "after.copy", rows))
    print(f"  {copies[1]['rate']:,.0f} rows/s ({copies[1]['duration_s']:.1f} s)", flush=True)
    result["copies"] = copies
    result["copy_rate"] = sum(c["rate"] for c in copies) / len(copies)
    result["ratio"] = result["import"]["rate"] / result["copy_rate"]
    result["machine"]["loadavg_at_end"] = os.getloadavg()
    return result


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(r: dict[str, Any]) -> str:
    imp, copies = r["import"], r["copies"]
    la0, la1 = r["machine"]["loadavg_at_start"], r["machine"]["loadavg_at_end"]
    job, stored = imp["job"], imp["stored"]
    lines = [
        f"Pilar registry import benchmark — {r['when']}, {r['machine']['cpus']} CPUs, "
        f"load average {la0[0]:.2f} at start, {la1[0]:.2f} at end",
        f"{imp['rows']:,} generated valid rows ({imp['bytes'] / 1e6:,.0f} MB CSV, {r['households']:,} households); "
        f"outbox relay {'running' if r['args']['with_relay'] else 'off (rows end committed in the outbox)'}"
        + (f"; {r['args']['lanes']} import lanes" if r["args"].get("lanes") else ""),
        "",
    ]  # fmt: skip
    row = "{:<52} {:>18} {:>10}  {}"
    lines += [row.format("figure", "value", "target", ""), "-" * 88]
    lines.append(row.format("import end to end (upload → job done)", f"{imp['rate']:,.0f} rows/s", f"≥ {TARGET_RATE:,.0f}",
                            verdict(imp["rate"] >= TARGET_RATE and job["status"] == "done")))  # fmt: skip
    lines.append(row.format("  upload + check + store (POST → 202)", f"{imp['upload_s']:,.1f} s", "", ""))
    lines.append(row.format("  processing (202 → done)", f"{imp['processing_s']:,.1f} s", "", ""))
    for label, cp in zip(("before", "after"), copies):
        lines.append(row.format(f"bare COPY into LIKE person INCLUDING ALL, {label}", f"{cp['rate']:,.0f} rows/s", "", ""))
    lines.append(row.format(f"  mean of the two ({copies[0]['indexes']} indexes)", f"{r['copy_rate']:,.0f} rows/s", "", ""))
    lines.append(row.format("import / COPY (mean)", f"{r['ratio']:.2f}", f"≥ {TARGET_RATIO:.2f}", verdict(r["ratio"] >= TARGET_RATIO)))
    lines += [
        "",
        f"job: {job['status']}, {job['processed']:,} processed, {job['inserted']:,} inserted, {job['updated']:,} updated, "
        f"{job['unchanged']:,} unchanged, {job['failed']:,} failed{(' — ' + job['error']) if job['error'] else ''}",
        f"stored: {stored['person']:,} persons, {stored['household']:,} households, {stored['household_member']:,} memberships; "
        f"outbox: {stored['outbox_person_registered']:,} PersonRegistered, {stored['outbox_household_changed']:,} HouseholdChanged",
    ]  # fmt: skip
    if "relay_drained_s_after_done" in imp:
        lines.append(f"relay: outbox fully published {imp['relay_drained_s_after_done']:.1f} s after the job was done")
    lines += ["", "CPU, % of one core (CPU time per row); 'other' = busy time on the machine that is not this run's:"]
    for label, phase in (("import", imp), ("COPY 1", copies[0]), ("COPY 2", copies[1])):
        cells = [f"{g} {phase['cpu_pct_of_one_core'][g]:.0f}% ({1e6 * phase['cpu_s'][g] / phase['rows']:.0f} µs)"
                 for g in phase["cpu_s"] if phase["cpu_s"][g] > 0]  # fmt: skip
        if "other_pct_of_one_core" in phase:
            cells.append(f"other {phase['other_pct_of_one_core']:.0f}%")
        lines.append(f"  {label:<8} " + ", ".join(cells))
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Benchmark the registry's bulk import against a bare COPY.")
    p.add_argument("--rows", type=int, default=1_000_000, help="rows to generate and import (default 1000000)")
    p.add_argument("--database-url", help="use this SCRATCH database (postgresql+asyncpg://...): its tables are dropped")
    p.add_argument("--with-relay", action="store_true", help="run the outbox relay during the import (needs Kafka)")
    p.add_argument("--bootstrap", help="Kafka for --with-relay (started if not given)")
    p.add_argument("--lanes", type=int, help="pieces the registry applies at once (PILAR_IMPORT_LANES; default: the service's, 2)")
    p.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (stack, registry log) after the run")
    args = p.parse_args(argv)
    if args.rows < 1:
        p.error("--rows must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [SERVE_FLAG]:
        serve(json.loads(argv[1]))
        return 0
    args = parse_args(argv)
    work_dir = Path(tempfile.mkdtemp(prefix="pilar-bench-import-"))
    stack = None
    try:
        postmaster = None
        if not args.database_url or (args.with_relay and not args.bootstrap):
            from pilar_devstack import LocalStack, free_port

            stack = LocalStack(run_dir=work_dir / "stack", pg_admin_url="", pg_port=free_port(), kafka_port=free_port(),
                               controller_port=free_port(), partitions=3)  # fmt: skip
            t = time.perf_counter()
            if not args.database_url:
                stack.start_postgres()
                stack.create_databases(["registry_bench"])
                args.database_url = stack.database_url("registry_bench")
                postmaster = stack.postgres.pid()
            if args.with_relay and not args.bootstrap:
                stack.start_kafka()
                args.bootstrap = stack.kafka_bootstrap
            print(f"local stack up in {time.perf_counter() - t:.1f} s ({work_dir})", flush=True)
            migrate(args.database_url, fresh=False)
        else:
            migrate(args.database_url, fresh=True)
            from urllib.parse import urlsplit

            parts = urlsplit(args.database_url.replace("+asyncpg", ""))
            if parts.hostname in ("127.0.0.1", "localhost"):
                postmaster = procstat.pid_listening_on(parts.port or 5432)
        result = asyncio.run(run(args, postmaster, work_dir))
    finally:
        if stack is not None:
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
