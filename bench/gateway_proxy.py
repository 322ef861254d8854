#!/usr/bin/env python
"""Benchmark of the API gateway's proxy: a small authenticated GET through the gateway versus
straight to the service, in the same run.

Run from the repository root::

    .venv/bin/python bench/gateway_proxy.py [--duration 5] [--rounds 3] [--json out.json]

It starts its own PostgreSQL (``pilar_devstack.LocalStack``, no Kafka) in a temporary folder,
migrates a gateway database, makes a development key pair, and starts as separate uvicorn
processes, like the local stack does:

* the upstream service (default ``disaster``, route ``GET /v1/whoami``: token verified, no
  database), with relay and consumers off;
* one gateway per transport compared (``aiohttp``: httpx's API over ``httpx-aiohttp``;
  ``httpx``: httpx's own transport), each routing ``/v1/<service>/...`` to that service.

A client is made with ``python -m gateway.admin create-client`` and its token taken from
``POST /oauth/token``. The load generator (aiohttp on uvloop, in this process) then runs, in
every round and in turn for each target: a closed loop with ``--connections`` connections
for ``--duration`` seconds (requests/s), and one connection for ``--duration`` seconds
(median and p99 latency). Figures are medians over the rounds. Each phase also reports the
CPU time the service, the gateway and the load generator used per request.

Targets: gateway throughput >= 35% of direct; median added latency <= 0.5 ms. Benchmarks
print figures; nothing here asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
import uvloop

from pilar_devstack import LocalStack, free_port
from pilar_kernel.auth import write_dev_keys

import procstat  # bench/procstat.py: CPU accounting shared by the benchmarks

REPO = Path(__file__).resolve().parents[1]
TARGET_THROUGHPUT_RATIO = 0.35
TARGET_ADDED_MS = 0.5
def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process."""
    seconds = procstat.cpu_seconds(pid)
    if seconds is None:
        raise RuntimeError(f"process {pid} is gone")
    return seconds


def self_cpu() -> float:
    times = os.times()
    return times.user + times.system


@dataclass
class Process:
    name: str
    proc: subprocess.Popen
    url: str
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_uvicorn(name: str, factory: str, cwd: Path, env: dict[str, str], logs: Path) -> Process:
    port = free_port()
    log = logs / f"{name}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1", "--port", str(port),
         "--no-access-log", "--log-level", "warning"],
        cwd=cwd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited at start; see {log}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return Process(name, proc, url, log)
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"{name} did not answer /health within 90 s; see {log}")
        time.sleep(0.2)


@dataclass
class Phase:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    cpu_ms_per_request: dict[str, float] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(q * len(data)))] if data else float("nan")


async def closed_loop(url: str, headers: dict[str, str], connections: int, duration: float, pids: dict[str, int]) -> Phase:
    connector = aiohttp.TCPConnector(limit=connections, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector) as session:
        # warm every connection first (TCP setup, the gateway's token cache)
        await asyncio.gather(*(_one(session, url, headers) for _ in range(connections * 2)))
        loop = asyncio.get_running_loop()
        phase = Phase()
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        own_before = self_cpu()
        start = loop.time()
        stop_at = start + duration

        async def worker() -> None:
            while loop.time() < stop_at:
                t0 = time.perf_counter()
                ok = await _one(session, url, headers)
                phase.latencies_ms.append((time.perf_counter() - t0) * 1000)
                phase.requests += 1
                phase.errors += 0 if ok else 1

        await asyncio.gather(*(worker() for _ in range(connections)))
        phase.seconds = loop.time() - start
        for name, pid in pids.items():
            phase.cpu_ms_per_request[name] = (cpu_seconds(pid) - cpu_before[name]) * 1000 / max(1, phase.requests)
        phase.cpu_ms_per_request["loadgen"] = (self_cpu() - own_before) * 1000 / max(1, phase.requests)
        return phase


