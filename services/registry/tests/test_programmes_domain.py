"""Eligibility rules and the enrolment lifecycle, as pure functions (no database)."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from registry.programmes import domain
from registry.programmes.domain import (
    IllegalTransition,
    PersonFacts,
    ProgrammeFacts,
    ProgrammeRules,
    age_in_months,
    age_in_years,
    check_eligibility,
    next_status,
)

TODAY = date(2026, 7, 15)

# A person who passes every rule of the programme below.
GOOD = PersonFacts(
    status="active",
    birth_date=date(1950, 1, 1),
    decile=2,
    disability_severity="severe",
    ppks=["lansia_telantar", "fakir_miskin"],
    regency_code="35.15",
    occupation="buruh linting pabrik rokok",
    employer="PT Kretek Sidoarjo",
)
STRICT = ProgrammeFacts(
    code="STRICT",
    name="Strict",
    provincial=True,
    rules=ProgrammeRules(
        min_age=60, min_age_months=720, max_age=80, max_decile=4, disability_severities=["severe", "bedridden"],
        ppks_any=["lansia_telantar"], regions=["35.15", "35.78"], one_per_household=True, exclusive_with=["PKE"],
        requires_occupation=True, occupation_keywords=["rokok", "tembakau"],
    ),
)


def rules_of(errors):
    return sorted(e["rule"].removeprefix("eligibility.") for e in errors)


def check(person=GOOD, programme=STRICT, **kw):
    kw.setdefault("today", TODAY)
    return check_eligibility(person, programme, **kw)


def with_(person=GOOD, **changes):
    return PersonFacts(**{**person.__dict__, **changes})


def test_a_person_meeting_every_rule_is_eligible():
    assert check() == []


def test_a_programme_without_rules_admits_an_active_person_with_no_facts():
    assert check(PersonFacts(), ProgrammeFacts(code="OPEN", name="Open", rules=ProgrammeRules())) == []


@pytest.mark.parametrize(
    "changes, field, rule",
    [
        ({"status": "deceased"}, "status", "person_status"),
        ({"birth_date": date(1970, 1, 1)}, "birth_date", "min_age"),  # 56: under 60 years (and 720 months)
        ({"birth_date": date(1940, 1, 1)}, "birth_date", "max_age"),  # 86
        ({"decile": 5}, "decile", "max_decile"),
        ({"decile": None}, "decile", "max_decile"),
        ({"disability_severity": "mild"}, "disability_severity", "disability_severity"),
        ({"disability_severity": None}, "disability_severity", "disability_severity"),
        ({"ppks": ["fakir_miskin"]}, "ppks", "ppks_any"),
        ({"regency_code": "35.16"}, "regency_code", "regions"),
        ({"regency_code": None}, "regency_code", "regions"),
        ({"employer": None}, "employer", "requires_occupation"),
        ({"occupation": "petani", "employer": "sawah sendiri"}, "occupation", "occupation_keywords"),
    ],
)
def test_each_person_rule_fails_alone(changes, field, rule):
    errors = check(with_(**changes))
    if rule == "min_age":  # 56 years is also under 720 months: both age rules fail, nothing else
        assert rules_of(errors) == ["min_age", "min_age_months"]
    else:
        assert rules_of(errors) == [rule], errors
    assert {e["field"] for e in errors} == {field}
    assert all(e["message"] for e in errors)


def test_missing_occupation_and_employer_are_two_failures():
    errors = check(with_(occupation=None, employer=None))
    assert sorted((e["field"], e["rule"]) for e in errors) == [
        ("employer", "eligibility.requires_occupation"),
        ("occupation", "eligibility.requires_occupation"),
    ]


def test_keywords_match_the_employer_too_and_ignore_case():
    assert check(with_(occupation="Buruh", employer="PT Gudang TEMBAKAU")) == []


def test_unknown_birth_date_fails_the_age_rule_once():
    errors = check(with_(birth_date=None))
    assert rules_of(errors) == ["age_unknown"] and errors[0]["field"] == "birth_date"


def test_closed_programme_fails_on_programme_code():
    closed = ProgrammeFacts(code="X", name="X", rules=ProgrammeRules(), active=False)
    errors = check(programme=closed)
    assert [(e["field"], e["rule"]) for e in errors] == [("programme_code", "eligibility.programme_active")]


def test_one_per_household():
    errors = check(household_has_active=True)
    assert [(e["field"], e["rule"]) for e in errors] == [("programme_code", "eligibility.one_per_household")]
    relaxed = ProgrammeFacts(code="R", name="R", rules=ProgrammeRules())
    assert check(programme=relaxed, household_has_active=True) == []


def test_exclusive_programmes_fail_per_programme_held():
    errors = check(other_active_enrolments=[("PKE", False), ("KUBE", False)])
    assert [(e["field"], e["rule"]) for e in errors] == [("programme_code", "eligibility.exclusive_with")]
    assert "PKE" in errors[0]["message"]


def test_no_double_provincial_aid():
    errors = check(other_active_enrolments=[("ASPD", True), ("KUBE", False)])
    assert rules_of(errors) == ["no_double_provincial_aid"]
    assert "ASPD" in errors[0]["message"] and "KUBE" not in errors[0]["message"]
    # A non-provincial programme does not care what else the person receives.
    local = ProgrammeFacts(code="LOCAL", name="Local", rules=ProgrammeRules(), provincial=False)
    assert check(programme=local, other_active_enrolments=[("ASPD", True), ("PKH_PLUS", True)]) == []


def test_the_programme_itself_among_current_enrolments_is_not_a_conflict():
    # Resuming a suspended enrolment: the person "holds" the programme being checked.
    assert check(other_active_enrolments=[("STRICT", True)]) == []


def test_every_failed_rule_is_listed_together():
    nobody = PersonFacts(status="moved_out", birth_date=date(2000, 1, 1), decile=9, disability_severity=None, ppks=[],
                         regency_code="35.01", occupation=None, employer=None)
    closed = ProgrammeFacts(code="STRICT", name="Strict", provincial=True, active=False, rules=STRICT.rules)
    errors = check(nobody, closed, other_active_enrolments=[("PKE", False), ("ASPD", True)], household_has_active=True)
    assert rules_of(errors) == sorted([
        "programme_active", "person_status", "min_age", "min_age_months", "max_decile", "disability_severity", "ppks_any",
        "regions", "requires_occupation", "requires_occupation", "one_per_household", "exclusive_with", "no_double_provincial_aid",
    ])
    old = check(with_(nobody, birth_date=date(1930, 1, 1)), closed)
    assert "max_age" in rules_of(old) and "min_age" not in rules_of(old)


@pytest.mark.parametrize(
    "birth, ok",
    [(date(1956, 7, 15), True), (date(1956, 7, 16), False), (date(1956, 3, 1), True)],
)
def test_min_age_counts_whole_years_up_to_the_birthday(birth, ok):
    pkh = ProgrammeFacts(code="PKH_PLUS", name="PKH Plus", rules=ProgrammeRules(min_age=70))
    assert (check(with_(birth_date=birth), pkh) == []) is ok


@pytest.mark.parametrize(
    "birth, ok",
    [
        (date(2026, 1, 15), True),   # 6 months exactly
        (date(2026, 1, 16), False),  # a day short of 6 months
        (date(1965, 7, 16), True),   # 60 years and 364 days: still 60
        (date(1965, 7, 15), False),  # 61st birthday
    ],
)
def test_aspd_age_window_six_months_to_sixty_years(birth, ok):
    aspd = ProgrammeFacts(code="ASPD", name="ASPD", rules=ProgrammeRules(min_age_months=6, max_age=60))
    assert (check(with_(birth_date=birth), aspd) == []) is ok


def test_age_helpers():
    assert age_in_years(date(2000, 2, 29), date(2026, 2, 28)) == 25
    assert age_in_years(date(2000, 2, 29), date(2026, 3, 1)) == 26
    assert age_in_months(date(2026, 1, 31), date(2026, 2, 28)) == 0
    assert age_in_months(date(2026, 1, 31), date(2026, 3, 31)) == 2


# -- the rules as data ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "rules, where",
    [
        ({"ppks_any": ["not_a_category"]}, "ppks_any"),
        ({"disability_severities": ["extreme"]}, "disability_severities"),
        ({"regions": ["33.01"]}, "regions"),  # Jawa Tengah
        ({"regions": ["35.15.14"]}, "regions"),  # a district, not a regency
        ({"exclusive_with": ["pkh plus"]}, "exclusive_with"),
        ({"min_age": 70, "max_age": 60}, None),
        ({"max_decile": 11}, "max_decile"),
        ({"unknown_rule": True}, "unknown_rule"),
    ],
)
def test_rules_refuse_nonsense(rules, where):
    with pytest.raises(ValidationError) as info:
        ProgrammeRules.model_validate(rules)
    if where:
        assert where in {str(err["loc"][0]) for err in info.value.errors() if err["loc"]}


def test_rules_normalise_lists():
    rules = ProgrammeRules(regions=["3578", "35.15", "35.15"], occupation_keywords=[" Rokok ", "rokok"], exclusive_with=["PKE", "PKE"])
    assert rules.regions == ["35.15", "35.78"]
    assert rules.occupation_keywords == ["rokok"]
    assert rules.exclusive_with == ["PKE"]


# -- lifecycle ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, action, target",
    [
        ("proposed", "verify", "verified"),
        ("verified", "approve", "active"),
        ("proposed", "reject", "rejected"),
        ("verified", "reject", "rejected"),
        ("active", "suspend", "suspended"),
        ("suspended", "resume", "active"),
        ("active", "end", "ended"),
        ("suspended", "end", "ended"),
        ("proposed", "end", "ended"),
        ("verified", "end", "ended"),
    ],
)
def test_legal_transitions(status, action, target):
    assert next_status(status, action) == target
    assert action in domain.allowed_actions(status)


LEGAL = {
    ("proposed", "verify"), ("verified", "approve"), ("proposed", "reject"), ("verified", "reject"), ("active", "suspend"),
    ("suspended", "resume"), ("active", "end"), ("suspended", "end"), ("proposed", "end"), ("verified", "end"),
}


@pytest.mark.parametrize("status", domain.STATUSES)
@pytest.mark.parametrize("action", domain.ACTIONS)
def test_everything_else_is_illegal(status, action):
    if (status, action) in LEGAL:
        return
    with pytest.raises(IllegalTransition) as info:
        next_status(status, action)
    assert status in str(info.value) and action in str(info.value)


def test_approval_cannot_skip_verification_and_closed_states_are_final():
    with pytest.raises(IllegalTransition):
        next_status("proposed", "approve")
    assert domain.allowed_actions("rejected") == [] and domain.allowed_actions("ended") == []
    assert set(domain.OPEN) == {"proposed", "verified", "active", "suspended"}


def test_unknown_action_is_illegal():
    with pytest.raises(IllegalTransition):
        next_status("active", "teleport")
