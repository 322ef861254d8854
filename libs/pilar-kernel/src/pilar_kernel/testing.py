"""Helpers for tests of services built on the kernel (not used in production code).

* :class:`TestKeys` mints tokens with a throwaway signing key and gives its JWKS;
* :func:`create_schema` builds a fresh database's tables (kernel tables + the given metadata);
* :func:`running_app` runs an app's lifespan (relay, consumers) and yields an httpx client.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import create_async_engine

from .auth import SigningKey, generate_signing_key
from .tables import OUTBOX_NOTIFY_DDL, kernel_metadata


class TestKeys:
    __test__ = False  # not a pytest class

    def __init__(self) -> None:
        kid, pem, jwk = generate_signing_key()
        self.signing_key = SigningKey(kid=kid, private_pem=pem)
        self.jwks = {"keys": [jwk]}

    def token(self, subject: str = "test-client", scopes: tuple[str, ...] | list[str] = (), *, region: str | None = None, **kw: Any) -> str:
        return self.signing_key.mint(subject, scopes, region=region, **kw)

    def headers(self, *scopes: str, subject: str = "test-client", region: str | None = None, **kw: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(subject, scopes, region=region, **kw)}"}


def migrate_database(service_dir: Path, database_url: str) -> None:
    """Bring a service's database to its Alembic head, exactly as the stack and images do."""
    result = subprocess.run(
        [sys.executable, "-m", "pilar_kernel.prestart"],
        cwd=service_dir,
        env={**os.environ, "PILAR_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"migrations of {service_dir} failed:\n{result.stdout}\n{result.stderr}")


async def create_schema(database_url: str, *metadatas: MetaData, drop_first: bool = True) -> None:
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        for md in (kernel_metadata, *metadatas):
            if drop_first:
                await conn.run_sync(md.drop_all)
            await conn.run_sync(md.create_all)
        for ddl in OUTBOX_NOTIFY_DDL:
            await conn.execute(text(ddl))
    await engine.dispose()


@asynccontextmanager
async def running_app(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run ``app`` with its lifespan (background workers included) and an in-process client."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


def assert_runs(app: FastAPI, consumer_name: str) -> None:
    """Fail unless ``app`` runs the consumer itself: its composition root wires it."""
    names = {getattr(worker, "name", None) for worker in getattr(app.state, "workers", [])}
    assert consumer_name in names, f"{consumer_name} is not wired into the app (it runs {sorted(n for n in names if n)})"


async def eventually(check: Callable[[], Awaitable[Any]], *, timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll ``check`` until it returns a truthy value; raise AssertionError at the deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while True:
        last = await check()
        if last:
            return last
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value: {last!r})")
        await asyncio.sleep(interval)
