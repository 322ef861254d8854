"""NIK (Nomor Induk Kependudukan) checks, parsing, masking and synthetic generation.

A NIK has 16 digits:

=======  ==========================================================
digits   meaning
=======  ==========================================================
1-2      province where the NIK was first issued
3-4      regency/city
5-6      district (kecamatan)
7-12     birth date DDMMYY; women add 40 to the day (41-71)
13-16    serial, from 0001
=======  ==========================================================

The region part records where the NIK was issued and never changes, so any province is
accepted, and so are historical region codes (a NIK issued under a code that was later
dropped stays valid).

Two-digit years: the birth year is the most recent year ending in those two digits that
does not put the birth date in the future, relative to today. In 2025, ``90`` means 1990
and ``05`` means 2005 (if that day has passed) or 1905 (if it has not). A NIK cannot tell
a person aged 100 or more from a child, so such people get the wrong century; compare
against a birth date from another source with ``validate_nik(..., birth_date=...)``.

Error messages never repeat the NIK or its digits, so they are safe to log or return.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

from pilar_kernel import regions

__all__ = [
    "NikError",
    "NikRule",
    "ParsedNik",
    "Sex",
    "is_valid_nik",
    "make_nik",
    "mask_nik",
    "normalise_nik",
    "parse_nik",
    "resolve_birth_year",
    "validate_nik",
]

NikRule = Literal[
    "nik.length",
    "nik.region",
    "nik.birth_date",
    "nik.sex",
    "nik.birth_date_mismatch",
    "nik.serial",
]
Sex = Literal["M", "F"]

NIK_LENGTH = 16
FEMALE_DAY_OFFSET = 40

# [0-9] rather than str.isdigit(), which also accepts other scripts' digits and superscripts.
_DIGITS = re.compile(r"[0-9]*")
_NIK = re.compile(r"[0-9]{16}")


@dataclass(frozen=True, slots=True)
class NikError:
    """One failed rule: a stable ``rule`` id for code and a plain-English ``message``."""

    rule: NikRule
    message: str


@dataclass(frozen=True, slots=True)
class ParsedNik:
    """The fields of a 16-digit NIK, read by position without checking them.

    Region codes are in dotted form (``"35"``, ``"35.15"``, ``"35.15.14"``).
    ``birth_day`` is the real day of the month: for women the 40 is already taken off.
    """

    province: str
    regency: str
    district: str
    birth_day: int
    birth_month: int
    birth_yy: int
    female: bool
    serial: int

    def birth_date(self, *, today: date | None = None) -> date | None:
        """Return the birth date with the century chosen as described in the module notes.

        Returns None when the digits do not form a real date.
        """
        if not 1 <= self.birth_month <= 12 or not 1 <= self.birth_day <= 31:
            return None
        year = resolve_birth_year(self.birth_yy, self.birth_month, self.birth_day, today=today)
        try:
            return date(year, self.birth_month, self.birth_day)
        except ValueError:
            return None


def normalise_nik(nik: str) -> str:
    """Remove all whitespace (``"3515 0141 0190 0001"`` gives ``"3515014101900001"``).

    Nothing else is changed or checked; use :func:`validate_nik` for that.
    """
    return "".join(nik.split())


def resolve_birth_year(yy: int, month: int, day: int, *, today: date | None = None) -> int:
    """Turn a two-digit year into the latest full year that keeps the date out of the future.

    ``today`` defaults to the current date and is a parameter for tests.
    """
    today = today or date.today()
    year = today.year - today.year % 100 + yy
    # Compare as tuples so that an impossible day (30 February) does not raise here.
    if (year, month, day) > (today.year, today.month, today.day):
        year -= 100
    return year


def _raw_day(nik: str) -> int:
    return int(nik[6:8])


def parse_nik(nik: str) -> ParsedNik:
    """Split a NIK into its fields. Whitespace is ignored.

    Raises ``ValueError`` unless the NIK is exactly 16 digits. The fields are not checked
    (the region may be unknown, the date impossible): use :func:`validate_nik` for that.
    """
    digits = normalise_nik(nik)
    if not _NIK.fullmatch(digits):
        raise ValueError("a NIK must be exactly 16 digits")
    raw_day = _raw_day(digits)
    female = raw_day > FEMALE_DAY_OFFSET
    return ParsedNik(
        province=digits[0:2],
        regency=f"{digits[0:2]}.{digits[2:4]}",
        district=f"{digits[0:2]}.{digits[2:4]}.{digits[4:6]}",
        birth_day=raw_day - FEMALE_DAY_OFFSET if female else raw_day,
        birth_month=int(digits[8:10]),
        birth_yy=int(digits[10:12]),
        female=female,
        serial=int(digits[12:16]),
    )


def _region_error(parsed: ParsedNik) -> NikError | None:
    # Historical codes count: a NIK keeps the code it was issued under.
    for code, what in (
        (parsed.province, "province"),
        (parsed.regency, "regency/city"),
        (parsed.district, "district"),
    ):
        if not regions.exists(code):
            return NikError("nik.region", f"NIK {what} code {code} is not a known region code")
    return None


def validate_nik(
    nik: str,
    *,
    birth_date: date | None = None,
    sex: Sex | None = None,
    today: date | None = None,
) -> list[NikError]:
    """Check a NIK and return every rule it breaks (an empty list means valid).

    Whitespace is ignored. When the NIK is not 16 digits only ``nik.length`` is reported,
    because the other rules read digits by position. Otherwise all of these are checked
    and every failure is listed:

    - ``nik.region``: the province, regency and district codes exist (historical ones too);
    - ``nik.birth_date``: digits 7-12 form a real date (day 1-31, or 41-71 for women);
    - ``nik.sex``: when ``sex`` is given, the day has 40 added exactly when it is ``"F"``;
    - ``nik.birth_date_mismatch``: when ``birth_date`` is given, its day, month and
      two-digit year match the NIK;
    - ``nik.serial``: digits 13-16 are not 0000.

    ``today`` fixes the reference date for the century choice (defaults to today).
    """
    if sex is not None and sex not in ("M", "F"):
        raise ValueError(f"sex must be 'M', 'F' or None, not {sex!r}")
    digits = normalise_nik(nik)
    if not _DIGITS.fullmatch(digits):
        return [NikError("nik.length", "NIK must contain digits only")]
    if len(digits) != NIK_LENGTH:
        return [NikError("nik.length", f"NIK must be exactly 16 digits, not {len(digits)}")]

    parsed = parse_nik(digits)
    errors: list[NikError] = []

    region_error = _region_error(parsed)
    if region_error is not None:
        errors.append(region_error)

    if parsed.birth_date(today=today) is None:
        errors.append(
            NikError(
                "nik.birth_date",
                "NIK digits 7-12 are not a real birth date (DDMMYY, with 40 added to the day for women)",
            )
        )

    raw_day = _raw_day(digits)
    # Only a day in 1-31 or 41-71 says anything about sex; other days fail nik.birth_date.
    sex_readable = 1 <= raw_day <= 31 or 41 <= raw_day <= 71
    if sex is not None and sex_readable and parsed.female != (sex == "F"):
        if parsed.female:
            message = "NIK marks a woman (40 added to the birth day) but the given sex is M"
        else:
            message = "NIK marks a man (no 40 added to the birth day) but the given sex is F"
        errors.append(NikError("nik.sex", message))

    if birth_date is not None and (parsed.birth_day, parsed.birth_month, parsed.birth_yy) != (
        birth_date.day,
        birth_date.month,
        birth_date.year % 100,
    ):
        errors.append(
            NikError("nik.birth_date_mismatch", "NIK birth date digits do not match the given birth date")
        )

    if parsed.serial == 0:
        errors.append(NikError("nik.serial", "NIK serial (digits 13-16) must not be 0000"))

    return errors


def is_valid_nik(
    nik: str,
    *,
    birth_date: date | None = None,
    sex: Sex | None = None,
    today: date | None = None,
) -> bool:
    """Shorthand for ``not validate_nik(...)``."""
    return not validate_nik(nik, birth_date=birth_date, sex=sex, today=today)


def mask_nik(nik: str) -> str:
    """Hide the middle of a NIK for display: ``"3515014101900001"`` gives ``"3515********0001"``.

    Whitespace is ignored. Anything that is not a 16-digit NIK is masked completely, since a
    mistyped NIK is just as personal as a correct one.
    """
    digits = normalise_nik(nik)
    if not _NIK.fullmatch(digits):
        return "*" * len(digits)
    return digits[:4] + "*" * 8 + digits[-4:]


def make_nik(region_district_code: str, birth_date: date, sex: Sex, serial: int) -> str:
    """Build a synthetic NIK that passes :func:`validate_nik`, for tests and demo data.

    ``region_district_code`` is a district code in any form ``regions.normalise`` accepts
    (``"35.15.14"`` or ``"351514"``); historical districts are allowed. ``serial`` is
    1-9999. The birth date must not be in the future, and should be less than 100 years
    ago for :meth:`ParsedNik.birth_date` to read the same century back.
    """
    region = regions.get(region_district_code)
    if region is None or region.level != "district":
        raise ValueError(f"{region_district_code!r} is not a known district code")
    if sex not in ("M", "F"):
        raise ValueError(f"sex must be 'M' or 'F', not {sex!r}")
    if not 1 <= serial <= 9999:
        raise ValueError(f"serial must be 1-9999, not {serial}")
    if birth_date > date.today():
        raise ValueError("birth date must not be in the future")
    day = birth_date.day + (FEMALE_DAY_OFFSET if sex == "F" else 0)
    return (
        region.code.replace(".", "")
        + f"{day:02d}{birth_date.month:02d}{birth_date.year % 100:02d}"
        + f"{serial:04d}"
    )
