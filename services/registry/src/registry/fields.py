"""Bounded field types of the registry's schemas: what the database can hold, said in the
OpenAPI document, so that a request valid by the schema is accepted and bad input is a 422
naming the field (never a database error).

``Int32``/``Int64`` are PostgreSQL's ``integer``/``bigint`` ranges; the kernel's
``pilar_kernel.types`` gives the same two, and this module switches to them in one line
once every kernel in use has them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

try:  # the kernel's, when present
    from pilar_kernel.types import Int32, Int64  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - until the kernel has them
    Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
    Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]

# Versions count edits of one record from 1.
Version = Annotated[Int32, Field(ge=1, description="the version you read; a stale version is refused with 409")]
# Whole rupiah.
Rupiah = Annotated[Int64, Field(ge=0)]

# A NIK as people write it: digits, spaces allowed between them (the NIK rules check the rest, nik.length included).
NIK_PATTERN = r"^[0-9\s]{1,40}$"
KK_PATTERN = r"^\d{16}$"
PROVISIONAL_ID_PATTERN = r"^PRV-[0-9A-F]{10}$"
# Kemendagri codes of Jawa Timur, dotted (35.15, 35.15.14, 35.15.14.2001) or as plain digits.
REGENCY_PATTERN = r"^35\.\d{2}$"
DISTRICT_PATTERN = r"^35\.\d{2}\.\d{2}$"
VILLAGE_PATTERN = r"^\d{2}\.?\d{2}\.?\d{2}\.?\d{4}$"
# Any region code (a destination outside the province), dotted.
REGION_PATTERN = r"^\d{2}(\.\d{2}(\.\d{2}(\.\d{4})?)?)?$"
PPKS_PATTERN = r"^[a-z][a-z_]{1,59}$"
CURSOR_MAX = 500


def time_id_cursor(cursor: str | None):
    """A ``[timestamp, uuid]`` cursor as typed values, or None; any other shape (a cursor of
    another endpoint, a forged one) is a 422 naming ``query.cursor``. The kernel's
    ``decode_cursor(cursor, datetime, UUID)`` does the same once every kernel in use has it."""
    import uuid
    from datetime import datetime

    from pilar_kernel.pagination import decode_cursor
    from pilar_kernel.problems import Problem

    after = decode_cursor(cursor)
    if not after:
        return None
    try:
        if len(after) != 2 or not all(isinstance(v, str) for v in after):
            raise ValueError("not a [time, id] cursor")
        at = datetime.fromisoformat(after[0])
        if at.tzinfo is None:
            raise ValueError("naive time")
        return at, uuid.UUID(after[1])
    except (ValueError, TypeError) as exc:
        raise Problem("cursor is not one this endpoint issued", status=422, type="validation-error", title="Invalid input",
                      errors=[{"field": "query.cursor", "message": "unknown cursor", "rule": "cursor"}]) from exc


def problem_responses(*codes: int) -> dict:
    """``responses=`` for a route that answers problem+json with ``codes`` beyond the kernel's
    defaults (the kernel's ``problem_responses`` when present)."""
    try:
        from pilar_kernel.problems import problem_responses as kernel  # type: ignore[attr-defined]
    except ImportError:
        kernel = None
    if kernel is not None:
        return kernel(*codes)
    from http import HTTPStatus

    return {code: {"description": HTTPStatus(code).phrase, "content": {"application/problem+json": {"schema": {"type": "object"}}}}
            for code in codes}
