"""Events the homeless-return service (Simlontar Rek) publishes.

One stream per return case on ``homeless_return.return``, keyed by ``return_id``. Payloads
carry ids, region codes, dates, the cause category and flags: never a name, a raw NIK,
a phone number or a narrative. A person travels as the registry's ``person_id`` and the
platform ``nik_hash`` when they are known.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import ClassVar, Literal

from pilar_kernel.events import Event

from .marks import region, registry_only

SOURCE = "/pilar/homeless-return"
_T = "id.go.jatimprov.dinsos.homeless_return."

Cause = Literal["out_of_money", "job_scam", "suspected_trafficking", "other"]
Direction = Literal["outbound", "inbound"]
# Flags a case can carry: a suspected trafficking victim (to be referred to a shelter case)
# and a repeat claimant (returned before within the configured window).
Flag = Literal["suspected_trafficking", "repeat_claimant"]


class _ReturnEvent(Event):
    topic: ClassVar[str] = "homeless_return.return"
    key_field: ClassVar[str] = "return_id"

    return_id: uuid.UUID
    person_id: uuid.UUID | None
    nik_hash: str | None
    direction: Direction
    origin_code: str | None = region()
    destination_code: str | None = region()
    cause: Cause
    flags: list[Flag]


class ReturnReported(_ReturnEvent):
    """A stranded person was reported (outbound) or announced by another province (inbound)."""

    ce_type: ClassVar[str] = _T + "return.reported.v1"
    found_on: date
    found_regency_code: str | None = region()
    referred_by: str
    sending_province_code: str | None = region()
    departure_due_on: date


class ReturnVerified(_ReturnEvent):
    """The destination was confirmed (by the receiving regency office for a Jatim destination)."""

    ce_type: ClassVar[str] = _T + "return.verified.v1"
    verified_at: datetime
    verified_by: str


class ReturnDeparted(_ReturnEvent):
    """The first leg left: the person is on the way home."""

    ce_type: ClassVar[str] = _T + "return.departed.v1"
    departed_at: datetime
    departure_due_on: date
    within_standard: bool
    leg_count: int


class ReturnLegHandedOver(_ReturnEvent):
    """One leg ended with a handover to the receiving Dinsos (a relay province or home)."""

    ce_type: ClassVar[str] = _T + "return.leg_handed_over.v1"
    seq: int
    from_code: str = region()
    to_code: str = region()
    mode: Literal["bus", "train", "ship"]
    handed_over_at: datetime
    handover_document_no: str
    final: bool


class ReturnCompleted(_ReturnEvent):
    """The person was handed over at the destination: the return is done."""

    ce_type: ClassVar[str] = _T + "return.completed.v1"
    returned_at: datetime
    departed_at: datetime
    within_standard: bool
    leg_count: int
    total_cost: int


class ReturnRefused(_ReturnEvent):
    """The family or the home government refused to receive the person."""

    ce_type: ClassVar[str] = _T + "return.refused.v1"
    refused_at: datetime
    refused_by: Literal["family", "home_government"]


class ReturnUnresolved(_ReturnEvent):
    """The case was closed without a return. Sex and birth date let the registry open a
    provisional PPKS record when the person is not known there; the name stays home."""

    ce_type: ClassVar[str] = _T + "return.unresolved.v1"
    unresolved_at: datetime
    sex: Literal["M", "F"]
    birth_date: date | None = registry_only(...)
    found_regency_code: str | None = region()