async def _one(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> bool:
    async with session.get(url, headers=headers) as response:
        await response.read()
        return response.status == 200


def machine_busy() -> float:
    """Share of both cores busy over the last minute (load average / cores)."""
    return os.getloadavg()[0] / (os.cpu_count() or 1)


def run(args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="pilar-bench-gw-"))
    logs = work / "logs"
    logs.mkdir()
    processes: list[Process] = []
    stack = LocalStack(run_dir=work / "stack", pg_port=free_port(), kafka_port=free_port(), controller_port=free_port(),
                       pg_admin_url="")
    try:
        if args.database_url:
            database_url = args.database_url
        else:
            print("starting PostgreSQL ...", flush=True)
            stack.start_postgres()
            stack.create_databases(["gateway"])
            database_url = stack.database_url("gateway")
        base_env = {**os.environ, "PILAR_ENV": "development", "PILAR_DATABASE_URL": database_url,
                    "PILAR_RELAY_ENABLED": "false", "PILAR_CONSUMERS_ENABLED": "false", "PILAR_LOG_LEVEL": args.log_level,
                    "PYTHONUNBUFFERED": "1"}
        subprocess.run([sys.executable, "-m", "pilar_kernel.prestart"], cwd=REPO / "gateway", env=base_env, check=True,
                       capture_output=True)
        pem, jwks = write_dev_keys(work / "secrets")

        service_dir = REPO / "services" / args.service
        upstream = start_uvicorn(args.service, f"{args.service.replace('-', '_')}.app:create_app", service_dir,
                                 {**base_env, "PILAR_JWKS_FILE": str(jwks)}, logs)
        processes.append(upstream)
        gateways: dict[str, Process] = {}
        for transport in args.transports:
            env = {**base_env, "PILAR_JWT_PRIVATE_KEY_FILE": str(pem), "PILAR_JWKS_FILE": str(jwks),
                   "PILAR_SERVICE_URLS": json.dumps({args.service: upstream.url}), "PILAR_PROXY_TRANSPORT": transport,
                   "PILAR_SEED_DEMO_CLIENTS": "false", "PILAR_RATE_LIMIT_PER_S": "1000000", "PILAR_RATE_LIMIT_BURST": "1000000"}
            gateways[transport] = start_uvicorn(f"gateway-{transport}", "gateway.app:create_app", REPO / "gateway", env, logs)
            processes.append(gateways[transport])

        created = subprocess.run(
            [sys.executable, "-m", "gateway.admin", "create-client", "bench-client", "--name", "benchmark",
             "--scopes", f"{args.service}:read", "--rate", "1000000", "--burst", "1000000"],
            cwd=REPO / "gateway", env=base_env, check=True, capture_output=True, text=True,
        )
        secret = json.loads(created.stdout[created.stdout.index("{"):])["client_secret"]
        first = next(iter(gateways.values()))
        token = httpx.post(f"{first.url}/oauth/token", data={"grant_type": "client_credentials"},
                           auth=("bench-client", secret)).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}

        targets = {"direct": (f"{upstream.url}{args.path}", {"service": upstream.proc.pid})}
        for transport, gw in gateways.items():
            targets[f"gateway ({transport})"] = (
                f"{gw.url}/v1/{args.service}{args.path[3:]}",
                {"service": upstream.proc.pid, "gateway": gw.proc.pid},
            )
        for name, (url, _) in targets.items():
            deadline = time.monotonic() + 30  # each gateway sees the new client at its next directory refresh
            while (check := httpx.get(url, headers=headers)).status_code != 200:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{name}: GET {url} answered {check.status_code}: {check.text[:300]}")
                time.sleep(0.2)

        results: dict[str, dict[str, list[Phase]]] = {name: {"load": [], "single": []} for name in targets}
        for round_no in range(1, args.rounds + 1):
            for name, (url, pids) in targets.items():
                load = asyncio.run(closed_loop(url, headers, args.connections, args.duration, pids))
                single = asyncio.run(closed_loop(url, headers, 1, args.duration, pids))
                results[name]["load"].append(load)
                results[name]["single"].append(single)
                print(f"round {round_no} {name:<18} {load.rps:8.0f} req/s at {args.connections} conns; "
                      f"1 conn median {single.pct(0.5):6.3f} ms  (errors {load.errors + single.errors})", flush=True)
        return summarise(args, results)
    finally:
        for process in processes:
            process.stop()
        if not args.database_url:
            stack.stop_postgres()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def summarise(args: argparse.Namespace, results: dict[str, dict[str, list[Phase]]]) -> dict:
    summary: dict[str, dict] = {}
    for name, phases in results.items():
        load, single = phases["load"], phases["single"]
        cpu_keys = load[0].cpu_ms_per_request.keys()
        summary[name] = {
            "rps": statistics.median(p.rps for p in load),
            "p50_ms_at_load": statistics.median(p.pct(0.5) for p in load),
            "median_ms_1conn": statistics.median(p.pct(0.5) for p in single),
            "p99_ms_1conn": statistics.median(p.pct(0.99) for p in single),
            "errors": sum(p.errors for p in load + single),
            "cpu_ms_per_request": {k: round(statistics.median(p.cpu_ms_per_request[k] for p in load), 3) for k in cpu_keys},
            "cpu_ms_per_request_1conn": {k: round(statistics.median(p.cpu_ms_per_request[k] for p in single), 3) for k in cpu_keys},
        }
        # What an idle 2-core machine would do, from the CPU each process spent per request:
        # every process is capped at one core, all of them together at two.
        cpu = summary[name]["cpu_ms_per_request"]
        summary[name]["projected_idle_rps"] = 1000 / max(max(cpu.values()), sum(cpu.values()) / 2)
    direct = summary["direct"]
    print()
    print(f"{'target':<18} {'req/s@' + str(args.connections):>10} {'ratio':>6} {'median 1c':>10} {'added':>8} {'p99 1c':>8}  "
          f"CPU ms/request (service, gateway, loadgen)")
    for name, s in summary.items():
        s["throughput_ratio"] = s["rps"] / direct["rps"]
        s["added_median_ms"] = s["median_ms_1conn"] - direct["median_ms_1conn"]
        cpu = s["cpu_ms_per_request"]
        print(f"{name:<18} {s['rps']:>10.0f} {s['throughput_ratio']:>6.2f} {s['median_ms_1conn']:>8.3f}ms "
              f"{s['added_median_ms']:>6.3f}ms {s['p99_ms_1conn']:>6.2f}ms  "
              f"{cpu.get('service', 0):.3f}, {cpu.get('gateway', 0):.3f}, {cpu.get('loadgen', 0):.3f}")
    print()
    print("On an idle machine (projected from the CPU per request above; each process capped at one core, all at two):")
    for name, s in summary.items():
        s["projected_ratio"] = s["projected_idle_rps"] / direct["projected_idle_rps"]
        gateway_cpu = s["cpu_ms_per_request_1conn"].get("gateway", 0.0)
        print(f"  {name:<18} {s['projected_idle_rps']:>6.0f} req/s (ratio {s['projected_ratio']:.2f}); "
              f"gateway CPU per request at 1 connection {gateway_cpu:.3f} ms")
    print()
    for name, s in summary.items():
        if name == "direct":
            continue
        tput = "PASS" if s["throughput_ratio"] >= TARGET_THROUGHPUT_RATIO else "MISS"
        lat = "PASS" if s["added_median_ms"] <= TARGET_ADDED_MS else "MISS"
        print(f"{name}: throughput {s['throughput_ratio']:.0%} of direct (target >= {TARGET_THROUGHPUT_RATIO:.0%}) {tput}; "
              f"added median latency {s['added_median_ms']:.3f} ms (target <= {TARGET_ADDED_MS} ms) {lat}")
    return {
        "when": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_per_core_1min": round(machine_busy(), 2)},
        "settings": {k: getattr(args, k) for k in ("service", "path", "connections", "duration", "rounds", "transports")},
        "results": summary,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--service", default="disaster", help="upstream service (its folder under services/)")
    parser.add_argument("--path", default="/v1/whoami", help="an authenticated GET of that service")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--transports", default="aiohttp,httpx", type=lambda s: [t for t in s.split(",") if t])
    parser.add_argument("--log-level", default="INFO", help="of the service and gateways (INFO writes the access log, as deployed)")
    parser.add_argument("--database-url", help="use this (scratch) gateway database instead of starting PostgreSQL")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and its logs")
    args = parser.parse_args()
    uvloop.install()
    print(f"load per core before the run: {machine_busy():.2f} (figures are only comparable on a quiet machine)")
    out = run(args)
    print(f"load per core after the run: {machine_busy():.2f}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
