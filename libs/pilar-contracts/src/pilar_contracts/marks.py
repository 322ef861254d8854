"""Markers on event contracts for consumers that route or filter events they do not own
(the gateway's webhooks, first of all). They appear in the event schemas (AsyncAPI) as
``x-pilar-region`` and ``x-pilar-registry-only``.

* ``region()``: the field holds a region code (a province ``35``, a regency or city
  ``35.15``, a district ``35.15.01`` ...) or a list of them. An event concerns every region
  its marked fields name: a regional subscriber receives it when any of them is in its region.
* ``registry_only(default)``: personal data that travels only so that the registry can act
  on it (open a provisional record, find a person). No other consumer may keep it; the
  gateway neither stores it nor delivers it to webhook subscribers.
* ``PROVINCE_PUBLIC = True`` (a class attribute of an event): the event concerns the whole
  province and carries no region (a payment round's approval or totals); regional
  subscribers may receive it. An event with neither regions nor this attribute is for
  province-wide subscribers only.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

REGION = "x-pilar-region"
REGISTRY_ONLY = "x-pilar-registry-only"
PROVINCE_PUBLIC = "PROVINCE_PUBLIC"


def region(**kwargs: Any) -> Any:
    """A region code field (required unless a ``default`` is given)."""
    return Field(json_schema_extra={REGION: True}, **kwargs)


def registry_only(default: Any = None, **kwargs: Any) -> Any:
    """Personal data only the registry may keep."""
    return Field(default, json_schema_extra={REGISTRY_ONLY: True}, **kwargs)


def _marked(cls: type, mark: str) -> tuple[str, ...]:
    return tuple(
        name for name, info in cls.model_fields.items()
        if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get(mark)
    )


def region_fields(cls: type) -> tuple[str, ...]:
    """Names of the event's region fields, in declaration order."""
    return _marked(cls, REGION)


def registry_only_fields(cls: type) -> tuple[str, ...]:
    """Names of the event's fields that only the registry may keep."""
    return _marked(cls, REGISTRY_ONLY)


def province_public(cls: type) -> bool:
    return bool(getattr(cls, PROVINCE_PUBLIC, False))


def regions_of(event: Any) -> list[str]:
    """Every region code the event names (its marked fields, lists flattened, nulls dropped)."""
    out: list[str] = []
    for name in region_fields(type(event)):
        value = getattr(event, name, None)
        if isinstance(value, (list, tuple, set, frozenset)):
            out.extend(v for v in value if v)
        elif value:
            out.append(value)
    return out
