"""Opaque cursors for list endpoints: ``limit`` + ``cursor``, stable ordering by a key tuple."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from uuid import UUID

from .problems import Problem


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode().rstrip("=")


def _bad_cursor() -> Problem:
    return Problem(
        "cursor is not one this endpoint issued", status=422, type="validation-error", title="Invalid input",
        errors=[{"field": "query.cursor", "message": "unknown cursor", "rule": "cursor"}],
    )


def _as_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("not an integer")
    return value


def _as_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("not a string")
    return value


_CONVERTERS: dict[type, Callable[[Any], Any]] = {
    datetime: lambda v: datetime.fromisoformat(_as_str(v)),
    date: lambda v: date.fromisoformat(_as_str(v)),
    UUID: lambda v: UUID(_as_str(v)),
    int: _as_int,
    str: _as_str,
}


def decode_cursor(cursor: str | None, *types: type) -> list[Any] | None:
    """The values of a cursor from :func:`encode_cursor`, or ``None`` when there is none.

    With ``types`` (one per value: ``datetime``, ``date``, ``UUID``, ``int``, ``str``) the
    values are converted and checked, so a cursor that decodes but was issued by another
    endpoint (another shape) is a 422 naming ``query.cursor``, never a server error.
    """
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list):
            raise ValueError("not a list")
        if types:
            if len(values) != len(types):
                raise ValueError("wrong number of values")
            values = [_CONVERTERS[t](v) for t, v in zip(types, values, strict=True)]
        return values
    except (ValueError, TypeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _bad_cursor() from exc


def page(items: list[Any], limit: int, key) -> tuple[list[Any], str | None]:
    """Cut a list fetched with ``limit + 1`` rows into a page and the next cursor."""
    if len(items) > limit:
        items = items[:limit]
        return items, encode_cursor(key(items[-1]))
    return items, None
