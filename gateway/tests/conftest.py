"""Fixtures of the gateway's tests: real HTTP upstreams on 127.0.0.1, a migrated gateway
database, and the gateway app running in-process with helpers to make clients and tokens."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

GATEWAY_DIR = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """A uvicorn server for ``app`` in a thread with its own event loop, on a free port."""

    def __init__(self, app: FastAPI, port: int | None = None, **config_options: Any) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off", **config_options)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def serve():
    """Factory: start a FastAPI app on 127.0.0.1; every server is stopped at the end."""
    servers: list[ServerThread] = []

    def start(app: FastAPI, port: int | None = None, **config_options: Any) -> ServerThread:
        server = ServerThread(app, port, **config_options).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def migrate(url: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pilar_kernel.prestart"],
        cwd=GATEWAY_DIR,
        env={**os.environ, "PILAR_DATABASE_URL": url},
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="session")
def gateway_database(stack, new_database) -> Callable[[], str]:
    """Factory: a fresh gateway database at the latest migration; returns its URL.

    The migrations run once, into a template; each database is a copy of it (``CREATE
    DATABASE ... TEMPLATE``), which takes a fraction of a second instead of a process start.
    """
    import asyncpg

    from pilar_devstack.processes import run_coroutine

    template_url = new_database("gwtemplate")
    migrate(template_url)
    template = template_url.rsplit("/", 1)[1]
    owner = template_url.split("://", 1)[1].split(":", 1)[0]

    async def clone(name: str) -> None:
        conn = await asyncpg.connect(stack.admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}" OWNER "{owner}" TEMPLATE "{template}"')
        finally:
            await conn.close()

    def make() -> str:
        name = f"gateway_{uuid.uuid4().hex[:8]}"
        run_coroutine(clone(name))
        return stack.database_url(name)

    return make


def settings(**overrides: Any):
    from gateway.settings import Settings

    base: dict[str, Any] = {
        "env": "test",
        "consumers_enabled": False,
        "directory_refresh_s": 0.5,
        "key_activation_delay_s": 0,
        "upstream_timeout_s": 1.0,
        "upstream_connect_timeout_s": 0.5,
        "breaker_failures": 3,
        "breaker_open_s": 1.0,
        "rate_limit_per_s": 1000,
        "rate_limit_burst": 1000,
        "seed_demo_clients": False,
        "webhook_poll_s": 0.1,
    }
    base.update(overrides)
    return Settings(**base)


class GatewayHarness:
    """The running gateway app, an in-process client, and helpers for clients and tokens."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        self.app = app
        self.http = client

    @property
    def gateway(self):
        return self.app.state.gateway

    async def add_client(self, client_id: str, scopes: list[str], *, region: str | None = None,
                         rate: float | None = None, burst: int | None = None) -> str:
        from gateway import clients

        async with self.app.state.session_factory() as session, session.begin():
            row, secret = await clients.create(session, client_id=client_id, name=client_id, scopes=scopes, region=region,
                                               rate_per_s=rate, rate_burst=burst)
        self.gateway.directory.put(row)
        return secret

    async def token(self, client_id: str, secret: str, scope: str | None = None) -> str:
        form = {"grant_type": "client_credentials"}
        if scope is not None:
            form["scope"] = scope
        response = await self.http.post("/oauth/token", data=form, auth=(client_id, secret))
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    async def bearer(self, client_id: str, scopes: list[str], **kw: Any) -> dict[str, str]:
        secret = await self.add_client(client_id, scopes, **kw)
        return {"Authorization": f"Bearer {await self.token(client_id, secret)}"}


@pytest.fixture(scope="session")
def run_gateway(gateway_database, kafka_bootstrap):
    """Async context factory: ``async with run_gateway(**settings) as gw`` runs a fresh gateway."""
    from gateway.app import create_app
    from pilar_kernel.testing import running_app

    @asynccontextmanager
    async def run(database_url: str | None = None, **overrides: Any):
        url = database_url or gateway_database()
        app = create_app(settings(database_url=url, kafka_bootstrap=kafka_bootstrap, **overrides))
        async with running_app(app) as client:
            yield GatewayHarness(app, client)

    return run


async def until(check, timeout: float = 15.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s (last: {value!r})")
        await asyncio.sleep(interval)


@pytest.fixture(scope="session")
def eventually():
    return until
