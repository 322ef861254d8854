"""Outgoing HTTP: the one way our processes build httpx clients.

A pooled keep-alive connection can be closed by the server while it sits idle in the pool
(uvicorn closes idle connections after ``--timeout-keep-alive``, 5 s by default). A client
that reuses it at that moment sees "Server disconnected without sending a response" (or a
reset while writing), although the server never saw the request. Two things prevent that:

* **Idle expiry below the server's keep-alive.** Our servers keep idle connections
  ``SERVER_KEEP_ALIVE_S`` (65 s; devstack, compose and the image start uvicorn with
  ``--timeout-keep-alive 65``); our clients drop idle connections after
  ``KEEPALIVE_EXPIRY_S`` (30 s). Clients of servers that are not ours (the bank, agencies'
  webhook receivers) use ``EXTERNAL_KEEPALIVE_EXPIRY_S`` (4 s, below the common 5 s).
* **One retry of a request that provably never reached the server**, for any method,
  POST included: a connection that could not be made, or a *reused* idle connection that
  the server had closed, so that it ended before a single response byte (httpcore's
  "Server disconnected without sending a response", aiohttp's ``ServerDisconnectedError``)
  or failed while the request was being written (``ConnectionResetError``,
  ``BrokenPipeError``). Nothing else is retried here: a timeout, a reset on a fresh
  connection or after response bytes may mean the server acted on the request.
  Only requests whose body is in memory can be sent again.

``async_client(...)`` / ``sync_client(...)`` give ready clients; ``RetryUnsent`` wraps any
httpx transport (the gateway wraps its aiohttp-backed one, whose sessions get
``aiohttp_trace_config()`` so that reuse is known there too).
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

log = structlog.get_logger("pilar.http")

# uvicorn --timeout-keep-alive of every server of ours (devstack, compose, image, banksim).
SERVER_KEEP_ALIVE_S = 65
# Idle pooled connections to our own servers are dropped after this: safely below the above.
KEEPALIVE_EXPIRY_S = 30.0
# Idle pooled connections to servers that are not ours: below the common 5 s keep-alive.
EXTERNAL_KEEPALIVE_EXPIRY_S = 4.0
UNSENT_MESSAGE = "without sending a response"


@dataclass
class Attempt:
    """What one attempt's trace showed: was a new connection made, did a write fail."""

    connected: bool = False  # a new connection was opened (it was not a reused one)
    reused: bool = False  # a pooled connection was taken (aiohttp reports this explicitly)
    write_failed: bool = False  # writing the request failed (httpcore reports this)
    events: list[str] = field(default_factory=list)


_attempt: contextvars.ContextVar[Attempt | None] = contextvars.ContextVar("pilar_http_attempt", default=None)


def _chain(exc: BaseException) -> list[BaseException]:
    out, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def never_reached(exc: BaseException, attempt: Attempt) -> bool:
    """True when the failed attempt provably never reached the server's application."""
    chain = _chain(exc)
    try:  # the aiohttp-backed transport raises httpx errors caused by aiohttp's
        import aiohttp
    except ImportError:  # pragma: no cover - aiohttp is optional
        aiohttp = None  # type: ignore[assignment]
    if aiohttp is not None:
        for err in chain:
            if isinstance(err, aiohttp.ClientConnectorError):
                return True  # the connection could not be made
            if isinstance(err, aiohttp.ServerDisconnectedError):
                # A string message: closed before any part of a response could be parsed.
                return attempt.reused and isinstance(err.message, str)
            if isinstance(err, aiohttp.ClientConnectionResetError):
                return attempt.reused  # raised only while writing the request
            if isinstance(err, aiohttp.ClientError):
                return False
    head = chain[0]
    if isinstance(head, httpx.ConnectError):
        return True
    # httpx's own transport: the attempt's trace shows whether a pooled connection was used
    # and that it broke while waiting for the response's first line.
    if attempt.connected or "http11.receive_response_headers.failed" not in attempt.events:
        return False
    if isinstance(head, httpx.RemoteProtocolError):
        return UNSENT_MESSAGE in str(head)
    if isinstance(head, (httpx.WriteError, httpx.ReadError)):
        # httpcore swallows a failed write and reads the answer, and anyio reports a broken
        # pipe on that read: either way the request could not be written.
        return attempt.write_failed or any(isinstance(e, BrokenPipeError) for e in chain)
    return False


def _replayable(request: httpx.Request) -> bool:
    return isinstance(request.stream, httpx.ByteStream)


def _tracer(attempt: Attempt, outer: Any):
    def trace(name: str, info: dict) -> Any:
        attempt.events.append(name)
        if name == "connection.connect_tcp.started":
            attempt.connected = True
        elif name in ("http11.send_request_headers.failed", "http11.send_request_body.failed"):
            attempt.write_failed = True
        if outer is not None:
            return outer(name, info)
        return None

    return trace


