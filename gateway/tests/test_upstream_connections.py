"""The proxy's upstream connections (issue 12, item 9): a POST through the gateway got a 502
within 2 ms and never reached the service, because the pooled connection had been closed by
the service (uvicorn's keep-alive) just as the gateway reused it.

The upstream here is uvicorn with a 1 s keep-alive. The gateway's event loop is blocked past
it (``time.sleep``), so it has not yet seen the service close the idle connection when the
next request takes it from the pool: the race, made certain. Needs no stack.
"""

from __future__ import annotations

import time

import httpx
import pytest
from fastapi import FastAPI, Request

from gateway.proxy import UpstreamUnreachable, Upstream, make_transport

from .conftest import settings

KEEP_ALIVE_S = 1.0


class Counter:
    posts = 0


def counting_app(counter: Counter) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/ping")
    async def ping() -> dict:
        return {"ok": True}

    @app.post("/v1/rounds")
    async def create(request: Request) -> dict:
        await request.body()
        counter.posts += 1
        return {"posts": counter.posts}

    return app


@pytest.fixture(scope="module")
def upstream(serve):
    counter = Counter()
    server = serve(counting_app(counter), timeout_keep_alive=KEEP_ALIVE_S)
    return server, counter


def idle_past_keep_alive() -> None:
    time.sleep(KEEP_ALIVE_S + 0.6)  # blocking: the loop does not notice the close in time


async def _post(upstream: Upstream, url: str) -> httpx.Response:
    response = await upstream.send("POST", url + "/v1/rounds", [(b"content-type", b"application/json")], b"{}", retries=0)
    await response.aread()
    await response.aclose()
    return response


@pytest.mark.parametrize("kind", ["aiohttp", "httpx"])
async def test_post_after_the_upstream_closed_the_idle_connection(upstream, kind):
    server, counter = upstream
    up = Upstream("disbursement", server.url, settings(proxy_transport=kind, upstream_timeout_s=5.0))
    try:
        first = await up.send("GET", server.url + "/v1/ping", [], b"", retries=0)
        await first.aread()
        await first.aclose()
        for _ in range(3):
            idle_past_keep_alive()
            before = counter.posts
            response = await _post(up, server.url)  # POST: never retried by the proxy itself
            assert response.status_code == 200
            assert counter.posts == before + 1, "applied exactly once"
    finally:
        await up.aclose()


async def test_without_the_kernel_transport_the_post_fails(upstream):
    """The reproduction: the same race with a bare aiohttp-backed transport gives the 502."""
    import aiohttp
    from httpx_aiohttp import AiohttpTransport

    server, counter = upstream
    up = Upstream("disbursement", server.url, settings(upstream_timeout_s=5.0))
    up.transport = AiohttpTransport(client=lambda: aiohttp.ClientSession())
    try:
        first = await up.send("GET", server.url + "/v1/ping", [], b"", retries=0)
        await first.aread()
        await first.aclose()
        idle_past_keep_alive()
        before = counter.posts
        with pytest.raises(UpstreamUnreachable):
            await _post(up, server.url)
        assert counter.posts == before  # it never reached the service
    finally:
        await up.aclose()


async def test_pools_expire_idle_connections_below_the_services_keep_alive():
    from pilar_kernel.http import KEEPALIVE_EXPIRY_S, SERVER_KEEP_ALIVE_S

    session = make_transport("aiohttp", 8).inner.client()
    try:
        assert session.connector._keepalive_timeout == KEEPALIVE_EXPIRY_S < SERVER_KEEP_ALIVE_S
    finally:
        await session.close()
