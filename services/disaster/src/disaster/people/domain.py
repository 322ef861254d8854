"""Rules of the rapid assessment, with no I/O: who in a household receives household aid,
and how identity numbers become lookup keys."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from pilar_kernel import regions
from pilar_kernel.nik import normalise_nik
from pilar_kernel.pii import nik_hash

DAMAGE_LEVELS = ("none", "light", "moderate", "heavy")
CONDITIONS = ("unharmed", "injured", "missing", "dead")
VULNERABILITIES = ("elderly", "disabled", "child", "pregnant")
ADULT_AGE = 17  # the age at which Indonesians get a KTP


def kk_hash(kk_number: str, key: str) -> str:
    """The family card's lookup key: the platform NIK hash of ``KK:<digits>``, so it never
    equals the hash of a NIK with the same digits."""
    return nik_hash("KK:" + normalise_nik(kk_number), key)


def check_kk(kk_number: str, field: str) -> list[dict[str, str]]:
    digits = normalise_nik(kk_number)
    if len(digits) != 16 or not digits.isascii() or not digits.isdigit():
        return [{"field": field, "message": "a KK number is 16 digits", "rule": "kk.length"}]
    region = regions.get(digits[:6])
    if region is None or region.level != "district":
        return [{"field": field, "message": "a KK number starts with the code of the district that issued it", "rule": "kk.region"}]
    return []


def age_on(birth_date: date | None, day: date) -> int | None:
    if birth_date is None:
        return None
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


@dataclass(frozen=True)
class Member:
    person_id: uuid.UUID | None
    relationship: str | None
    birth_date: date | None
    vulnerabilities: tuple[str, ...] = ()
    condition: str = "unharmed"
    registry_head: bool = False


def recipient(members: list[Member], today: date) -> uuid.UUID | None:
    """Who receives household aid: a living member known to the registry, preferring the
    registry's head of family, then the head named in the assessment, then the eldest adult."""
    known = [m for m in members if m.person_id is not None and m.condition not in ("dead", "missing")]
    if not known:
        return None
    for pick in (lambda m: m.registry_head, lambda m: m.relationship == "head"):
        chosen = [m for m in known if pick(m)]
        if chosen:
            return chosen[0].person_id

    def adult(m: Member) -> bool:
        age = age_on(m.birth_date, today)
        return age >= ADULT_AGE if age is not None else "child" not in m.vulnerabilities

    adults = [m for m in known if adult(m)]
    if not adults:
        return None  # children do not receive cash for their household
    return sorted(adults, key=lambda m: m.birth_date or date.max)[0].person_id
