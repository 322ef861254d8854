"""Events the registry publishes (its part of the platform's event catalogue).

Persons travel as ``person_id`` plus ``nik_hash`` (keyed HMAC of the NIK); the raw NIK,
names, phones and addresses below the district never leave the registry.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import ClassVar

from pilar_kernel.events import Event

from .marks import region

SOURCE = "/pilar/registry"
_T = "id.go.jatimprov.dinsos.registry."


class _PersonEvent(Event):
    topic: ClassVar[str] = "registry.person"
    key_field: ClassVar[str] = "person_id"

    person_id: uuid.UUID
    nik_hash: str | None
    regency_code: str | None = region()


class PersonRegistered(_PersonEvent):
    """A person entered the registry (with a NIK, or provisionally without one).

    A provisional record may still carry ``nik_hash``: another service reported the person
    with a NIK the registry had no record of (the registry keeps the hash, not the NIK, and
    completes the record when the person is registered with that NIK). ``affected_person_id``
    is set when the record was opened from the disaster service's ``PersonAffected``: the id
    of that affected-person record, so the disaster service can link it to this person.
    """

    ce_type: ClassVar[str] = _T + "person.registered.v1"
    provisional: bool
    district_code: str | None = region()
    birth_date: date | None
    sex: str
    ppks: list[str]
    decile: int | None
    disability_severity: str | None
    # Added after v1 was published: optional, absent in older events.
    affected_person_id: uuid.UUID | None = None


class PersonUpdated(_PersonEvent):
    """Facts about a person changed; ``changed`` names the fields (values stay in the registry)."""

    ce_type: ClassVar[str] = _T + "person.updated.v1"
    changed: list[str]
    ppks: list[str]
    decile: int | None
    disability_severity: str | None


class PersonMoved(_PersonEvent):
    """A person's address moved to another regency, or out of the province (``to_regency_code`` null)."""

    ce_type: ClassVar[str] = _T + "person.moved.v1"
    from_regency_code: str | None = region()
    to_regency_code: str | None = region()


class PersonDeceased(_PersonEvent):
    """A person died: no service may pay or serve the record any more."""

    ce_type: ClassVar[str] = _T + "person.deceased.v1"
    date_of_death: date


class PersonMerged(_PersonEvent):
    """A duplicate record was merged into a surviving one; use ``into_person_id`` from now on."""

    ce_type: ClassVar[str] = _T + "person.merged.v1"
    into_person_id: uuid.UUID
    into_nik_hash: str | None


class HouseholdChanged(Event):
    """A household's membership changed (members joined, left or changed relationship)."""

    ce_type: ClassVar[str] = _T + "household.changed.v1"
    topic: ClassVar[str] = "registry.household"
    key_field: ClassVar[str] = "household_id"

    household_id: uuid.UUID
    regency_code: str | None = region()
    member_ids: list[uuid.UUID]
    head_person_id: uuid.UUID | None


class _EnrolmentEvent(Event):
    topic: ClassVar[str] = "registry.enrolment"
    key_field: ClassVar[str] = "enrolment_id"

    enrolment_id: uuid.UUID
    person_id: uuid.UUID
    nik_hash: str | None
    programme_code: str
    regency_code: str | None = region()


class EnrolmentProposed(_EnrolmentEvent):
    """A regency office proposed a person for a programme."""

    ce_type: ClassVar[str] = _T + "enrolment.proposed.v1"


class EnrolmentApproved(_EnrolmentEvent):
    """An enrolment was approved: the person is payable under the programme from ``active_from``."""

    ce_type: ClassVar[str] = _T + "enrolment.approved.v1"
    household_id: uuid.UUID | None
    active_from: date


class EnrolmentRejected(_EnrolmentEvent):
    """An enrolment was rejected, with the reason."""

    ce_type: ClassVar[str] = _T + "enrolment.rejected.v1"
    reason: str


class EnrolmentSuspended(_EnrolmentEvent):
    """An active enrolment is suspended: not payable until resumed."""

    ce_type: ClassVar[str] = _T + "enrolment.suspended.v1"
    reason: str


class EnrolmentResumed(_EnrolmentEvent):
    """A suspended enrolment is active (payable) again."""

    ce_type: ClassVar[str] = _T + "enrolment.resumed.v1"


class EnrolmentEnded(_EnrolmentEvent):
    """An enrolment ended (death, graduation, moved, no longer eligible, merged...)."""

    ce_type: ClassVar[str] = _T + "enrolment.ended.v1"
    reason: str
    ended_on: date
