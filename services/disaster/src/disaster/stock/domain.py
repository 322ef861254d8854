"""Rules of the buffer stock, with no I/O: the request lifecycle and first-expiring-first-out."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

REQUEST_STATUSES = ("draft", "approved", "shipped", "received", "cancelled")
# action -> (statuses it may start from, status it leads to)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "approve": (("draft",), "approved"),
    "ship": (("approved",), "shipped"),
    "receive": (("shipped",), "received"),
    "cancel": (("draft", "approved"), "cancelled"),
}
WAREHOUSE_LEVELS = ("province", "regency", "field")


class IllegalTransition(ValueError):
    def __init__(self, action: str, status: str) -> None:
        super().__init__(f"cannot {action} a request that is {status} (only from: {', '.join(TRANSITIONS[action][0])})")


def next_status(action: str, status: str) -> str:
    sources, target = TRANSITIONS[action]
    if status not in sources:
        raise IllegalTransition(action, status)
    return target


@dataclass(frozen=True)
class Lot:
    id: uuid.UUID
    expires_on: date | None
    quantity: int


class Shortage(ValueError):
    def __init__(self, item_code: str, wanted: int, available: int) -> None:
        super().__init__(f"{item_code}: {wanted} wanted, {available} usable in stock")
        self.item_code, self.wanted, self.available = item_code, wanted, available


def fefo(item_code: str, lots: list[Lot], wanted: int, today: date) -> list[tuple[uuid.UUID, int]]:
    """Take ``wanted`` units from ``lots``, first expiring first (lots without expiry last).
    Expired lots are never issued. Raises :class:`Shortage` when the lots do not hold enough."""
    usable = [lot for lot in lots if lot.quantity > 0 and (lot.expires_on is None or lot.expires_on >= today)]
    usable.sort(key=lambda lot: (lot.expires_on is None, lot.expires_on or date.max, str(lot.id)))
    plan: list[tuple[uuid.UUID, int]] = []
    left = wanted
    for lot in usable:
        if left == 0:
            break
        take = min(left, lot.quantity)
        plan.append((lot.id, take))
        left -= take
    if left > 0:
        raise Shortage(item_code, wanted, wanted - left)
    return plan
