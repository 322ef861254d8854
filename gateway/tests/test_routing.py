"""Routing through the gateway to real HTTP upstreams on 127.0.0.1: headers and bodies both
ways, coarse scopes, an upstream that is down or slow, the circuit breaker, retries, rate
limits and body limits."""

from __future__ import annotations

import asyncio
import hashlib
import time

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse

from gateway.proxy import UPSTREAM_ERRORS

from .conftest import free_port

pytestmark = pytest.mark.stack


def upstream_app() -> FastAPI:
    app = FastAPI()

    @app.api_route("/v1/echo/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    async def echo(request: Request, rest: str) -> dict:
        body = await request.body()
        return {
            "method": request.method,
            "path": request.scope["raw_path"].decode(),  # as sent, before decoding
            "query": request.url.query,
            "headers": dict(request.headers),
            "body_bytes": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }

    @app.get("/v1/slow")
    async def slow(s: float) -> dict:
        await asyncio.sleep(s)
        return {"slept": s}

    @app.get("/v1/cookies")
    async def cookies() -> Response:
        response = Response(b"ok", media_type="text/plain")
        response.set_cookie("a", "1")
        response.set_cookie("b", "2")
        return response

    @app.get("/v1/big")
    async def big(n: int) -> StreamingResponse:
        async def chunks():
            for _ in range(n // 65536):
                yield b"x" * 65536

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    return app


@pytest.fixture(scope="module")
def upstream(serve):
    return serve(upstream_app())


@pytest.fixture
async def gw(run_gateway, upstream):
    closed = free_port()  # nothing listens there
    async with run_gateway(
        service_urls={"alpha": upstream.url, "slow": upstream.url, "down": f"http://127.0.0.1:{closed}"},
        max_body_bytes=100_000,
    ) as harness:
        harness.user = await harness.bearer("agency", ["alpha:read", "slow:read", "down:read"])
        yield harness


async def test_requests_and_responses_pass_through(gw):
    headers = {
        **gw.user,
        "X-Correlation-Id": "corr-123",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "Connection": "keep-alive, X-Drop-Me",
        "X-Drop-Me": "hop-by-hop by Connection",
        "Keep-Alive": "timeout=5",
        "Accept-Language": "id",
    }
    response = await gw.http.get("/v1/alpha/echo/persons/1%2F2?q=a+b&n=1", headers=headers)
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["path"] == "/v1/echo/persons/1%2F2" and seen["query"] == "q=a+b&n=1"
    forwarded = seen["headers"]
    assert forwarded["authorization"] == gw.user["Authorization"], "the token goes on unchanged"
    assert forwarded["x-correlation-id"] == "corr-123"
    assert forwarded["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")
    assert forwarded["traceparent"] != headers["traceparent"], "the gateway is a span of its own"
    assert forwarded["accept-language"] == "id" and forwarded["x-forwarded-proto"] == "http"
    assert "x-forwarded-for" in forwarded and forwarded["x-forwarded-host"] == "testserver"
    assert "x-drop-me" not in forwarded and "keep-alive" not in forwarded
    assert response.headers["x-correlation-id"] == "corr-123"
    assert len(response.headers.get_list("x-correlation-id")) == 1

    small = b'{"name": "Siti"}'
    posted = await gw.http.post("/v1/alpha/echo/persons", content=small, headers={**gw.user, "Content-Type": "application/json"})
    assert posted.json()["body_sha256"] == hashlib.sha256(small).hexdigest() and posted.json()["method"] == "POST"

    large = bytes(range(256)) * 300  # 76.8 KB: streamed, not buffered

    async def chunks():
        for i in range(0, len(large), 10_000):
            yield large[i : i + 10_000]

    for content in (large, chunks()):
        sent = await gw.http.put("/v1/alpha/echo/upload", content=content, headers=gw.user)
        assert sent.status_code == 200, sent.text
        assert sent.json()["body_bytes"] == len(large) and sent.json()["body_sha256"] == hashlib.sha256(large).hexdigest()

    cookies = await gw.http.get("/v1/alpha/cookies", headers=gw.user)
    assert sorted(c.split(";")[0] for c in cookies.headers.get_list("set-cookie")) == ["a=1", "b=2"]

    big = await gw.http.get("/v1/alpha/big?n=1048576", headers=gw.user)
    assert big.status_code == 200 and len(big.content) == 1048576


async def test_tokens_and_coarse_scopes(gw):
    missing = await gw.http.get("/v1/alpha/echo/x")
    assert missing.status_code == 401 and missing.headers["content-type"] == "application/problem+json"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    forged = await gw.http.get("/v1/alpha/echo/x", headers={"Authorization": "Bearer not.a.token"})
    assert forged.status_code == 401
    other = await gw.bearer("bank", ["disbursement:read"])
    refused = await gw.http.get("/v1/alpha/echo/x", headers=other)
    assert refused.status_code == 403 and refused.json()["required_scopes"] == ["alpha:*"]
    unknown = await gw.http.get("/v1/nowhere/x", headers=gw.user)
    assert unknown.status_code == 404 and "alpha" in unknown.json()["detail"]


async def test_upstream_down_gives_502_then_the_circuit_opens(gw):
    errors = UPSTREAM_ERRORS.labels("down", "connect")
    before = errors._value.get()
    started = time.monotonic()
    first = await gw.http.get("/v1/down/echo/x", headers=gw.user)
    assert first.status_code == 502 and first.json()["type"].endswith("/upstream-unreachable")
    assert first.headers["content-type"] == "application/problem+json"
    assert errors._value.get() - before == 3, "a GET is tried three times"
    assert time.monotonic() - started < 2

    opened = await gw.http.get("/v1/down/echo/x", headers=gw.user)
    assert opened.status_code == 503 and opened.json()["type"].endswith("/upstream-unavailable")
    assert int(opened.headers["retry-after"]) >= 1
    assert errors._value.get() - before == 3, "an open circuit does not call the upstream"
    assert (await gw.http.post("/v1/down/echo/x", headers=gw.user, json={})).status_code == 503

    await asyncio.sleep(1.1)  # breaker_open_s: one trial request goes through
    trial = await gw.http.post("/v1/down/echo/x", headers=gw.user, json={})
    assert trial.status_code == 502
    assert errors._value.get() - before == 4, "a POST is never retried"
    assert (await gw.http.get("/v1/down/echo/x", headers=gw.user)).status_code == 503, "the failed trial reopened it"

    health = (await gw.http.get("/v1/platform/health")).json()
    assert health["status"] == "degraded" and health["services"]["down"]["circuit"] == "open"
    assert health["services"]["alpha"]["status"] in ("up", "not ready")


async def test_slow_upstream_gives_504_without_hanging(gw):
    started = time.monotonic()
    slow = await gw.http.get("/v1/slow/slow?s=3", headers=gw.user)
    elapsed = time.monotonic() - started
    assert slow.status_code == 504 and slow.json()["type"].endswith("/upstream-timeout")
    assert elapsed < 2.5, f"took {elapsed:.1f} s with a 1 s timeout"
    fast = await gw.http.get("/v1/slow/slow?s=0", headers=gw.user)
    assert fast.status_code == 200


async def test_rate_limit_per_client(gw):
    limited = await gw.bearer("chatty", ["alpha:read"], rate=1, burst=3)
    codes = [(await gw.http.get("/v1/alpha/echo/x", headers=limited)).status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    refused = await gw.http.get("/v1/alpha/echo/x", headers=limited)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert refused.json()["type"].endswith("/rate-limited")
    assert (await gw.http.get("/v1/alpha/echo/x", headers=gw.user)).status_code == 200, "other clients are not affected"
    await asyncio.sleep(1.05)
    assert (await gw.http.get("/v1/alpha/echo/x", headers=limited)).status_code == 200


async def test_body_size_limit(gw):
    declared = await gw.http.post("/v1/alpha/echo/x", content=b"x" * 100_001, headers=gw.user)
    assert declared.status_code == 413 and declared.json()["limit_bytes"] == 100_000

    async def endless():
        for _ in range(30):
            yield b"y" * 10_000

    streamed = await gw.http.post("/v1/alpha/echo/x", content=endless(), headers=gw.user)
    assert streamed.status_code == 413
    assert (await gw.http.post("/v1/alpha/echo/x", content=b"x" * 100_000, headers=gw.user)).status_code == 200


async def test_httpx_transport_routes_the_same(run_gateway, upstream):
    """PILAR_PROXY_TRANSPORT=httpx (httpx's own transport) is a supported fallback."""
    async with run_gateway(proxy_transport="httpx", service_urls={"alpha": upstream.url, "down": f"http://127.0.0.1:{free_port()}"}) as gw:
        user = await gw.bearer("agency", ["alpha:read", "down:read"])
        got = await gw.http.get("/v1/alpha/echo/x?y=1", headers={**user, "X-Correlation-Id": "c-9"})
        assert got.status_code == 200 and got.json()["headers"]["x-correlation-id"] == "c-9"
        large = b"z" * 80_000
        sent = await gw.http.post("/v1/alpha/echo/x", content=large, headers=user)
        assert sent.json()["body_sha256"] == hashlib.sha256(large).hexdigest()
        down = await gw.http.get("/v1/down/echo/x", headers=user)
        assert down.status_code == 502 and down.json()["type"].endswith("/upstream-unreachable")
