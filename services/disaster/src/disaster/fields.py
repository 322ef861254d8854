"""Field types shared by the disaster schemas and routes: region codes, versions, counts and
list cursors, each with the bounds the service really enforces (so that the OpenAPI document
states them and a request valid by it is accepted), and integers kept inside PostgreSQL's
ranges (an out-of-range number is a 422 naming the field, never a database error)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Query
from pydantic import Field

from pilar_kernel.pagination import decode_cursor
from pilar_kernel.problems import Problem
from pilar_kernel.types import PositiveInt32

# Region codes of Jawa Timur in the dotted Kemendagri form or the bare digits (both accepted by
# pilar_kernel.regions.normalise). The 38 regencies and cities are 35.01-35.29 and 35.71-35.79,
# so a regency code valid by the pattern is a real one; whether a district or village code
# exists (and lies in the incident's area) is checked by the service (422 naming the field).
_JATIM = r"35\.(0[1-9]|[12][0-9]|7[1-9])"
_JATIM_BARE = r"35(0[1-9]|[12][0-9]|7[1-9])"
REGENCY_PATTERN = rf"^({_JATIM}|{_JATIM_BARE})$"
DISTRICT_PATTERN = rf"^({_JATIM}\.[0-9]{{2}}|{_JATIM_BARE}[0-9]{{2}})$"
VILLAGE_PATTERN = rf"^({_JATIM}\.[0-9]{{2}}\.[0-9]{{4}}|{_JATIM_BARE}[0-9]{{6}})$"
ITEM_CODE_PATTERN = r"^[a-z0-9_]{2,40}$"

RegencyCode = Annotated[str, Field(pattern=REGENCY_PATTERN, max_length=5, examples=["35.08"])]
DistrictCode = Annotated[str, Field(pattern=DISTRICT_PATTERN, max_length=8, examples=["35.08.01"])]
VillageCode = Annotated[str, Field(pattern=VILLAGE_PATTERN, max_length=13, examples=["35.08.01.2001"])]
ItemCode = Annotated[str, Field(pattern=ITEM_CODE_PATTERN)]
Version = Annotated[PositiveInt32, Field(description="the version you read; a stale one is refused with 409")]



def Text(min_length: int, max_length: int, **kw: Any) -> Any:  # noqa: N802  (a type, as used)
    """A required text the service strips of surrounding whitespace before checking its length:
    the pattern says the same to a client (at least ``min_length`` characters from the first to
    the last non-blank one), so a request valid by the document is one the service accepts."""
    if min_length < 1:
        raise ValueError("min_length >= 1")
    inner = r"\S" if min_length == 1 else rf"\S[\s\S]{{{min_length - 2},}}\S"
    return Annotated[str, Field(min_length=min_length, max_length=max_length, pattern=inner, **kw)]


# Query parameters (FastAPI reads the constraints from Query, not from Field).
RegencyQuery = Annotated[str | None, Query(pattern=REGENCY_PATTERN, max_length=5, description="a regency/city code, e.g. 35.08")]
CursorQuery = Annotated[str | None, Query(max_length=500, description="next_cursor of the previous page")]


def _idempotency_key(key: Annotated[str | None, Header(
        alias="Idempotency-Key", min_length=1, max_length=200,
        description="a retry with the same key and body gets the first answer again (Idempotent-Replayed: true); "
                    "the same key with another body is a 422")] = None) -> None:
    """Documents the header on the routes that honour it (pilar_kernel.idempotency reads it)."""


IDEMPOTENCY_KEY = Depends(_idempotency_key)


def cursor_values(cursor: str | None, *types: type) -> list[Any] | None:
    """The values of a list cursor, converted to ``types`` by the kernel's ``decode_cursor``: a
    cursor of another shape (another endpoint's, or made up) is a 422 naming ``query.cursor``,
    never a database error. A NUL inside a decoded string value (the NUL guard cannot see it
    through the base64) is refused the same way."""
    values = decode_cursor(cursor, *types)
    if values is not None and any(isinstance(v, str) and "\x00" in v for v in values):
        raise Problem(
            "cursor is not one this endpoint issued", status=422, type="validation-error", title="Invalid input",
            errors=[{"field": "query.cursor", "message": "unknown cursor", "rule": "cursor"}],
        )
    return values
