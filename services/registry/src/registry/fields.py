"""Bounded field types of the registry's schemas: what the database can hold, said in the
OpenAPI document, so that a request valid by the schema is accepted and bad input is a 422
naming the field (never a database error).

``Int32``/``Int64`` (``pilar_kernel.types``) are PostgreSQL's ``integer``/``bigint`` ranges.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field

from pilar_kernel.pagination import decode_cursor
from pilar_kernel.problems import Problem, problem_responses  # noqa: F401  (re-exported for the routes)
from pilar_kernel.types import Int32, Int64

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


def time_id_cursor(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    """A ``[timestamp, uuid]`` cursor as typed values, or None; any other shape (a cursor of
    another endpoint, a forged one) is a 422 naming ``query.cursor``."""
    after = decode_cursor(cursor, datetime, uuid.UUID)
    if not after:
        return None
    if after[0].tzinfo is None:  # ours always carry the offset
        raise Problem("cursor is not one this endpoint issued", status=422, type="validation-error", title="Invalid input",
                      errors=[{"field": "query.cursor", "message": "unknown cursor", "rule": "cursor"}])
    return after[0], after[1]
