"""Events the shelter service publishes (its part of the platform's event catalogue).

Shelter cases concern survivors of violence, so these events carry ids and coarse facts
only: the case id, the shelter, the survivor's home regency (never finer), PPKS categories,
the child flag and dates. Never names, NIK, addresses, incident details or narratives.

The one exception is deliberate and consented: a discharge with consent to economic support
carries the survivor's registry ``person_id`` (if the survivor has one) and the proposed
programme, so that the registry can propose the enrolment. That event carries no violence
types, to keep the person apart from the details of the case.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from pilar_kernel.events import Event

from .marks import region

SOURCE = "/pilar/shelter"
_T = "id.go.jatimprov.dinsos.shelter."

ViolenceType = Literal["physical", "psychological", "sexual", "neglect", "exploitation", "trafficking"]
ClosureReason = Literal["reintegrated", "referred", "other"]


class _CaseEvent(Event):
    topic: ClassVar[str] = "shelter.case"
    key_field: ClassVar[str] = "case_id"

    case_id: uuid.UUID
    shelter_id: uuid.UUID
    regency_code: str = region()  # the survivor's home regency/city (35.xx or another province's code)
    child: bool
    ppks: list[str]  # coarse PPKS categories (korban_tindak_kekerasan, anak_korban_tindak_kekerasan, korban_trafficking)


class CaseOpened(_CaseEvent):
    """A case was opened at intake."""

    ce_type: ClassVar[str] = _T + "case.opened.v1"
    opened_on: date
    referral_source: Literal["upt_ppa", "police", "hospital", "hotline", "walk_in"]


class CaseAdmitted(_CaseEvent):
    """The survivor took a bed in the case's shelter."""

    ce_type: ClassVar[str] = _T + "case.admitted.v1"
    stay_id: uuid.UUID
    admitted_on: date


class EconomicSupportReferral(BaseModel):
    """A consented proposal for economic support, for the registry to turn into an enrolment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    person_id: uuid.UUID | None  # the survivor's registry person, when known
    programme_code: str  # a registry programme, e.g. KUBE


class CaseDischarged(_CaseEvent):
    """The survivor left the shelter bed; ``economic_support`` is set only with consent."""

    ce_type: ClassVar[str] = _T + "case.discharged.v1"
    stay_id: uuid.UUID
    admitted_on: date
    discharged_on: date
    economic_support: EconomicSupportReferral | None = None


class CaseClosed(_CaseEvent):
    """A supervisor approved the closure of a case."""

    ce_type: ClassVar[str] = _T + "case.closed.v1"
    opened_on: date
    closed_on: date
    closure_reason: ClosureReason
    violence_types: list[ViolenceType]


class CaseReopened(_CaseEvent):
    """A closed case was reopened."""

    ce_type: ClassVar[str] = _T + "case.reopened.v1"
    reopened_on: date


class CaseTransferred(_CaseEvent):
    """A case moved to another caseworker or shelter (``shelter_id`` is the new shelter)."""

    ce_type: ClassVar[str] = _T + "case.transferred.v1"
    from_shelter_id: uuid.UUID
    transferred_on: date
