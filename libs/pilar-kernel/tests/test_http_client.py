"""The kernel's outgoing HTTP clients (``pilar_kernel.http``) against a real uvicorn server on
127.0.0.1 whose keep-alive is short (1 s): a client idle past it must still succeed, a POST
applied exactly once; a request that did reach the server is never sent twice.

The race of issue 12 (item 9): the server closes an idle connection just as the client takes
it from its pool. httpcore checks whether a pooled socket is readable before reusing it,
which catches a close that arrived earlier; the close that lands just after that check is
simulated by making the check see nothing (``stale_pool``). With that, a plain
``httpx.AsyncClient`` fails as ``make run`` did ("Server disconnected without sending a
response", or a broken pipe reported on the read, depending on timing).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpcore
import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request

from pilar_kernel import http as pilar_http

KEEP_ALIVE_S = 1.0
IDLE_S = KEEP_ALIVE_S + 0.6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Counter:
    def __init__(self) -> None:
        self.posts = 0


def _app(counter: Counter) -> FastAPI:
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict:
        return {"ok": True}

    @app.post("/count")
    async def count(request: Request) -> dict:
        await request.body()
        counter.posts += 1
        return {"posts": counter.posts}

    @app.post("/slow")
    async def slow() -> dict:
        counter.posts += 1
        await asyncio.sleep(1.0)
        return {"posts": counter.posts}

    return app


@pytest.fixture(scope="module")
def server():
    """uvicorn in a thread (its own loop), keep-alive 1 s, like our services but shorter."""
    counter = Counter()
    port = _free_port()
    config = uvicorn.Config(_app(counter), host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                            timeout_keep_alive=KEEP_ALIVE_S)
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline, "test server did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", counter
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def stale_pool(monkeypatch):
    """The server's close arrives just after the pool's liveness check (the race)."""

    def only_expiry(self) -> bool:
        return self._expire_at is not None and time.monotonic() > self._expire_at

    monkeypatch.setattr(httpcore._async.http11.AsyncHTTP11Connection, "has_expired", only_expiry)
    monkeypatch.setattr(httpcore._sync.http11.HTTP11Connection, "has_expired", only_expiry)


def test_client_expiry_is_below_our_servers_keep_alive():
    assert pilar_http.KEEPALIVE_EXPIRY_S < pilar_http.SERVER_KEEP_ALIVE_S / 2
    assert pilar_http.EXTERNAL_KEEPALIVE_EXPIRY_S < 5  # uvicorn's, Node's and Apache's default


async def test_the_race_breaks_a_plain_httpx_client(server, stale_pool):
    """The reproduction: without the kernel's transport the idle connection's request fails,
    and it never reached the server."""
    url, counter = server
    async with httpx.AsyncClient(timeout=5, limits=httpx.Limits(keepalive_expiry=30)) as plain:
        assert (await plain.get(url + "/ping")).status_code == 200
        before = counter.posts
        await asyncio.sleep(IDLE_S)
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):  # EOF or EPIPE, by timing
            await plain.post(url + "/count", content=b"x")
        assert counter.posts == before  # nobody made that request fail but the stale connection


async def test_idle_past_the_servers_keep_alive_then_get_and_post(server, stale_pool):
    url, counter = server
    # A pool that keeps connections longer than this server does (as if its keep-alive were
    # shorter than ours), so the stale connection is really reused.
    async with pilar_http.async_client(timeout=5, keepalive_expiry=30) as client:
        assert (await client.get(url + "/ping")).status_code == 200
        await asyncio.sleep(IDLE_S)
        before = counter.posts
        response = await client.post(url + "/count", json={"n": 1})
        assert response.status_code == 200
        assert counter.posts == before + 1  # applied exactly once
        await asyncio.sleep(IDLE_S)
        assert (await client.get(url + "/ping")).status_code == 200
        await asyncio.sleep(IDLE_S)
        assert (await client.post(url + "/count", content=b"again")).status_code == 200
        assert counter.posts == before + 2


async def test_idle_expiry_below_the_servers_keep_alive_opens_a_new_connection(server, stale_pool):
    """The other half: a pool whose expiry is below the server's keep-alive never offers the
    stale connection at all (no retry needed: retries=0)."""
    url, counter = server
    async with pilar_http.async_client(timeout=5, keepalive_expiry=KEEP_ALIVE_S / 2, retries=0) as client:
        assert (await client.get(url + "/ping")).status_code == 200
        await asyncio.sleep(IDLE_S)
        before = counter.posts
        assert (await client.post(url + "/count", content=b"x")).status_code == 200
        assert counter.posts == before + 1


def test_sync_client_idle_past_the_servers_keep_alive(server, stale_pool):
    url, counter = server
    with pilar_http.sync_client(timeout=5, keepalive_expiry=30) as client:
        assert client.get(url + "/ping").status_code == 200
        time.sleep(IDLE_S)
        before = counter.posts
        assert client.post(url + "/count", content=b"x").status_code == 200
        assert counter.posts == before + 1


async def test_a_refused_connection_is_retried_once_then_fails():
    port = _free_port()  # nothing listens there
    calls: list[str] = []

    async def trace(name: str, info: dict) -> None:
        if name == "connection.connect_tcp.started":
            calls.append(name)

    async with pilar_http.async_client(timeout=2) as client:
        with pytest.raises(httpx.ConnectError):
            await client.post(f"http://127.0.0.1:{port}/x", content=b"x", extensions={"trace": trace})
    assert len(calls) == 2


async def test_a_request_that_reached_the_server_is_not_retried(server):
    """A read timeout: the server got the POST and is working on it. It must not get it twice."""
    url, counter = server
    async with pilar_http.async_client(timeout=httpx.Timeout(0.3)) as client:
        before = counter.posts
        with pytest.raises(httpx.ReadTimeout):
            await client.post(url + "/slow", content=b"x")
        await asyncio.sleep(1.2)
        assert counter.posts == before + 1


async def test_a_fresh_connection_closed_after_the_request_is_not_retried():
    """A server that read the request and then dropped the connection without answering (a
    crash, say) may have acted on it: on a fresh connection that is not retried."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
        received.append(await reader.readexactly(length))
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        async with pilar_http.async_client(timeout=2) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.post(f"http://127.0.0.1:{port}/pay", content=b"once")
        assert received == [b"once"]
    finally:
        srv.close()
        await srv.wait_closed()


async def test_a_streamed_body_is_never_resent(server, stale_pool):
    """Only bodies in memory can be sent again; a streamed one fails as before."""
    url, counter = server

    async def body():
        yield b"chunk"

    async with pilar_http.async_client(timeout=5, keepalive_expiry=30) as client:
        assert (await client.get(url + "/ping")).status_code == 200
        await asyncio.sleep(IDLE_S)
        before = counter.posts
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await client.post(url + "/count", content=body())
        assert counter.posts == before


def test_every_client_of_ours_is_built_by_the_kernel():
    """Services, the gateway and the local stack build their httpx clients with
    ``pilar_kernel.http`` (not ``httpx.AsyncClient(...)`` directly), so none of them reuses a
    connection the server is closing. The bank simulator stands in for a bank, not for us."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    folders = [root / "gateway" / "src", root / "deploy" / "src", *(p / "src" for p in (root / "services").iterdir())]
    offenders = []
    for folder in folders:
        for path in folder.rglob("*.py"):
            text = path.read_text()
            for needle in ("httpx.AsyncClient(", "httpx.Client(", "AsyncHTTPTransport(", "httpx.HTTPTransport("):
                if needle in text:
                    offenders.append(f"{path.relative_to(root)}: {needle}")
    assert not offenders, offenders
