"""Rules of a return, with no I/O: the status machine, the relay route, the working-day
service standard, the repeat-claimant window and what a valid intake is."""

from __future__ import annotations

import calendar
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from pilar_kernel import regions
from pilar_kernel.nik import validate_nik

# -- statuses ---------------------------------------------------------------------------

REPORTED, IN_CARE, VERIFIED, SCHEDULED, IN_TRANSIT = "reported", "in_care", "verified", "scheduled", "in_transit"
RETURNED, REFUSED, UNRESOLVED = "returned", "refused", "unresolved"
STATUSES = (REPORTED, IN_CARE, VERIFIED, SCHEDULED, IN_TRANSIT, RETURNED, REFUSED, UNRESOLVED)
CLOSED = (RETURNED, REFUSED, UNRESOLVED)
# Not yet on the way: these count against the departure standard.
WAITING = (REPORTED, IN_CARE, VERIFIED, SCHEDULED)

_TRANSITIONS: dict[str, set[str]] = {
    REPORTED: {IN_CARE, UNRESOLVED},
    IN_CARE: {VERIFIED, REFUSED, UNRESOLVED},
    VERIFIED: {SCHEDULED, REFUSED, UNRESOLVED},
    SCHEDULED: {IN_TRANSIT, REFUSED, UNRESOLVED},
    # A home government can still refuse at a handover; an escort can lose the person.
    IN_TRANSIT: {RETURNED, REFUSED, UNRESOLVED},
    RETURNED: set(),
    REFUSED: set(),
    UNRESOLVED: set(),
}


def can_transition(current: str, target: str) -> bool:
    return target in _TRANSITIONS.get(current, set())


# -- vocabularies -----------------------------------------------------------------------

CAUSES = ("out_of_money", "job_scam", "suspected_trafficking", "other")
REFERRERS = ("satpol_pp", "police", "public", "local_dinsos", "other_province")
DOCUMENTS = ("ktp", "police_certificate", "none")
FACILITIES = ("shelter", "upt")
MODES = ("bus", "train", "ship")
REFUSERS = ("family", "home_government")
DIRECTIONS = ("outbound", "inbound")

TRAFFICKING, REPEAT = "suspected_trafficking", "repeat_claimant"


def flags_of(*, suspected_trafficking: bool, repeat_claimant: bool) -> list[str]:
    out = []
    if suspected_trafficking:
        out.append(TRAFFICKING)
    if repeat_claimant:
        out.append(REPEAT)
    return out


# -- time: Jawa Timur keeps Western Indonesia Time (UTC+7, no daylight saving) -----------

WIB = timezone(timedelta(hours=7), "WIB")


def local_date(moment: datetime) -> date:
    return moment.astimezone(WIB).date()


# -- working days and the service standard ----------------------------------------------

_MONTH_DAY = re.compile(r"^(\d{2})-(\d{2})$")


@dataclass(frozen=True)
class HolidayCalendar:
    """Days off besides weekends: dated ones (moving feasts, cuti bersama) and ones that
    fall on the same day every year (``MM-DD``, e.g. 08-17)."""

    dated: frozenset[date] = frozenset()
    yearly: frozenset[tuple[int, int]] = frozenset()

    @classmethod
    def of(cls, dated: Iterable[date] = (), yearly: Iterable[str] = ()) -> "HolidayCalendar":
        return cls(dated=frozenset(dated), yearly=frozenset(parse_month_day(md) for md in yearly))

    def is_holiday(self, day: date) -> bool:
        return day in self.dated or (day.month, day.day) in self.yearly

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and not self.is_holiday(day)


def parse_month_day(text: str) -> tuple[int, int]:
    match = _MONTH_DAY.match(text)
    if match is None:
        raise ValueError(f"a yearly holiday is written MM-DD, not {text!r}")
    month, day = int(match.group(1)), int(match.group(2))
    # 2024 is a leap year, so 02-29 is accepted.
    if not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(2024, month)[1]:
        raise ValueError(f"{text!r} is not a day of the year")
    return month, day


def next_working_day(day: date, holidays: HolidayCalendar) -> date:
    """The first working day strictly after ``day``."""
    nxt = day + timedelta(days=1)
    for _ in range(366):
        if holidays.is_working_day(nxt):
            return nxt
        nxt += timedelta(days=1)
    raise ValueError("no working day within a year: the holiday calendar is wrong")


def departure_due_on(intake_day: date, holidays: HolidayCalendar, *, first_sea_leg_on: date | None = None) -> date:
    """Last day on which the person should leave: the working day after intake.

    A first leg by ship leaves when the ship does, so its scheduled day moves the due day
    when it falls later (sea crossings follow ship schedules)."""
    due = next_working_day(intake_day, holidays)
    if first_sea_leg_on is not None and first_sea_leg_on > due:
        due = first_sea_leg_on
    return due


def is_overdue(status: str, due_on: date, today: date) -> bool:
    return status in WAITING and today > due_on


# -- the relay route ---------------------------------------------------------------------

JATIM = regions.JATIM

