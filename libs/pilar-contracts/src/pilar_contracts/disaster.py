"""Events the disaster service publishes (its part of the platform's event catalogue).

Streams: ``disaster.incident`` (key ``incident_id``), ``disaster.household`` (key
``household_id``), ``disaster.person`` (key ``affected_person_id``), ``disaster.stock``
(shipments keyed by ``request_id``, low-stock alerts by ``warehouse_id``) and
``disaster.distribution`` (key ``distribution_id``).

Persons travel as the registry's ``person_id`` and the platform ``nik_hash`` when known. The
raw NIK and the KK number never leave the disaster service (it keeps only their hashes).
A name travels in exactly one case, documented on :class:`PersonAffected`.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from pilar_kernel.events import Event

from .marks import region, registry_only

SOURCE = "/pilar/disaster"
_T = "id.go.jatimprov.dinsos.disaster."

# UU 24/2007 kinds of disaster.
Category = Literal["natural", "non_natural", "social"]
# The national scheme: siaga darurat, tanggap darurat, transisi darurat ke pemulihan, then
# recovery (pemulihan) and closed.
Status = Literal["alert", "emergency_response", "transition", "recovery", "closed"]
Authority = Literal["regent", "mayor", "governor", "president", "head_of_agency"]
DamageLevel = Literal["none", "light", "moderate", "heavy"]
Condition = Literal["unharmed", "injured", "missing", "dead"]
# Vulnerable groups counted in evacuation and carried as person flags.
Vulnerability = Literal["elderly", "disabled", "child", "pregnant"]


class _IncidentEvent(Event):
    topic: ClassVar[str] = "disaster.incident"
    key_field: ClassVar[str] = "incident_id"

    incident_id: uuid.UUID
    category: Category
    hazard: str
    regency_codes: list[str] = region()
    status: Status
    decree_number: str | None
    authority: Authority | None
    effective_from: date
    effective_until: date | None
    version: int


class IncidentDeclared(_IncidentEvent):
    """An incident was recorded with its first status (usually alert or emergency response)."""

    ce_type: ClassVar[str] = _T + "incident.declared.v1"
    district_codes: list[str] = region()
    started_on: date


class IncidentStatusChanged(_IncidentEvent):
    """The incident's status changed (or was extended under a new decree)."""

    ce_type: ClassVar[str] = _T + "incident.status_changed.v1"
    from_status: Status


class HouseholdAffected(Event):
    """A household was assessed as affected, or re-assessed (``version`` grows with each change).

    ``recipient_person_id`` is the registry person who receives household aid (the head of
    family when matched, else the first matched adult member); null when nobody in the
    household is known to the registry yet.
    """

    ce_type: ClassVar[str] = _T + "household.affected.v1"
    topic: ClassVar[str] = "disaster.household"
    key_field: ClassVar[str] = "household_id"

    household_id: uuid.UUID
    incident_id: uuid.UUID
    incident_category: Category
    hazard: str
    regency_code: str = region()
    district_code: str = region()
    damage_level: DamageLevel
    displaced: bool
    member_count: int
    registry_household_id: uuid.UUID | None
    recipient_person_id: uuid.UUID | None
    recipient_nik_hash: str | None
    version: int
    assessed_at: datetime


class PersonAffected(Event):
    """A person was recorded as affected by an incident. Published once per affected-person record.

    ``person_id`` is set when the disaster service matched the person to the registry (by
    ``nik_hash``). Name, birth date and village are personal data and travel **only when
    ``person_id`` is null**: the registry then needs them to open a provisional record (or
    to find the person by ``nik_hash`` if the disaster service's copy of the registry was
    behind). A matched person's event carries ids, coarse regions and flags only. Consumers
    other than the registry must not store ``name``.
    """

    ce_type: ClassVar[str] = _T + "person.affected.v1"
    topic: ClassVar[str] = "disaster.person"
    key_field: ClassVar[str] = "affected_person_id"

    affected_person_id: uuid.UUID
    incident_id: uuid.UUID
    incident_category: Category
    hazard: str
    household_id: uuid.UUID | None
    person_id: uuid.UUID | None
    nik_hash: str | None
    regency_code: str = region()
    district_code: str = region()
    damage_level: DamageLevel | None
    condition: Condition
    displaced: bool
    flags: list[Vulnerability]
    sex: Literal["M", "F"]
    # Only when person_id is null (see the class docstring), and only for the registry.
    name: str | None = registry_only()
    birth_date: date | None = registry_only()
    village_code: str | None = registry_only()


class ItemQuantity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    item_code: str
    quantity: int


class StockShipped(Event):
    """Approved goods left a warehouse for an incident (drawn first-expiring-first-out)."""

    ce_type: ClassVar[str] = _T + "stock.shipped.v1"
    topic: ClassVar[str] = "disaster.stock"
    key_field: ClassVar[str] = "request_id"

    request_id: uuid.UUID
    incident_id: uuid.UUID
    from_warehouse_id: uuid.UUID
    to_warehouse_id: uuid.UUID
    items: list[ItemQuantity]
    shipped_at: datetime


class StockBelowMinimum(Event):
    """An item's stock in a warehouse fell below its minimum level."""

    ce_type: ClassVar[str] = _T + "stock.below_minimum.v1"
    topic: ClassVar[str] = "disaster.stock"
    key_field: ClassVar[str] = "warehouse_id"

    warehouse_id: uuid.UUID
    regency_code: str | None = region()  # null: a province warehouse
    item_code: str
    on_hand: int
    minimum: int
    raised_at: datetime


class DistributionRecorded(Event):
    """Goods were handed to a recipient (a person, a household or an evacuation point)."""

    ce_type: ClassVar[str] = _T + "distribution.recorded.v1"
    topic: ClassVar[str] = "disaster.distribution"
    key_field: ClassVar[str] = "distribution_id"

    distribution_id: uuid.UUID
    incident_id: uuid.UUID
    warehouse_id: uuid.UUID
    regency_code: str | None = region()
    affected_person_id: uuid.UUID | None
    household_id: uuid.UUID | None
    evacuation_point_id: uuid.UUID | None
    person_id: uuid.UUID | None
    items: list[ItemQuantity]
    distributed_on: date
