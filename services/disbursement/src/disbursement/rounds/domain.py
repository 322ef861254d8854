"""Rules of rounds, with no I/O: the lifecycle, the exclusion reasons and the budget arithmetic.

A round (tahap) moves draft → snapshot → approved → disbursing → closed. The snapshot may be
taken again until approval; a round may be cancelled until it starts disbursing.
"""

from __future__ import annotations

from datetime import date

CHANNELS = ("bank", "post")
ROUND_STATUSES = ("draft", "snapshot", "approved", "disbursing", "closed", "cancelled")

# Why a person of the programme is not paid in a round, in the order the rules are applied.
EXCLUSION_REASONS = (
    "deceased",  # the registry recorded a death
    "merged",  # the record was merged into another; the survivor is paid under its own enrolment
    "not_active",  # no active enrolment for the round's period (ended, or active only later)
    "already_paid",  # already has a payment in this round
    "exclusive_programme",  # receives a mutually exclusive programme in an overlapping period
    "over_budget",  # eligible, but the ceiling is reached (earliest enrolled are paid first)
)

# action -> (statuses it may start from, status it leads to)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "edit": (("draft",), "draft"),
    "snapshot": (("draft", "snapshot"), "snapshot"),
    "approve": (("snapshot",), "approved"),
    "disburse": (("approved",), "disbursing"),
    "close": (("disbursing",), "closed"),
    "cancel": (("draft", "snapshot", "approved"), "cancelled"),
}

# Payees may be added while the approved population can still grow.
ADDITION_STATUSES = ("snapshot", "approved", "disbursing")


class IllegalTransition(ValueError):
    def __init__(self, action: str, status: str) -> None:
        allowed = ", ".join(TRANSITIONS[action][0])
        super().__init__(f"cannot {action} a round that is {status} (only from: {allowed})")
        self.action, self.status = action, status


def next_status(action: str, status: str) -> str:
    sources, target = TRANSITIONS[action]
    if status not in sources:
        raise IllegalTransition(action, status)
    return target


def slots(ceiling: int, amount: int, committed: int = 0) -> int:
    """How many more beneficiaries fit under the ceiling."""
    return max(0, (ceiling - committed) // amount)


def check_round(*, amount: int, ceiling: int, period_start: date, period_end: date, year: int) -> list[dict[str, str]]:
    """Every broken rule of a round's figures, as problem ``errors``."""
    errors = []
    if amount <= 0:
        errors.append({"field": "amount", "message": "the amount per beneficiary must be positive whole rupiah", "rule": "round.amount"})
    elif ceiling < amount:
        errors.append({"field": "ceiling", "message": "the ceiling must pay at least one beneficiary", "rule": "round.ceiling"})
    if period_end < period_start:
        errors.append({"field": "period_end", "message": "the period ends before it starts", "rule": "round.period"})
    if period_start.year != year:
        errors.append({"field": "period_start", "message": f"the period must start in {year}, the budget year", "rule": "round.period_year"})
    return errors


def overlaps(a_start: date, a_end: date, b_start: date, b_end: date) -> bool:
    return a_start <= b_end and b_start <= a_end
