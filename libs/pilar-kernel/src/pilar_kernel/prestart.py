"""Prestart: wait for the database, then ``alembic upgrade head`` (``python -m pilar_kernel.prestart``).

Run from a service's folder (where its ``alembic.ini`` is) before the service starts: by
the local stack, and by the container's entrypoint.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from tenacity import retry, stop_after_delay, wait_fixed

from .db import asyncpg_dsn


@retry(stop=stop_after_delay(60), wait=wait_fixed(1), reraise=True)
async def wait_for_database(url: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=5)
    await conn.execute("SELECT 1")
    await conn.close()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ini = Path(argv[0]) if argv else Path("alembic.ini")
    url = os.environ.get("PILAR_DATABASE_URL")
    if not url:
        print("prestart: PILAR_DATABASE_URL is not set", file=sys.stderr)
        return 2
    if not ini.exists():
        print(f"prestart: {ini} not found (run from the service folder)", file=sys.stderr)
        return 2
    try:
        asyncio.run(wait_for_database(url))
    except Exception as exc:
        print(f"prestart: database not reachable after 60 s: {exc}", file=sys.stderr)
        return 1
    cfg = Config(str(ini))
    cfg.set_main_option("script_location", str(ini.parent.resolve() / "migrations"))
    command.upgrade(cfg, "head")
    print("prestart: migrations at head")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
