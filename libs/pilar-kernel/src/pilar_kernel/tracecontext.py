"""W3C trace context (``traceparent``) carried through HTTP requests and Kafka headers.

We do not run a tracing SDK; we keep the trace id stable across hops so that logs of one
business flow (HTTP request -> outbox -> Kafka -> consumer -> its own events) share it.
"""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")

current_traceparent: ContextVar[str | None] = ContextVar("traceparent", default=None)


def new_traceparent(trace_id: str | None = None) -> str:
    return f"00-{trace_id or secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def parse_trace_id(traceparent: str | None) -> str | None:
    if not traceparent:
        return None
    m = _TRACEPARENT.match(traceparent.strip().lower())
    if not m or m.group(1) == "0" * 32:
        return None
    return m.group(1)


def child_traceparent(parent: str | None = None) -> str:
    """A new span in the current (or given) trace, or a new trace when there is none."""
    return new_traceparent(parse_trace_id(parent or current_traceparent.get()))
