"""Rules of programmes and enrolments, with no I/O.

* :class:`ProgrammeRules` is the eligibility part of a catalogue entry, stored as JSON in the
  ``programme`` table and edited through the API (so figures from the domain reference stay
  data, never constants).
* :func:`check_eligibility` evaluates a person's facts against a programme and returns
  **every** rule that fails (an empty list means eligible).
* The enrolment lifecycle is a small state machine; :func:`next_status` refuses illegal moves.

Lifecycle::

    proposed  --verify-->   verified  --approve-->  active  --suspend-->  suspended  --resume-->  active
    proposed | verified                 --reject-->  rejected   (with a reason)
    proposed | verified | active | suspended  --end-->  ended   (death, graduation, moved, ...)

An approval makes the enrolment ``active`` at once: "approved" *is* payable, from
``active_from`` (the approval date unless the approver names a later one). Proposed and
verified enrolments can also be ended, which is what a death, move or merge does to them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pilar_kernel import regions

from ..persons.domain import DISABILITY_SEVERITIES, PPKS_CATEGORIES

# -- the catalogue ------------------------------------------------------------------------

CODE_PATTERN = r"^[A-Z][A-Z0-9_]{1,31}$"


class ProgrammeRules(BaseModel):
    """Eligibility rules of one programme. Every rule left at its default does not apply.

    ``provincial`` (no double provincial aid) is not here: it is a fact of the programme
    itself (``Programme.provincial``), because the rule reads it on *both* programmes.
    """

    model_config = ConfigDict(extra="forbid")

    min_age: int | None = Field(default=None, ge=0, le=150, description="minimum age in whole years")
    min_age_months: int | None = Field(default=None, ge=0, le=1800, description="minimum age in whole months (ASPD: 6)")
    max_age: int | None = Field(default=None, ge=0, le=150, description="maximum age in whole years, inclusive (60 = until the 61st birthday)")
    max_decile: int | None = Field(default=None, ge=1, le=10, description="highest DTSEN decile admitted (1 = poorest)")
    disability_severities: list[str] = Field(default_factory=list, description="the person's disability severity must be one of these")
    ppks_any: list[str] = Field(default_factory=list, description="the person must have at least one of these PPKS categories")
    regions: list[str] = Field(default_factory=list, description="regency/city codes (35.xx) where the programme runs; empty = all of Jawa Timur")
    one_per_household: bool = Field(default=False, description="at most one member of a KK in the programme at a time")
    exclusive_with: list[str] = Field(default_factory=list, description="programme codes a beneficiary may not hold at the same time (applies both ways)")
    requires_occupation: bool = Field(default=False, description="occupation and employer must be recorded (BLT DBHCHT: tobacco-factory workers)")
    occupation_keywords: list[str] = Field(
        default_factory=list,
        description="when not empty, the occupation or employer must contain one of these words (case-insensitive)",
    )

    @field_validator("disability_severities")
    @classmethod
    def _severities(cls, v: list[str]) -> list[str]:
        unknown = [s for s in v if s not in DISABILITY_SEVERITIES]
        if unknown:
            raise ValueError(f"unknown disability severities {unknown}; use {list(DISABILITY_SEVERITIES)}")
        return sorted(set(v))

    @field_validator("ppks_any")
    @classmethod
    def _ppks(cls, v: list[str]) -> list[str]:
        unknown = [c for c in v if c not in PPKS_CATEGORIES]
        if unknown:
            raise ValueError(f"unknown PPKS categories {unknown}")
        return sorted(set(v))

    @field_validator("regions")
    @classmethod
    def _regions(cls, v: list[str]) -> list[str]:
        out = []
        for code in v:
            region = regions.get(code)
            if region is None or region.level != "regency" or not region.current or not regions.is_jatim(code):
                raise ValueError(f"{code!r} is not a current regency/city code of Jawa Timur (35.01-35.79)")
            out.append(region.code)
        return sorted(set(out))

    @field_validator("exclusive_with")
    @classmethod
    def _codes(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if not re.fullmatch(CODE_PATTERN, c)]
        if bad:
            raise ValueError(f"not programme codes: {bad}")
        return sorted(set(v))

    @field_validator("occupation_keywords")
    @classmethod
    def _keywords(cls, v: list[str]) -> list[str]:
        return sorted({w.strip().lower() for w in v if w.strip()})

    @model_validator(mode="after")
    def _age_range(self) -> "ProgrammeRules":
        if self.min_age is not None and self.max_age is not None and self.min_age > self.max_age:
            raise ValueError("min_age must not exceed max_age")
        if self.min_age_months is not None and self.max_age is not None and self.min_age_months > 12 * (self.max_age + 1):
            raise ValueError("min_age_months must not exceed max_age")
        return self


@dataclass(frozen=True)
class ProgrammeFacts:
    """What eligibility needs to know about a programme (built from a catalogue row)."""

    code: str
    name: str
    rules: ProgrammeRules
    provincial: bool = False
    active: bool = True


@dataclass(frozen=True)
class PersonFacts:
    """What eligibility needs to know about a person (built from a registry record)."""

    status: str = "active"
    birth_date: date | None = None
    decile: int | None = None
    disability_severity: str | None = None
    ppks: Sequence[str] = field(default_factory=tuple)
    regency_code: str | None = None
    occupation: str | None = None
    employer: str | None = None

    @classmethod
    def of(cls, person: Any) -> "PersonFacts":
        return cls(**{name: getattr(person, name) for name in cls.__dataclass_fields__})


# -- eligibility --------------------------------------------------------------------------


def age_in_years(birth: date, today: date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def age_in_months(birth: date, today: date) -> int:
    return (today.year - birth.year) * 12 + today.month - birth.month - (today.day < birth.day)


def _fail(field_name: str, message: str, rule: str) -> dict[str, str]:
    return {"field": field_name, "message": message, "rule": "eligibility." + rule}


def check_eligibility(
    person: PersonFacts,
    programme: ProgrammeFacts,
    *,
    today: date,
    other_active_enrolments: Iterable[tuple[str, bool]] = (),
    household_has_active: bool = False,
) -> list[dict[str, str]]:
    """Every rule of ``programme`` that ``person`` fails, as ``{field, message, rule}``.

    ``field`` is ``programme_code`` for rules about the person's other aid, otherwise the
    person's fact that fails (``birth_date``, ``decile``...). ``other_active_enrolments`` are
    the ``(code, provincial)`` pairs of the person's other current enrolments (active or
    suspended); ``household_has_active`` says another member of the person's KK currently
    holds this programme. A fact the rule needs but the registry lacks fails the rule.
    """
    rules, name = programme.rules, programme.name
    errors: list[dict[str, str]] = []

    if not programme.active:
        errors.append(_fail("programme_code", f"{name} is closed to new enrolments", "programme_active"))
    if person.status != "active":
        errors.append(_fail("status", f"the person's record is {person.status}, not active", "person_status"))

    # Age
    if rules.min_age is not None or rules.max_age is not None or rules.min_age_months is not None:
        if person.birth_date is None:
            errors.append(_fail("birth_date", f"{name} has an age rule and the person's birth date is unknown", "age_unknown"))
        else:
            years, months = age_in_years(person.birth_date, today), age_in_months(person.birth_date, today)
            if rules.min_age is not None and years < rules.min_age:
                errors.append(_fail("birth_date", f"{name} requires age {rules.min_age} or more; the person is {years}", "min_age"))
            if rules.min_age_months is not None and months < rules.min_age_months:
                errors.append(_fail("birth_date", f"{name} requires age {rules.min_age_months} months or more; the person is {months} months", "min_age_months"))
            if rules.max_age is not None and years > rules.max_age:
                errors.append(_fail("birth_date", f"{name} admits ages up to {rules.max_age}; the person is {years}", "max_age"))

    if rules.max_decile is not None:
        if person.decile is None:
            errors.append(_fail("decile", f"{name} requires DTSEN decile {rules.max_decile} or lower; the person has no decile", "max_decile"))
        elif person.decile > rules.max_decile:
            errors.append(_fail("decile", f"{name} requires DTSEN decile {rules.max_decile} or lower; the person is in decile {person.decile}", "max_decile"))

    if rules.disability_severities and person.disability_severity not in rules.disability_severities:
        have = person.disability_severity or "none recorded"
        errors.append(_fail("disability_severity", f"{name} requires a disability severity in {rules.disability_severities}; the person has {have}", "disability_severity"))

    if rules.ppks_any and not set(rules.ppks_any) & set(person.ppks or ()):
        errors.append(_fail("ppks", f"{name} requires one of the PPKS categories {rules.ppks_any}", "ppks_any"))

    if rules.regions and person.regency_code not in rules.regions:
        where = person.regency_code or "an unknown regency"
        errors.append(_fail("regency_code", f"{name} runs only in {rules.regions}; the person lives in {where}", "regions"))

    if rules.requires_occupation:
        if not person.occupation:
            errors.append(_fail("occupation", f"{name} requires the person's occupation to be recorded", "requires_occupation"))
        if not person.employer:
            errors.append(_fail("employer", f"{name} requires the person's employer to be recorded", "requires_occupation"))
    if rules.occupation_keywords and (person.occupation or person.employer):
        text = f"{person.occupation or ''} {person.employer or ''}".lower()
        if not any(word in text for word in rules.occupation_keywords):
            errors.append(_fail("occupation", f"{name} is for workers matching {rules.occupation_keywords}; the recorded occupation and employer do not", "occupation_keywords"))

    if rules.one_per_household and household_has_active:
        errors.append(_fail("programme_code", f"{name} is one per family card (KK) and another member already receives it", "one_per_household"))

    others = [(code, provincial) for code, provincial in other_active_enrolments if code != programme.code]
    for code in sorted({code for code, _ in others if code in rules.exclusive_with}):
        errors.append(_fail("programme_code", f"{name} cannot be held together with {code}, which the person receives", "exclusive_with"))
    if programme.provincial:
        provincial = sorted({code for code, is_provincial in others if is_provincial})
        if provincial:
            errors.append(_fail("programme_code", f"no double provincial aid: the person already receives {', '.join(provincial)}", "no_double_provincial_aid"))
    return errors


# -- lifecycle ----------------------------------------------------------------------------

PROPOSED, VERIFIED, ACTIVE, SUSPENDED, REJECTED, ENDED = "proposed", "verified", "active", "suspended", "rejected", "ended"
STATUSES = (PROPOSED, VERIFIED, ACTIVE, SUSPENDED, REJECTED, ENDED)
OPEN = (PROPOSED, VERIFIED, ACTIVE, SUSPENDED)
"""At most one enrolment per person and programme may be in these (a partial unique index)."""
CURRENT = (ACTIVE, SUSPENDED)
"""The person holds the programme: what exclusivity, double aid and one-per-KK look at."""

END_REASONS = ("death", "graduation", "moved", "no_longer_eligible", "other")
"""Reasons a client may give; ``merged`` is set by the registry when records merge."""
SYSTEM_END_REASONS = (*END_REASONS, "merged")

_TRANSITIONS: dict[str, dict[str, str]] = {
    "verify": {PROPOSED: VERIFIED},
    "approve": {VERIFIED: ACTIVE},
    "reject": {PROPOSED: REJECTED, VERIFIED: REJECTED},
    "suspend": {ACTIVE: SUSPENDED},
    "resume": {SUSPENDED: ACTIVE},
    "end": {status: ENDED for status in OPEN},
}
ACTIONS = tuple(_TRANSITIONS)


class IllegalTransition(Exception):
    def __init__(self, action: str, status: str) -> None:
        allowed = sorted(s for s, _ in _TRANSITIONS.get(action, {}).items())
        super().__init__(f"cannot {action} an enrolment that is {status}" + (f" (only when {' or '.join(allowed)})" if allowed else ""))
        self.action, self.status = action, status


def next_status(status: str, action: str) -> str:
    """The status after ``action``; raises :class:`IllegalTransition` when not allowed."""
    target = _TRANSITIONS.get(action, {}).get(status)
    if target is None:
        raise IllegalTransition(action, status)
    return target


def allowed_actions(status: str) -> list[str]:
    return [action for action, moves in _TRANSITIONS.items() if status in moves]
