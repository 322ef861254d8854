"""Events the disbursement service publishes (its part of the platform's event catalogue).

Rounds are keyed by ``round_id`` on ``disbursement.round``; payments by ``payment_id`` on
``disbursement.payment``, so the events of one payment stay in order. Persons travel as
``person_id`` plus ``nik_hash``; amounts are whole rupiah. ``version`` counts the changes
of a payment, so a consumer can keep the newest state whatever the delivery order.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import ClassVar, Literal

from pilar_kernel.events import Event

from .marks import region

SOURCE = "/pilar/disbursement"
_T = "id.go.jatimprov.dinsos.disbursement."

Channel = Literal["bank", "post"]


class _RoundEvent(Event):
    topic: ClassVar[str] = "disbursement.round"
    key_field: ClassVar[str] = "round_id"
    # A round is the province's (its approval and totals name no region): every regency
    # office may follow it.
    PROVINCE_PUBLIC: ClassVar[bool] = True

    round_id: uuid.UUID
    programme_code: str
    year: int
    stage: int  # the tahap within the year


class RoundApproved(_RoundEvent):
    """A round's population snapshot was approved under a decree (SK) by a second officer."""

    ce_type: ClassVar[str] = _T + "round.approved.v1"
    sk_number: str
    amount_per_beneficiary: int
    ceiling: int
    payee_count: int
    planned_amount: int
    period_start: date
    period_end: date
    channel: Channel


class RoundClosed(_RoundEvent):
    """A round was closed; its final totals."""

    ce_type: ClassVar[str] = _T + "round.closed.v1"
    paid_count: int
    paid_amount: int
    cancelled_count: int
    returned_count: int
    returned_amount: int
    remaining_budget: int


class _PaymentEvent(Event):
    topic: ClassVar[str] = "disbursement.payment"
    key_field: ClassVar[str] = "payment_id"

    payment_id: uuid.UUID
    round_id: uuid.UUID
    programme_code: str
    year: int
    stage: int
    person_id: uuid.UUID
    nik_hash: str | None
    regency_code: str | None = region()
    amount: int
    channel: Channel
    attempt: int
    version: int
    occurred_at: datetime


class PaymentSent(_PaymentEvent):
    """A payment instruction went to the channel (bank batch or post-office file); ``attempt`` counts retries."""

    ce_type: ClassVar[str] = _T + "payment.sent.v1"
    status: Literal["sent"] = "sent"


class PaymentSucceeded(_PaymentEvent):
    """The channel paid the beneficiary."""

    ce_type: ClassVar[str] = _T + "payment.succeeded.v1"
    status: Literal["succeeded"] = "succeeded"


class PaymentFailed(_PaymentEvent):
    """The channel could not pay; the payment may be retried or cancelled."""

    ce_type: ClassVar[str] = _T + "payment.failed.v1"
    status: Literal["failed"] = "failed"
    reason: str


class PaymentReturned(_PaymentEvent):
    """Money paid out came back (closed account, unclaimed at the post office...)."""

    ce_type: ClassVar[str] = _T + "payment.returned.v1"
    status: Literal["returned"] = "returned"
    reason: str
    returned_amount: int


class PaymentCancelled(_PaymentEvent):
    """A payment that was never paid was cancelled (death, merge, given up after failures); its budget is freed."""

    ce_type: ClassVar[str] = _T + "payment.cancelled.v1"
    status: Literal["cancelled"] = "cancelled"
    reason: str
