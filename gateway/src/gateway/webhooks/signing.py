"""Webhook signatures: ``X-Pilar-Signature: t=<unix seconds>,v1=<hex>``.

``v1`` is HMAC-SHA256 with the subscription's secret over ``<t>.<raw body>``. A receiver
recomputes it over the exact bytes it received, compares in constant time, and refuses a
``t`` far from its clock (replays). ``verify`` below is the reference implementation.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

HEADER = "X-Pilar-Signature"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def signature(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, body: bytes, header: str, *, tolerance_s: int = 300, now: float | None = None) -> bool:
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = signature(secret, body, timestamp).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, candidate) for candidate in parts.get("v1", []))