# Destination province -> the partner province that receives the first handover
# ("estafet"). A destination whose partner is itself gets a direct trip.
DEFAULT_RELAY_PARTNERS: dict[str, str] = {
    # Kalimantan via Kalimantan Selatan
    **{p: "63" for p in ("61", "62", "63", "64", "65")},
    # Sulawesi and the east (Maluku, Papua) via Sulawesi Selatan
    **{p: "73" for p in ("71", "72", "73", "74", "75", "76", "81", "82", "91", "92", "93", "94", "95", "96")},
    # Bali, NTB and NTT via Bali
    **{p: "51" for p in ("51", "52", "53")},
    # Jawa Tengah, DKI, Banten and Sumatra via Jawa Tengah
    **{p: "33" for p in ("33", "31", "36", "11", "12", "13", "14", "15", "16", "17", "18", "19", "21")},
    # DIY and Jawa Barat via DIY
    **{p: "34" for p in ("34", "32")},
}


@dataclass(frozen=True)
class Hop:
    seq: int
    from_code: str
    to_code: str
    receiving_office: str


def _office(code: str) -> str:
    region = regions.get(code)
    return f"Dinas Sosial {region.name if region else code}"


def plan_route(destination_code: str, partners: Mapping[str, str]) -> list[Hop]:
    """The legs from Jawa Timur to ``destination_code``, each ending in a handover.

    Jawa Timur destinations go straight to the regency office. Elsewhere the first leg
    ends at the partner province's Dinsos; a second leg goes on unless the destination is
    in the partner province itself. Raises ``ValueError`` when no partner is configured."""
    province = regions.province_of(destination_code)
    if province == JATIM:
        return [Hop(1, JATIM, destination_code, _office(regions.regency_of(destination_code) or destination_code))]
    partner = partners.get(province)
    if partner is None:
        raise ValueError(f"no relay partner is configured for province {province}")
    if partner == province:
        return [Hop(1, JATIM, destination_code, _office(province))]
    return [Hop(1, JATIM, partner, _office(partner)), Hop(2, partner, destination_code, _office(province))]


# -- repeat claimants --------------------------------------------------------------------


def months_before(day: date, months: int) -> date:
    """The same day ``months`` months earlier (clamped to the month's last day)."""
    total = day.year * 12 + day.month - 1 - months
    year, month = divmod(total, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def normalise_name(name: str) -> str:
    """Lower case, accents and punctuation removed, single spaces: the form used to spot repeats."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9 ]+", " ", text.lower())
    return " ".join(text.split())


# -- intake and destination checks -------------------------------------------------------


def error(field: str, message: str, rule: str) -> dict[str, str]:
    return {"field": field, "message": message, "rule": rule}


def check_destination(code: str, field: str = "destination_code") -> list[dict[str, str]]:
    region = regions.get(code)
    if region is None:
        return [error(field, "not a region code", "region.unknown")]
    if not region.current:
        return [error(field, "this region code is no longer in use", "region.historical")]
    if region.level == "province" and region.code == JATIM:
        return [error(field, "a Jawa Timur destination needs its regency or city", "region.regency")]
    return []


def check_intake(data: dict[str, Any], *, now: datetime) -> list[dict[str, str]]:
    """Every rule an intake report breaks (empty when valid). Fields are body paths."""
    errors: list[dict[str, str]] = []
    found = regions.get(data["found_place_code"])
    if found is None or found.level == "province" or not regions.is_jatim(found.code):
        errors.append(error("found_place_code", "where the person was found or received: a regency or finer code in Jawa Timur", "region.jatim"))
    if data["found_at"] > now:
        errors.append(error("found_at", "is in the future", "date.future"))
    birth = data.get("birth_date")
    if birth is not None and birth > local_date(now):
        errors.append(error("birth_date", "is in the future", "date.future"))
    origin = data.get("origin_code")
    if origin is not None and regions.get(origin) is None:
        errors.append(error("origin_code", "not a region code", "region.unknown"))
    destination = data.get("destination_code")
    if destination is not None:
        errors.extend(check_destination(destination))
    nik = data.get("nik")
    if nik is not None:
        for e in validate_nik(nik, birth_date=birth, sex=data.get("sex"), today=local_date(now)):
            errors.append(error("nik", e.message, e.rule))
    if data["direction"] == "inbound":
        sending = data.get("sending_province_code")
        region = regions.get(sending) if sending else None
        if region is None or region.level != "province" or region.code == JATIM:
            errors.append(error("sending_province_code", "an inbound return names the sending province (not Jawa Timur)", "inbound.sender"))
        if data["referred_by"] != "other_province":
            errors.append(error("referred_by", "an inbound return is referred by the sending province", "inbound.referrer"))
        if destination is not None and not regions.is_jatim(destination):
            errors.append(error("destination_code", "an inbound return goes to a Jawa Timur regency", "inbound.destination"))
    elif data.get("sending_province_code") is not None:
        errors.append(error("sending_province_code", "only inbound returns have a sending province", "outbound.sender"))
    return errors
