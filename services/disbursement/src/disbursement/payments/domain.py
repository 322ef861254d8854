"""Rules of payments, with no I/O: the states and how a channel's report moves them.

created → sent → succeeded | failed; failed → created again (a retry: same payment, next
attempt, perhaps another channel) or cancelled; created → cancelled; succeeded → returned.

Channels report per attempt. Reports can come twice and out of order, so :func:`judge` reads
each against the payment's current state: a repeat is a duplicate, a report about an attempt
that was superseded is stale, and a report that contradicts what is already recorded (paid
after a reported failure, say) is an anomaly kept for people to look at, never applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PAYMENT_STATUSES = ("created", "sent", "succeeded", "failed", "cancelled", "returned")
OUTCOMES = ("succeeded", "failed", "returned")
# Statuses whose amount counts against the round's ceiling (money out, in flight or may be retried).
LIVE = ("created", "sent", "succeeded", "failed", "returned")
UNSETTLED = ("created", "sent")
# A settlement by hand: proposed, then applied (or superseded: the payment was settled meanwhile) or rejected.
SETTLEMENT_STATUSES = ("proposed", "applied", "superseded", "rejected")

Outcome = Literal["succeeded", "failed", "returned"]


@dataclass(frozen=True)
class Verdict:
    kind: Literal["apply", "duplicate", "stale", "anomaly", "unknown_attempt"]
    steps: tuple[str, ...] = ()  # statuses to pass through, in order, when kind == "apply"
    note: str | None = None


def judge(status: str, attempt: int, reported_attempt: int, outcome: Outcome) -> Verdict:
    """What a report of ``outcome`` for ``reported_attempt`` does to a payment in ``status`` at ``attempt``."""
    if reported_attempt < 1 or reported_attempt > attempt:
        return Verdict("unknown_attempt", note=f"attempt {reported_attempt} was never sent (the payment is at attempt {attempt})")
    if reported_attempt < attempt:
        # Only a failed attempt is ever retried, so an old attempt can only have failed.
        if outcome == "failed":
            return Verdict("stale")
        return Verdict("anomaly", note=f"attempt {reported_attempt} reported {outcome} after attempt {attempt} was sent")
    if status == "sent":
        return Verdict("apply", ("succeeded", "returned") if outcome == "returned" else (outcome,))
    if status == "succeeded":
        if outcome == "succeeded":
            return Verdict("duplicate")
        if outcome == "returned":
            return Verdict("apply", ("returned",))
        return Verdict("anomaly", note="failure reported after the payment was reported paid")
    if status == "returned":
        if outcome in ("succeeded", "returned"):
            return Verdict("duplicate")
        return Verdict("anomaly", note="failure reported after the money was reported returned")
    # failed, or already queued again (created) or given up (cancelled) after that failure
    if outcome == "failed":
        return Verdict("duplicate")
    return Verdict("anomaly", note=f"{outcome} reported after the attempt was reported failed")


class IllegalPaymentTransition(ValueError):
    pass


def retry_target(status: str) -> bool:
    """True when a retry changes something; False when it is a repeat (already queued or in flight)."""
    if status == "failed":
        return True
    if status in UNSETTLED:
        return False
    raise IllegalPaymentTransition(f"a {status} payment cannot be retried (only a failed one)")


def cancel_target(status: str) -> bool:
    """True when a cancellation changes something; False when already cancelled."""
    if status in ("created", "failed"):
        return True
    if status == "cancelled":
        return False
    raise IllegalPaymentTransition(f"a {status} payment cannot be cancelled (only a created or failed one)")
