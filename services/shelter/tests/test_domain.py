"""The shelter's pure rules: child flag and placement, risk levels, the workflow and referral
state machines, consents, small-count suppression."""

from __future__ import annotations

from datetime import date

import pytest

from shelter import domain
from shelter.domain import IllegalTransition, RuleBroken


def answers(**yes: str) -> dict[str, str]:
    out = {q.id: "no" for q in domain.QUESTIONS}
    out.update(yes)
    return out


def test_child_flag_from_birth_date_or_estimate():
    day = date(2026, 3, 1)
    assert domain.is_child(birth_date=date(2008, 3, 2), age_estimate=None, on=day)  # 17, a day before turning 18
    assert not domain.is_child(birth_date=date(2008, 3, 1), age_estimate=None, on=day)
    assert domain.is_child(birth_date=None, age_estimate=12, on=day)
    assert not domain.is_child(birth_date=date(1990, 1, 1), age_estimate=12, on=day)  # the birth date wins
    with pytest.raises(RuleBroken) as exc:
        domain.is_child(birth_date=None, age_estimate=None, on=day)
    assert exc.value.rule == "survivor.age"
    with pytest.raises(RuleBroken):
        domain.is_child(birth_date=date(2027, 1, 1), age_estimate=None, on=day)


@pytest.mark.parametrize(
    "child, sex, kind, rule",
    [
        (True, "M", "children", None),
        (True, "F", "women", "placement.child"),
        (False, "F", "women", None),
        (False, "F", "children", "placement.adult"),
        (False, "M", "women", "placement.women"),
    ],
)
def test_placement(child, sex, kind, rule):
    if rule is None:
        domain.check_placement(child=child, sex=sex, shelter_kind=kind)
    else:
        with pytest.raises(RuleBroken) as exc:
            domain.check_placement(child=child, sex=sex, shelter_kind=kind)
        assert exc.value.rule == rule


@pytest.mark.parametrize(
    "yes, level, score",
    [
        ({}, "low", 0),
        ({"isolation": "yes", "pregnant": "yes"}, "low", 2),
        ({"escalation": "yes", "pregnant": "yes"}, "medium", 3),
        ({"weapon": "yes", "escalation": "yes", "isolation": "yes"}, "high", 6),
        ({"weapon": "yes", "escalation": "yes", "perpetrator_access": "yes", "sexual_violence": "yes", "isolation": "unknown"}, "high", 9),
        ({"weapon": "yes", "escalation": "yes", "perpetrator_access": "yes", "sexual_violence": "yes", "isolation": "yes"}, "critical", 10),
        ({"self_harm": "yes"}, "critical", 3),  # a red flag alone
    ],
)
def test_risk_levels(yes, level, score):
    assert domain.assess_risk(answers(**yes)) == (level, score)


def test_risk_needs_every_known_question_answered_yes_no_or_unknown():
    partial = answers()
    del partial["weapon"]
    for bad, rule in [(partial, "risk.unanswered"), (answers(bogus="yes"), "risk.unknown_question"), (answers(weapon="maybe"), "risk.answer")]:
        with pytest.raises(RuleBroken) as exc:
            domain.assess_risk(bad)
        assert exc.value.rule == rule


def test_workflow_moves_and_refusals():
    s = domain.INTAKE
    for action, expected in [("assess", "assessment"), ("submit_plan", "plan_pending"), ("return_plan", "assessment"),
                             ("submit_plan", "plan_pending"), ("approve_plan", "in_service"), ("assess", "in_service"),
                             ("request_closure", "closure_pending")]:
        s = domain.next_status(s, action)
        assert s == expected
    assert domain.next_status(s, "reject_closure", paused="in_service") == "in_service"
    assert domain.next_status("closure_pending", "reject_closure", paused="assessment") == "assessment"
    assert domain.next_status(s, "approve_closure") == "closed"
    assert domain.next_status("closed", "reopen") == "assessment"
    for status, action in [("intake", "submit_plan"), ("assessment", "approve_plan"), ("in_service", "approve_closure"),
                           ("closed", "assess"), ("intake", "request_closure"), ("in_service", "reopen")]:
        with pytest.raises(IllegalTransition):
            domain.next_status(status, action)
    assert domain.allowed_actions("plan_pending") == ["approve_plan", "return_plan"]


def test_four_eyes_and_services_only_in_service():
    with pytest.raises(RuleBroken):
        domain.check_four_eyes("sup-1", "sup-1", "plan")
    domain.check_four_eyes("sup-1", "cw-1", "plan")
    with pytest.raises(IllegalTransition):
        domain.check_services_allowed("assessment")


def test_consents():
    with pytest.raises(RuleBroken) as exc:
        domain.check_consent_giver(True, "survivor")
    assert exc.value.rule == "consent.child"
    domain.check_consent_giver(True, "guardian")
    domain.check_consent_giver(False, "survivor")
    with pytest.raises(RuleBroken) as exc:
        domain.require_consent({"services": True, "partner_sharing": False}, "referral")
    assert exc.value.rule == "consent.partner_sharing"
    domain.require_consent({"registry_enrolment": True}, "economic_support")


def test_referral_states():
    assert domain.next_referral_status("in_progress", "accept") == "accepted"
    assert domain.next_referral_status("accepted", "complete") == "done"
    assert domain.next_referral_status("accepted", "revoke") == "revoked"
    for status, action in [("in_progress", "complete"), ("done", "revoke"), ("rejected", "accept"), ("revoked", "accept")]:
        with pytest.raises(IllegalTransition):
            domain.next_referral_status(status, action)


def test_ppks_and_suppression():
    assert domain.ppks_categories(True, ["sexual"]) == ["anak_korban_tindak_kekerasan"]
    assert domain.ppks_categories(False, {"trafficking"}) == ["korban_tindak_kekerasan", "korban_trafficking"]
    assert [domain.suppress(n) for n in (0, 1, 4, 5, 12)] == ["<5", "<5", "<5", 5, 12]
