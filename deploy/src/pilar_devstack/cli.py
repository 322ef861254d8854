"""``pilar-stack`` (or ``python -m pilar_devstack``): run the platform locally without Docker.

    pilar-stack up            PostgreSQL, Kafka, migrations, every service and the gateway, demo data
    pilar-stack down [--wipe] stop everything (--wipe also deletes the data folders)
    pilar-stack status        one line per process
    pilar-stack logs NAME     the end of a log (-f to follow); NAME: postgres, kafka, a service, NAME-migrate
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from .processes import StackError, tail
from .stack import LocalStack

T = TypeVar("T")


def _step(label: str, action: Callable[[], T]) -> T:
    print(f"{label} ...", end="", flush=True)
    started = time.monotonic()
    try:
        result = action()
    except BaseException:
        print(" failed", flush=True)
        raise
    print(f" done ({time.monotonic() - started:.1f} s)", flush=True)
    return result


def _seed(stack: LocalStack) -> bool:
    """Run ``pilar_devstack.seed.seed(stack)`` when that module exists; True when it ran."""
    try:
        module = importlib.import_module("pilar_devstack.seed")
    except ModuleNotFoundError as exc:
        if exc.name == "pilar_devstack.seed":
            return False
        raise
    asyncio.run(module.seed(stack))
    return True


def cmd_up(args: argparse.Namespace) -> int:
    stack = LocalStack.from_saved()
    started = time.monotonic()
    began = False  # once something may have started, failures leave it running for inspection
    try:
        _step("checking prerequisites (java, PostgreSQL)", stack.check_prerequisites)
        fetched = _step("Kafka jars (fetched once with Maven)", stack.fetch_kafka)
        if fetched:
            print(f"  cached in {stack.kafka.libs_dir}")
        began = True
        if stack.postgres.external:
            print(f"PostgreSQL: external server {stack.postgres.host}:{stack.postgres.port} (PILAR_PG_ADMIN_URL)")
        else:
            _step(f"PostgreSQL on 127.0.0.1:{stack.pg_port}", stack.start_postgres)
        _step("databases", stack.create_databases)
        _step(f"Kafka on {stack.kafka_bootstrap}", stack.start_kafka)
        _step("topics, migrations, services", stack.start_components)
        if not args.no_seed and importlib.util.find_spec("pilar_devstack.seed") is not None:
            _step("demo data", lambda: _seed(stack))
    except Exception as exc:
        if not isinstance(exc, StackError):  # a bug or a missing piece (e.g. a kernel function): show where
            traceback.print_exc()
        message = str(exc) if isinstance(exc, StackError) else f"{type(exc).__name__}: {exc}"
        print(f"\nerror: {message}", file=sys.stderr)
        if began:
            print("Whatever started keeps running for inspection; `pilar-stack down` stops it.", file=sys.stderr)
        return 1
    print()
    width = max(len(c.name) for c in stack.components) + 2
    for component in stack.components:
        extra = "   (API docs: /docs)" if component.name == "gateway" else ""
        print(f"  {component.name:<{width}}{stack.url(component.name)}{extra}")
    print(f"  {'postgres':<{width}}{stack.database_url('<database>')}")
    print(f"  {'kafka':<{width}}{stack.kafka_bootstrap}")
    print(f"  {'logs':<{width}}{stack.logs_dir}")
    print(f"\nstarted in {time.monotonic() - started:.1f} s; `pilar-stack down` stops it")
    print("ready")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    stack = LocalStack.from_saved()
    try:
        _step("stopping services", stack.stop_components)
        _step("stopping Kafka", stack.stop_kafka)
        if not stack.postgres.external:
            _step("stopping PostgreSQL", stack.stop_postgres)
    except StackError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    if args.wipe:
        stack.wipe()
        print(f"deleted {stack.run_dir / 'data'}")
    print("stopped")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    stack = LocalStack.from_saved()
    rows = stack.status()
    print(f"{'NAME':<17}{'STATE':<10}{'PID':<9}{'PORT':<7}READY")
    for row in rows:
        print(f"{row.name:<17}{row.state:<10}{row.pid or '-'!s:<9}{row.port or '-'!s:<7}{'yes' if row.ready else 'no'}")
    return 0


def _follow(path: Path) -> None:
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        while True:
            chunk = handle.read()
            if chunk:
                sys.stdout.write(chunk.decode(errors="replace"))
                sys.stdout.flush()
            else:
                time.sleep(0.3)


def cmd_logs(args: argparse.Namespace) -> int:
    stack = LocalStack.from_saved()
    path = stack.log_path(args.name)
    if not path.exists():
        known = sorted(p.stem for p in stack.logs_dir.glob("*.log"))
        print(f"no log {path}; logs: {', '.join(known) or 'none yet'}", file=sys.stderr)
        return 1
    print(tail(path, args.lines))
    if args.follow:
        try:
            _follow(path)
        except KeyboardInterrupt:
            pass
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pilar-stack", description="Run the Pilar platform locally (no Docker).")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start PostgreSQL, Kafka, every service and the gateway")
    up.add_argument("--no-seed", action="store_true", help="do not load demo data")
    up.set_defaults(func=cmd_up)
    down = commands.add_parser("down", help="stop everything")
    down.add_argument("--wipe", action="store_true", help="also delete the PostgreSQL and Kafka data")
    down.set_defaults(func=cmd_down)
    status = commands.add_parser("status", help="one line per process")
    status.set_defaults(func=cmd_status)
    logs = commands.add_parser("logs", help="show the end of a log")
    logs.add_argument("name", help="postgres, kafka, gateway, registry, ..., or <name>-migrate")
    logs.add_argument("-n", "--lines", type=int, default=100)
    logs.add_argument("-f", "--follow", action="store_true")
    logs.set_defaults(func=cmd_logs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
