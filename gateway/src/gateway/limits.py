"""Per-client rate limits (token buckets) and request body size limits.

Buckets live in the gateway process: with N replicas behind a load balancer a client gets
up to N times its rate. That is the usual trade for not calling a shared store per request.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator

from pilar_kernel.problems import Problem


_MAX_BUCKETS = 100_000


class RateLimited(Problem):
    status, type, title = 429, "rate-limited", "Too many requests"


class BodyTooLarge(Problem):
    status, type, title = 413, "body-too-large", "Request body too large"


class TokenBucket:
    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.tokens = float(self.burst)
        self.stamp = now

    def take(self, now: float) -> float:
        """Take one token; returns 0 when allowed, else the seconds until one is available."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate if self.rate > 0 else math.inf


class RateLimiter:
    def __init__(self, clock=time.monotonic) -> None:
        self._buckets: dict[str, TokenBucket] = {}
        self._clock = clock

    def check(self, key: str, rate: float, burst: int) -> None:
        """Raise 429 with Retry-After when ``key`` has used up its bucket."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None and len(self._buckets) >= _MAX_BUCKETS:
            self._buckets.clear()  # a flood of new keys: forget all rather than grow without bound
        if bucket is None or bucket.rate != rate or bucket.burst != max(1, burst):
            bucket = self._buckets[key] = TokenBucket(rate, burst, now)
        wait = bucket.take(now)
        if wait:
            retry_after = max(1, math.ceil(wait)) if math.isfinite(wait) else 3600
            raise RateLimited(
                f"rate limit of {rate:g} requests/s (burst {burst}) exceeded",
                headers={"Retry-After": str(retry_after)},
                retry_after_s=retry_after,
            )


def check_declared_length(declared: str | None, limit: int) -> int | None:
    """The Content-Length as a number, refusing one above ``limit`` before reading anything."""
    if declared is None:
        return None
    try:
        length = int(declared)
    except ValueError:
        raise Problem("Content-Length is not a number", status=400, type="bad-content-length", title="Bad Content-Length") from None
    if length > limit:
        raise BodyTooLarge(f"the body is {length} bytes; the limit here is {limit}", limit_bytes=limit)
    return length


class LimitedBody:
    """Streams a request body on, counting; stops with ``exceeded`` set past the limit."""

    def __init__(self, source: AsyncIterator[bytes], limit: int) -> None:
        self._source = source
        self.limit = limit
        self.received = 0
        self.exceeded = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._source:
            self.received += len(chunk)
            if self.received > self.limit:
                self.exceeded = True
                raise BodyTooLarge(f"the body is over the limit of {self.limit} bytes", limit_bytes=self.limit)
            if chunk:
                yield chunk
