"""Indonesian region codes (Kemendagri) from the packaged ``data/wilayah.csv``.

The file lists every province, regency/city and district of Indonesia and the villages of
Jawa Timur, in dotted form: ``35`` (province), ``35.78`` (regency or city), ``35.15.14``
(district, kecamatan) and ``35.15.14.2001`` (village). Rows whose status reads
``historical (last listed YEAR)`` are codes that no longer exist. They are kept because a
NIK issued under an old code stays valid, but new addresses must use current codes, so
lookups take a ``current_only`` flag where that matters.

The file is read once, on first use, and kept in memory (about 17,000 rows).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

__all__ = [
    "JATIM",
    "Level",
    "Region",
    "by_level",
    "children",
    "exists",
    "get",
    "is_jatim",
    "jatim_regencies",
    "normalise",
    "province_of",
    "provinces",
    "regency_of",
]

Level = Literal["province", "regency", "district", "village"]

JATIM = "35"
"""Province code of Jawa Timur."""

# Digits per dotted segment, by level: province, regency, district, village.
_SEGMENT_WIDTHS = (2, 2, 2, 4)
_LEVELS: tuple[Level, ...] = ("province", "regency", "district", "village")
# Undotted lengths accepted by normalise(): 2, 4, 6 or 10 digits.
_UNDOTTED_LENGTHS = {2: 1, 4: 2, 6: 3, 10: 4}
_HISTORICAL = re.compile(r"historical \(last listed (\d{4})\)")


@dataclass(frozen=True, slots=True)
class Region:
    """One row of the region list.

    ``current`` is False for codes that were dropped from the official list;
    ``last_listed`` is then the last year the code appeared (None for current codes).
    """

    code: str
    level: Level
    name: str
    current: bool
    last_listed: int | None = None


@dataclass(frozen=True, slots=True)
class _Index:
    by_code: dict[str, Region]
    children: dict[str, tuple[Region, ...]]


@cache
def _index() -> _Index:
    by_code: dict[str, Region] = {}
    kids: dict[str, list[Region]] = {}
    source = resources.files("pilar_kernel").joinpath("data", "wilayah.csv")
    with source.open("r", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            region = _row_to_region(row)
            if region.code in by_code:
                raise ValueError(f"wilayah.csv lists region code {region.code} twice")
            by_code[region.code] = region
            parent = _parent(region.code)
            if parent is not None:
                kids.setdefault(parent, []).append(region)
    children = {parent: tuple(sorted(rows, key=lambda r: r.code)) for parent, rows in kids.items()}
    return _Index(by_code=by_code, children=children)


def _row_to_region(row: dict[str, str]) -> Region:
    code, level, name, status = row["code"], row["level"], row["name"], row["status"]
    if level not in _LEVELS or _level_of(code) != level:
        raise ValueError(f"wilayah.csv row {code!r} has an unexpected level {level!r}")
    if status == "current":
        return Region(code=code, level=level, name=name, current=True)  # type: ignore[arg-type]
    match = _HISTORICAL.fullmatch(status)
    if match is None:
        raise ValueError(f"wilayah.csv row {code!r} has an unknown status {status!r}")
    return Region(
        code=code,
        level=level,  # type: ignore[arg-type]
        name=name,
        current=False,
        last_listed=int(match.group(1)),
    )


def _level_of(dotted: str) -> Level:
    return _LEVELS[dotted.count(".")]


def _parent(dotted: str) -> str | None:
    head, sep, _ = dotted.rpartition(".")
    return head if sep else None


def normalise(code: str) -> str:
    """Return ``code`` in dotted Kemendagri form.

    Accepts the dotted form (``"35.78"``, ``"35.15.14.2001"``) and the bare-digit form used
    in NIKs and some partner files (``"3578"``, ``"351514"``, ``"3515142001"``). Surrounding
    whitespace is ignored. Raises ``ValueError`` for anything else. This checks the shape
    only; use :func:`exists` to check the code is real.
    """
    text = code.strip()
    if "." in text:
        segments = text.split(".")
    else:
        if not (text.isascii() and text.isdigit()) or len(text) not in _UNDOTTED_LENGTHS:
            raise ValueError(f"not a region code: {code!r}")
        segments = []
        start = 0
        for width in _SEGMENT_WIDTHS[: _UNDOTTED_LENGTHS[len(text)]]:
            segments.append(text[start : start + width])
            start += width
    if len(segments) > len(_SEGMENT_WIDTHS):
        raise ValueError(f"not a region code: {code!r}")
    for segment, width in zip(segments, _SEGMENT_WIDTHS):
        # isascii() keeps out other scripts' digits, which str.isdigit() accepts.
        if len(segment) != width or not (segment.isascii() and segment.isdigit()):
            raise ValueError(f"not a region code: {code!r}")
    return ".".join(segments)


def _try_normalise(code: str) -> str | None:
    try:
        return normalise(code)
    except ValueError:
        return None


def get(code: str) -> Region | None:
    """Return the region for ``code`` (any accepted form), or None if it is unknown or malformed."""
    dotted = _try_normalise(code)
    return None if dotted is None else _index().by_code.get(dotted)


def exists(code: str, *, current_only: bool = False) -> bool:
    """Tell whether ``code`` is a known region; with ``current_only`` historical codes do not count."""
    region = get(code)
    return region is not None and (region.current or not current_only)


def province_of(code: str) -> str:
    """Return the province part of ``code`` in dotted form (``"35.78"`` gives ``"35"``).

    Works on the shape of the code alone; raises ``ValueError`` if it is malformed.
    """
    return normalise(code).split(".")[0]


def regency_of(code: str) -> str | None:
    """Return the regency/city part of ``code`` (``"35.15.14"`` gives ``"35.15"``).

    Returns None for a province code, which has no regency. Raises ``ValueError`` if the
    code is malformed.
    """
    segments = normalise(code).split(".")
    return ".".join(segments[:2]) if len(segments) >= 2 else None


def is_jatim(code: str) -> bool:
    """Tell whether ``code`` lies in Jawa Timur (province 35). Malformed codes give False."""
    dotted = _try_normalise(code)
    return dotted is not None and dotted.split(".")[0] == JATIM


def children(code: str, *, current_only: bool = False) -> list[Region]:
    """Return the regions directly below ``code``, sorted by code.

    Villages are only listed for Jawa Timur, so other districts have no children.
    Unknown or malformed codes give an empty list.
    """
    dotted = _try_normalise(code)
    if dotted is None:
        return []
    rows = _index().children.get(dotted, ())
    return [r for r in rows if r.current or not current_only]


def by_level(level: Level, *, current_only: bool = False) -> list[Region]:
    """Return every region of one level, sorted by code (villages exist for Jawa Timur only)."""
    if level not in _LEVELS:
        raise ValueError(f"unknown region level {level!r}")
    rows = (r for r in _index().by_code.values() if r.level == level)
    return sorted((r for r in rows if r.current or not current_only), key=lambda r: r.code)


def provinces(*, current_only: bool = False) -> list[Region]:
    """Return the provinces, sorted by code (all 38 are current in the packaged data)."""
    return by_level("province", current_only=current_only)


def jatim_regencies() -> list[Region]:
    """Return the 38 current regencies and cities of Jawa Timur (35.01–35.29, 35.71–35.79)."""
    return children(JATIM, current_only=True)