def _async_tracer(attempt: Attempt, outer: Any):
    sync = _tracer(attempt, None)

    async def trace(name: str, info: dict) -> None:
        sync(name, info)
        if outer is not None:
            await outer(name, info)

    return trace


def _log_retry(request: httpx.Request, exc: BaseException) -> None:
    log.info("request never reached the server; sending it once more",
             method=request.method, host=request.url.host, port=request.url.port, error=type(exc).__name__)


class RetryUnsent(httpx.AsyncBaseTransport):
    """An async transport that sends a request once more when it provably never got there."""

    def __init__(self, inner: httpx.AsyncBaseTransport, retries: int = 1) -> None:
        self.inner = inner
        self.retries = retries

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        outer = request.extensions.get("trace")
        for attempt_no in range(self.retries + 1):
            attempt = Attempt()
            request.extensions = {**request.extensions, "trace": _async_tracer(attempt, outer)}
            token = _attempt.set(attempt)
            try:
                return await self.inner.handle_async_request(request)
            except Exception as exc:
                if attempt_no >= self.retries or not _replayable(request) or not never_reached(exc, attempt):
                    raise
                _log_retry(request, exc)
            finally:
                _attempt.reset(token)
        raise AssertionError("not reached")  # pragma: no cover

    async def aclose(self) -> None:
        await self.inner.aclose()


class SyncRetryUnsent(httpx.BaseTransport):
    """The same for synchronous clients."""

    def __init__(self, inner: httpx.BaseTransport, retries: int = 1) -> None:
        self.inner = inner
        self.retries = retries

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        outer = request.extensions.get("trace")
        for attempt_no in range(self.retries + 1):
            attempt = Attempt()
            request.extensions = {**request.extensions, "trace": _tracer(attempt, outer)}
            try:
                return self.inner.handle_request(request)
            except Exception as exc:
                if attempt_no >= self.retries or not _replayable(request) or not never_reached(exc, attempt):
                    raise
                _log_retry(request, exc)
        raise AssertionError("not reached")  # pragma: no cover

    def close(self) -> None:
        self.inner.close()


def limits(max_connections: int = 100, keepalive_expiry: float = KEEPALIVE_EXPIRY_S) -> httpx.Limits:
    return httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections, keepalive_expiry=keepalive_expiry)


def async_transport(*, max_connections: int = 100, keepalive_expiry: float = KEEPALIVE_EXPIRY_S, retries: int = 1) -> RetryUnsent:
    """httpx's own transport with our idle expiry, wrapped in ``RetryUnsent``."""
    return RetryUnsent(httpx.AsyncHTTPTransport(limits=limits(max_connections, keepalive_expiry)), retries)


def async_client(
    *,
    timeout: float | httpx.Timeout = 10.0,
    keepalive_expiry: float = KEEPALIVE_EXPIRY_S,
    max_connections: int = 100,
    retries: int = 1,
    **kwargs: Any,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for calls between our processes (or, with
    ``keepalive_expiry=EXTERNAL_KEEPALIVE_EXPIRY_S``, to servers that are not ours).

    Other keyword arguments go to ``httpx.AsyncClient`` (``base_url``, ``headers``,
    ``follow_redirects`` ...). ``trust_env`` is off unless asked for: a proxy from the
    environment must not sit between our own processes.
    """
    kwargs.setdefault("trust_env", False)
    transport = async_transport(max_connections=max_connections, keepalive_expiry=keepalive_expiry, retries=retries)
    return httpx.AsyncClient(timeout=timeout, transport=transport, **kwargs)


def sync_client(
    *,
    timeout: float | httpx.Timeout = 10.0,
    keepalive_expiry: float = KEEPALIVE_EXPIRY_S,
    max_connections: int = 10,
    retries: int = 1,
    **kwargs: Any,
) -> httpx.Client:
    """The synchronous twin of ``async_client``."""
    kwargs.setdefault("trust_env", False)
    inner = httpx.HTTPTransport(limits=limits(max_connections, keepalive_expiry))
    return httpx.Client(timeout=timeout, transport=SyncRetryUnsent(inner, retries), **kwargs)


def aiohttp_trace_config():
    """An ``aiohttp.TraceConfig`` that tells ``RetryUnsent`` whether aiohttp reused a pooled
    connection or opened one. Give it to the
    ``aiohttp.ClientSession`` under an ``httpx_aiohttp`` transport wrapped in ``RetryUnsent``.
    """
    import aiohttp

    config = aiohttp.TraceConfig()

    async def reused(_session, _ctx, _params) -> None:
        attempt = _attempt.get()
        if attempt is not None:
            attempt.reused, attempt.connected = True, False

    async def created(_session, _ctx, _params) -> None:
        attempt = _attempt.get()
        if attempt is not None:
            attempt.reused, attempt.connected = False, True

    config.on_connection_reuseconn.append(reused)
    config.on_connection_create_end.append(created)
    return config
