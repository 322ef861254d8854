"""Bounded field types for request models and query/path parameters.

PostgreSQL's ``integer`` and ``bigint`` are narrower than Python's ``int``: an unbounded
field lets ``10**33`` through validation and fails at the database as a server error. Use
these wherever a number is stored or compared in SQL, so a bad value is a 422 naming the
field and the OpenAPI document shows the range.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

Int32 = Annotated[int, Field(ge=INT32_MIN, le=INT32_MAX)]
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
PositiveInt32 = Annotated[int, Field(ge=1, le=INT32_MAX)]
NonNegativeInt32 = Annotated[int, Field(ge=0, le=INT32_MAX)]
# Rupiah amounts: whole rupiah in a bigint column.
Rupiah = Annotated[int, Field(ge=0, le=INT64_MAX)]
