"""Opaque cursors for list endpoints: ``limit`` + ``cursor``, stable ordering by a key tuple."""

from __future__ import annotations

import base64
import json
from typing import Any

from .problems import Problem


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> list[Any] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list):
            raise ValueError("not a list")
        return values
    except (ValueError, json.JSONDecodeError) as exc:
        raise Problem(
            "cursor is not one this service issued", status=422, type="validation-error", title="Invalid input",
            errors=[{"field": "query.cursor", "message": "unknown cursor", "rule": "cursor"}],
        ) from exc


def page(items: list[Any], limit: int, key) -> tuple[list[Any], str | None]:
    """Cut a list fetched with ``limit + 1`` rows into a page and the next cursor."""
    if len(items) > limit:
        items = items[:limit]
        return items, encode_cursor(key(items[-1]))
    return items, None
