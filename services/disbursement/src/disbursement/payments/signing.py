"""HMAC-SHA256 signatures on the bank channel, both ways (our batches out, its callbacks in).

The signature covers the timestamp and the raw body exactly as sent:
``hex(HMAC-SHA256(secret, "<unix seconds>." + body))``, carried as ``X-Signature:
sha256=<hex>`` beside ``X-Signature-Timestamp: <unix seconds>``. Signing the timestamp
lets the receiver refuse an old message replayed later; checking it against the raw bytes
(never a re-serialised copy) means any change to the body breaks the signature.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

from pilar_kernel.problems import Problem

SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Signature-Timestamp"
SCHEME = "sha256="


class SignatureProblem(Problem):
    status, type, title = 401, "bad-signature", "Signature not valid"


class StaleSignature(Problem):
    status, type, title = 401, "stale-signature", "Signed message too old or from the future"


def sign(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The two headers that sign ``body`` now (or at ``timestamp``)."""
    ts = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {SIGNATURE_HEADER: SCHEME + digest, TIMESTAMP_HEADER: str(ts)}


def verify(secret: str, body: bytes, headers: Mapping[str, str], *, tolerance_s: int, now: float | None = None) -> int:
    """Check the signature of ``body``; returns its timestamp or raises a 401 problem saying why."""
    raw_ts = headers.get(TIMESTAMP_HEADER)
    signature = headers.get(SIGNATURE_HEADER)
    if not raw_ts or not signature:
        raise SignatureProblem(f"send the {SIGNATURE_HEADER} and {TIMESTAMP_HEADER} headers")
    try:
        ts = int(raw_ts)
    except ValueError:
        raise SignatureProblem(f"{TIMESTAMP_HEADER} must be unix seconds") from None
    if not signature.startswith(SCHEME):
        raise SignatureProblem(f"{SIGNATURE_HEADER} must be {SCHEME}<hex HMAC-SHA256>")
    expected = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    # Constant-time comparison, and the signature before the clock: a forged message learns nothing.
    if not hmac.compare_digest(expected, signature[len(SCHEME):].strip().lower()):
        raise SignatureProblem("the signature does not match the body and timestamp")
    skew = (time.time() if now is None else now) - ts
    if abs(skew) > tolerance_s:
        raise StaleSignature(f"the message was signed {int(skew)} s from now; only ±{tolerance_s} s is accepted (a replay?)")
    return ts


def digest(headers: Mapping[str, str]) -> str:
    """A key of one signed message, to recognise it when it is delivered again."""
    return hashlib.sha256(f"{headers.get(TIMESTAMP_HEADER)}:{headers.get(SIGNATURE_HEADER)}".encode()).hexdigest()
