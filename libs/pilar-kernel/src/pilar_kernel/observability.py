"""Structured JSON logs with a correlation id, and request metrics (plain ASGI middleware)."""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid

import structlog
from structlog.contextvars import bind_contextvars, clear_contextvars

from . import metrics
from .tracecontext import child_traceparent, current_traceparent, parse_trace_id

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def configure_logging(service: str, level: str = "INFO", *, json: bool = True) -> None:
    processors = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        structlog.processors.EventRenamer("message"),
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(),
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    bind_contextvars(service=service)
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


class RequestContextMiddleware:
    """Binds correlation id and trace id for the request; logs one access line; counts it."""

    def __init__(self, app, service: str) -> None:
        self.app = app
        self.service = service
        self.log = structlog.get_logger("pilar.access")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        incoming = headers.get("x-correlation-id", "")
        correlation_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        parent = headers.get("traceparent")
        traceparent = child_traceparent(parent if parse_trace_id(parent) else None)
        token = current_traceparent.set(traceparent)
        clear_contextvars()
        bind_contextvars(service=self.service, correlation_id=correlation_id, trace_id=parse_trace_id(traceparent))
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                extra = [(b"x-correlation-id", correlation_id.encode()), (b"traceparent", traceparent.encode())]
                message = {**message, "headers": list(message.get("headers", [])) + extra}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "")
            metrics.HTTP_REQUESTS.labels(self.service, method, route, str(status)).inc()
            metrics.HTTP_LATENCY.labels(self.service, method, route).observe(elapsed)
            if route not in ("/health", "/metrics", "/ready"):
                # The route template, never the query string: no tokens or personal data in logs.
                self.log.info("request", method=method, route=route, status=status, duration_ms=round(elapsed * 1000, 1))
            current_traceparent.reset(token)
