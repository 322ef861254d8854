"""Routing: ``/v1/<service>/...`` to that service's ``/v1/...``.

Per upstream: one httpx transport (its own connection pool), a timeout, a circuit breaker.
Small bodies are buffered (and then idempotent methods may be retried); larger ones stream
through both ways. Hop-by-hop headers are dropped; the Authorization header goes on
unchanged, with the correlation id, ``traceparent`` and ``X-Forwarded-*``. An upstream that
is down, slow or failing gives a problem+json 502, 504 or 503, never a hang.

The transport is httpx's API over aiohttp (``httpx-aiohttp``) by default, chosen by the
benchmark in ``bench/gateway_proxy.py`` (``PILAR_PROXY_TRANSPORT=httpx`` switches back).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from types import SimpleNamespace

import aiohttp
import httpx
import structlog
from httpx_aiohttp import AiohttpTransport
from prometheus_client import Counter, Histogram
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from structlog.contextvars import bind_contextvars, get_contextvars

from pilar_kernel import http as pilar_http
from pilar_kernel.problems import NotFound, Problem, Unauthorized, problem_response
from pilar_kernel.tracecontext import current_traceparent

from .breaker import CircuitBreaker
from .limits import BodyTooLarge, LimitedBody, check_declared_length
from .settings import Settings

log = structlog.get_logger("gateway.proxy")

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer", b"trailers",
     b"transfer-encoding", b"upgrade"}
)
# The gateway sets these itself on the way in (host, length, tracing) or out (the kernel's
# middleware adds the correlation id and traceparent; the server adds date and server).
DROP_REQUEST = HOP_BY_HOP | {b"host", b"content-length", b"x-correlation-id", b"traceparent", b"x-forwarded-for",
                             b"x-forwarded-proto", b"x-forwarded-host"}
DROP_RESPONSE = HOP_BY_HOP | {b"x-correlation-id", b"traceparent", b"date", b"server"}
BUFFER_REQUEST_MAX = 64 * 1024
BUFFER_RESPONSE_MAX = 256 * 1024
RETRY_BACKOFF_S = 0.05

UPSTREAM_SECONDS = Histogram(
    "pilar_gateway_upstream_seconds", "Time to the upstream's response headers", ["upstream"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
UPSTREAM_ERRORS = Counter("pilar_gateway_upstream_errors_total", "Failed upstream attempts by kind", ["upstream", "kind"])
BREAKER_REFUSALS = Counter("pilar_gateway_breaker_refusals_total", "Requests refused by an open circuit", ["upstream"])


class UpstreamUnreachable(Problem):
    status, type, title = 502, "upstream-unreachable", "Upstream service unreachable"


class UpstreamTimeout(Problem):
    status, type, title = 504, "upstream-timeout", "Upstream service too slow"


class UpstreamUnavailable(Problem):
    status, type, title = 503, "upstream-unavailable", "Upstream service unavailable"


class MethodNotAllowed(Problem):
    status, type, title = 405, "method-not-allowed", "Method not allowed"


def allow_header(methods: set[str]) -> str:
    """The Allow header for exactly these methods, in a fixed order. (FastAPI's routes answer
    HEAD only where it is declared, so it is listed only then.)"""
    order = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]
    return ", ".join(sorted(methods, key=lambda m: (order.index(m) if m in order else len(order), m)))


def method_not_allowed(method: str, path: str, methods: set[str]) -> MethodNotAllowed:
    allow = allow_header(methods)
    return MethodNotAllowed(f"{method} is not an operation of {path}; it allows {allow}", headers={"Allow": allow}, allowed=allow.split(", "))


class RouteTable:
    """The paths a service's OpenAPI document declares and their methods, so the gateway can
    answer 405 (with the right Allow header) for a method the service does not declare,
    without calling it. Empty until the document is loaded (then everything is forwarded);
    a path that matches no template is forwarded too (the service answers its 404)."""

    _METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

    def __init__(self) -> None:
        self._routes: list[tuple[re.Pattern[str], frozenset[str]]] = []

    def load(self, doc: dict) -> None:
        routes = []
        for path, item in (doc.get("paths") or {}).items():
            if not isinstance(item, dict):
                continue
            methods = frozenset(m.upper() for m in item if m in self._METHODS)
            pattern = "".join(r"[^/]+" if part.startswith("{") else re.escape(part) for part in re.split(r"(\{[^}/]+\})", path))
            routes.append((re.compile(pattern + "$"), methods))
        self._routes = routes

    def methods_of(self, path: str) -> set[str] | None:
        """Every method declared for a template matching ``path``; None when none matches."""
        found: set[str] | None = None
        for pattern, methods in self._routes:
            if pattern.match(path):
                found = (found or set()) | methods
        return found

    def refuse(self, method: str, path: str, shown_path: str) -> MethodNotAllowed | None:
        methods = self.methods_of(path)
        if methods is None or method in methods:
            return None
        return method_not_allowed(method, shown_path, methods)


def make_transport(kind: str, max_connections: int) -> httpx.AsyncBaseTransport:
    """An httpx transport for one upstream: aiohttp's client under httpx's API, or httpx's own.

    The proxy sends through the transport itself, not an ``httpx.AsyncClient``: it needs
    none of the client's redirects, auth or cookie jar (a proxy must never keep one caller's
    cookies for the next), and skipping that machinery is measurably cheaper per request.

    Either way it is the kernel's (``pilar_kernel.http``): idle connections are dropped after
    ``KEEPALIVE_EXPIRY_S``, below the services' keep-alive, and a request that provably never
    reached the service (no connection; a pooled connection the service had just closed) is
    sent once more, whatever its method, so a POST is not failed by a stale connection.
    """
    if kind == "aiohttp":
        limits = pilar_http.limits(max_connections, pilar_http.KEEPALIVE_EXPIRY_S)

        def session() -> aiohttp.ClientSession:  # made lazily, inside the running loop
            return aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=max_connections, keepalive_timeout=pilar_http.KEEPALIVE_EXPIRY_S),
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("Accept-Encoding", "User-Agent"),
                auto_decompress=False,
                trace_configs=[pilar_http.aiohttp_trace_config()],  # tells RetryUnsent about reuse
            )

        return pilar_http.RetryUnsent(AiohttpTransport(limits=limits, client=session))
    return pilar_http.async_transport(max_connections=max_connections)


def failure_kind(exc: BaseException) -> str:
    """connect (nothing was sent), timeout, or protocol (the exchange broke midway).

    httpx-aiohttp maps aiohttp's errors loosely (a refused connection arrives as
    ConnectTimeout), so the original aiohttp error is looked at first.
    """
    for err in (exc.__cause__, exc.__context__, exc):
        if isinstance(err, aiohttp.ServerTimeoutError):
            return "timeout"
        if isinstance(err, aiohttp.ClientConnectorError):
            return "connect"
        if isinstance(err, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError)):
            return "protocol"
    if isinstance(exc, httpx.ConnectError):
        return "connect"
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        return "timeout"
    return "protocol"


class Upstream:
    def __init__(self, name: str, base_url: str, settings: Settings) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.settings = settings
        self.breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_open_s)
        total = settings.timeout_of(name)
        self.timeout = httpx.Timeout(total, connect=min(settings.upstream_connect_timeout_s, total)).as_dict()
        self.deadline_s = total + min(settings.upstream_connect_timeout_s, total)  # headers must come by then
        self.transport = make_transport(settings.proxy_transport, settings.upstream_max_connections)
        self._prefix_len = len("/v1/") + len(name)
        self.routes = RouteTable()

    async def aclose(self) -> None:
        await self.transport.aclose()

    def _refuse(self, last_kind: str | None = None) -> Problem:
        if last_kind is not None:
            return self._problem(last_kind)
        BREAKER_REFUSALS.labels(self.name).inc()
        wait = max(1, round(self.breaker.retry_after() + 0.5))
        return UpstreamUnavailable(
            f"{self.name} is failing; the gateway stopped calling it for a moment",
            headers={"Retry-After": str(wait)},
            upstream=self.name,
            retry_after_s=wait,
        )

    def _problem(self, kind: str) -> Problem:
        if kind == "timeout":
            return UpstreamTimeout(f"{self.name} did not answer within {self.timeout['read']:g} s", upstream=self.name)
        if kind == "connect":
            return UpstreamUnreachable(f"{self.name} cannot be reached", upstream=self.name)
        return UpstreamUnreachable(f"{self.name} broke off the exchange", upstream=self.name)

    async def send(self, method: str, url: str, headers: list[tuple[bytes, bytes]], content, *, retries: int) -> httpx.Response:
        """Send with the breaker and retries; returns a streaming response (headers read)."""
        last_kind: str | None = None
        for attempt in range(retries + 1):
            if not self.breaker.allow():
                raise self._refuse(last_kind)
            request = httpx.Request(method, url, headers=headers, content=content, extensions={"timeout": self.timeout})
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                async with asyncio.timeout(self.deadline_s):
                    response = await self.transport.handle_async_request(request)
            except BodyTooLarge:
                self.breaker.release()
                raise
            except asyncio.CancelledError:
                self.breaker.release()
                raise
            except Exception as exc:
                if isinstance(content, LimitedBody) and content.exceeded:
                    self.breaker.release()
                    raise BodyTooLarge(f"the body is over the limit of {content.limit} bytes", limit_bytes=content.limit) from None
                last_kind = failure_kind(exc)
                UPSTREAM_ERRORS.labels(self.name, last_kind).inc()
                self.breaker.failure()
                log.warning("upstream attempt failed", upstream=self.name, kind=last_kind, attempt=attempt + 1, error=type(exc).__name__)
                if attempt < retries and last_kind != "timeout":  # a slow upstream may still be working on it
                    await asyncio.sleep(RETRY_BACKOFF_S * (2**attempt))
                    continue
                raise self._problem(last_kind) from None
            UPSTREAM_SECONDS.labels(self.name).observe(loop.time() - started)
            if response.status_code in (502, 503, 504):
                self.breaker.failure()
            else:
                self.breaker.success()
            return response
        raise self._problem(last_kind or "protocol")  # not reached

    async def forward(self, request: Request) -> Response:
        scope = request.scope
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        query: bytes = scope.get("query_string") or b""
        url = self.base_url + "/v1" + raw_path[self._prefix_len :].decode("latin-1")
        if query:
            url += "?" + query.decode("latin-1")

        # One pass over the raw headers: keep the end-to-end ones, note the few we act on.
        headers: list[tuple[bytes, bytes]] = []
        noted: dict[bytes, bytes] = {}
        for key, value in scope["headers"]:
            if key in DROP_REQUEST:
                noted[key] = value
            else:
                headers.append((key, value))
        if b"connection" in noted:  # headers named in Connection are hop-by-hop too
            named = {t.strip() for t in noted[b"connection"].lower().split(b",")}
            headers = [(k, v) for k, v in headers if k not in named]
        headers.extend(_forwarding_headers(scope, noted))

        limit = self.settings.body_limit_of(self.name)
        declared = check_declared_length(noted[b"content-length"].decode("latin-1") if b"content-length" in noted else None, limit)
        method = scope["method"]
        content: bytes | LimitedBody
        if declared is None and b"transfer-encoding" not in noted:
            content = b""
        elif declared is not None and declared <= BUFFER_REQUEST_MAX:
            content = await request.body()
        else:
            content = LimitedBody(request.stream(), limit)
            if declared is not None:
                headers.append((b"content-length", str(declared).encode()))
        retries = self.settings.upstream_retries if method in IDEMPOTENT and isinstance(content, bytes) else 0

        response = await self.send(method, url, headers, content, retries=retries)
        out_headers = [(k, v) for k, v in response.headers.raw if k.lower() not in DROP_RESPONSE]
        if "connection" in response.headers:  # and whatever the upstream's Connection names
            named = {t.strip().encode() for t in response.headers["connection"].lower().split(",")}
            out_headers = [(k, v) for k, v in out_headers if k.lower() not in named]
        length = response.headers.get("content-length")
        if method == "HEAD" or response.status_code in (204, 304) or (length is not None and int(length) <= BUFFER_RESPONSE_MAX):
            try:  # a stalled body is caught by the transport's read timeout
                body = b"".join([chunk async for chunk in response.aiter_raw()]) if method != "HEAD" else b""
            except Exception as exc:
                raise self._problem(failure_kind(exc)) from None
            finally:
                await response.aclose()
            result = Response(body, status_code=response.status_code)
            result.raw_headers = out_headers
            return result
        streamed = StreamingResponse(_relay(response), status_code=response.status_code)
        streamed.raw_headers = out_headers
        return streamed


async def _relay(response: httpx.Response):
    """The upstream body, chunk by chunk; the upstream connection is released however it ends."""
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    finally:
        await response.aclose()


def _forwarding_headers(scope: Scope, noted: dict[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    """Correlation id and traceparent of this hop, and X-Forwarded-For/-Proto/-Host."""
    out = []
    correlation_id = get_contextvars().get("correlation_id")
    if correlation_id:
        out.append((b"x-correlation-id", correlation_id.encode()))
    traceparent = current_traceparent.get()
    if traceparent:
        out.append((b"traceparent", traceparent.encode()))
    peer = (scope.get("client") or ("",))[0].encode("latin-1")
    earlier = noted.get(b"x-forwarded-for")
    forwarded_for = earlier + b", " + peer if earlier else peer
    if forwarded_for:
        out.append((b"x-forwarded-for", forwarded_for))
    out.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
    if b"host" in noted:
        out.append((b"x-forwarded-host", noted[b"host"]))
    return out


class UpstreamPool:
    def __init__(self, urls: Mapping[str, str], settings: Settings) -> None:
        self.upstreams = {name: Upstream(name, url, settings) for name, url in urls.items()}

    def get(self, name: str) -> Upstream | None:
        return self.upstreams.get(name)

    def __iter__(self):
        return iter(self.upstreams.values())

    async def aclose(self) -> None:
        await asyncio.gather(*(u.aclose() for u in self.upstreams.values()), return_exceptions=True)


def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send a bearer token in the Authorization header", headers={"WWW-Authenticate": 'Bearer realm="pilar"'})
    return token.strip()


async def _proxy(request: Request, gateway, upstream: Upstream) -> Response:
    path = request.scope["path"]
    refused = upstream.routes.refuse(request.scope["method"], "/v1" + path[upstream._prefix_len :], path)
    if refused is not None:  # routing before authentication, as in the services
        raise refused
    try:
        principal = await gateway.gatekeeper.verify(bearer_token(request))
    except Unauthorized as exc:
        exc.headers = {"WWW-Authenticate": 'Bearer realm="pilar", error="invalid_token"'}
        raise
    gateway.gatekeeper.require_service(principal, upstream.name)
    bind_contextvars(client_id=principal.subject, upstream=upstream.name)
    return await upstream.forward(request)


async def proxy_endpoint(request: Request) -> Response:
    """The catch-all route ``/v1/{service}/{path:path}`` (after the gateway's own routes).

    Known services are normally served by ``ProxyShortcut`` before routing; this route
    answers the rest: a path of the gateway's own with a method it does not have (405 with
    every method of that path in Allow), or an unknown service name (404 listing the known).
    """
    gateway = request.app.state.gateway
    upstream = gateway.upstreams.get(request.path_params["service"])
    if upstream is None:
        own = own_routes(request.app).methods_of(request.scope["path"])
        if own:
            raise method_not_allowed(request.scope["method"], request.scope["path"], own)
        names = ", ".join(sorted(gateway.upstreams.upstreams))
        raise NotFound(f"no route /v1/{request.path_params['service']}/...; the services are {names}")
    return await _proxy(request, gateway, upstream)


def own_routes(app) -> RouteTable:
    """The gateway's own routes (every method of every path, the catch-all aside), built once."""
    table = getattr(app.state, "own_routes", None)
    if table is None:
        from fastapi.routing import iter_route_contexts

        paths: dict[str, dict[str, dict]] = {}
        for context in iter_route_contexts(app.routes):
            if context.original_route.endpoint is proxy_endpoint:
                continue
            path = re.sub(r"\{([^}:]+):path\}", r"{\1}", context.path_format)
            for method in context.methods or ():
                paths.setdefault(path, {})[method.lower()] = {}
        table = RouteTable()
        table.load({"paths": paths})
        app.state.own_routes = table
    return table


class ProxyShortcut:
    """ASGI middleware, innermost: serves ``/v1/<known service>/...`` without going through
    the router's ~30 routes and their dependency machinery (a measured saving per request).

    It runs inside the kernel's request middleware (correlation id, access log, metrics), so
    it names the proxy route in the scope for the log, and renders problems itself (it is
    outside the exception middleware that does that for routes).
    """

    def __init__(self, app: ASGIApp, route_path: str) -> None:
        self.app = app
        self.route = SimpleNamespace(path=route_path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith("/v1/"):
            name, slash, _ = path[4:].partition("/")
            gateway = getattr(scope["app"].state, "gateway", None)
            upstream = gateway.upstreams.get(name) if slash and gateway is not None else None
            if upstream is not None:
                scope["route"] = self.route
                request = Request(scope, receive)
                try:
                    response = await _proxy(request, gateway, upstream)
                except Problem as exc:
                    response = problem_response(exc, request)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
