"""Rules of shelter cases, with no I/O: the case workflow, risk assessment, consents,
referrals, the child flag and small-count suppression for statistics.

Case workflow::

    intake ──assess──▶ assessment ──submit_plan──▶ plan_pending ──approve_plan──▶ in_service
                          ▲    ◀────────return_plan──────┘                          │
                          │                                                        │
                          │      assessment / in_service ──request_closure──▶ closure_pending
                          │                     ◀──reject_closure (back where it was)──┘
                          └──reopen── closed ◀──approve_closure──┘

The supervisor of the case's shelter approves or returns the plan and approves or rejects
the closure, and never their own submission (four eyes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

# -- vocabularies -------------------------------------------------------------------------

SHELTER_KINDS = ("women", "children")
STAFF_ROLES = ("caseworker", "supervisor")
REFERRAL_SOURCES = ("upt_ppa", "police", "hospital", "hotline", "walk_in")
VIOLENCE_TYPES = ("physical", "psychological", "sexual", "neglect", "exploitation", "trafficking")
PERPETRATOR_RELATIONSHIPS = (
    "spouse", "former_spouse", "partner", "parent", "step_parent", "sibling", "other_relative",
    "employer", "teacher", "acquaintance", "stranger", "other", "unknown",
)
SERVICE_KINDS = ("medical", "psychosocial", "legal_aid", "education", "safe_housing")
CONSENT_KINDS = ("services", "partner_sharing", "registry_enrolment")
CONSENT_GIVERS = ("survivor", "guardian", "legal_representative")
PARTNER_KINDS = ("upt_ppa", "police", "hospital", "lks", "legal_aid", "other")
CLOSURE_REASONS = ("reintegrated", "referred", "other")
RISK_LEVELS = ("low", "medium", "high", "critical")

ADULT_AGE = 18


class RuleBroken(ValueError):
    """A domain rule refused the change; ``field`` and ``rule`` name it for the client."""

    def __init__(self, field: str, message: str, rule: str) -> None:
        super().__init__(message)
        self.field, self.message, self.rule = field, message, rule


# -- survivor -----------------------------------------------------------------------------


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def is_child(*, birth_date: date | None, age_estimate: int | None, on: date) -> bool:
    """Under 18 on the intake day; a birth date wins over an estimated age."""
    if birth_date is not None:
        if birth_date > on:
            raise RuleBroken("survivor.birth_date", "cannot be in the future", "survivor.birth_date")
        return age_on(birth_date, on) < ADULT_AGE
    if age_estimate is None:
        raise RuleBroken("survivor.birth_date", "give a birth date or an estimated age", "survivor.age")
    return age_estimate < ADULT_AGE


def check_placement(*, child: bool, sex: str, shelter_kind: str) -> None:
    """Children go to a children's shelter; adults to a women's shelter, which takes women only."""
    if child and shelter_kind != "children":
        raise RuleBroken("shelter_id", "a child survivor belongs in a children's shelter", "placement.child")
    if not child:
        if shelter_kind != "women":
            raise RuleBroken("shelter_id", "an adult survivor belongs in a women's shelter", "placement.adult")
        if sex != "F":
            raise RuleBroken("survivor.sex", "the shelters take women and children; an adult survivor must be a woman", "placement.women")


def ppks_categories(child: bool, violence_types: set[str] | list[str]) -> list[str]:
    """The coarse PPKS categories events carry for a case."""
    out = ["anak_korban_tindak_kekerasan" if child else "korban_tindak_kekerasan"]
    if "trafficking" in violence_types:
        out.append("korban_trafficking")
    return out


# -- workflow -----------------------------------------------------------------------------

INTAKE, ASSESSMENT, PLAN_PENDING, IN_SERVICE, CLOSURE_PENDING, CLOSED = (
    "intake", "assessment", "plan_pending", "in_service", "closure_pending", "closed",
)
STATUSES = (INTAKE, ASSESSMENT, PLAN_PENDING, IN_SERVICE, CLOSURE_PENDING, CLOSED)
OPEN_STATUSES = tuple(s for s in STATUSES if s != CLOSED)

_TRANSITIONS: dict[str, dict[str, str]] = {
    "assess": {INTAKE: ASSESSMENT, ASSESSMENT: ASSESSMENT, PLAN_PENDING: PLAN_PENDING, IN_SERVICE: IN_SERVICE},
    "submit_plan": {ASSESSMENT: PLAN_PENDING},
    "approve_plan": {PLAN_PENDING: IN_SERVICE},
    "return_plan": {PLAN_PENDING: ASSESSMENT},
    "request_closure": {ASSESSMENT: CLOSURE_PENDING, IN_SERVICE: CLOSURE_PENDING},
    "approve_closure": {CLOSURE_PENDING: CLOSED},
    "reject_closure": {CLOSURE_PENDING: ""},  # back to the status the request came from
    "reopen": {CLOSED: ASSESSMENT},
}

SUPERVISOR_ACTIONS = frozenset({"approve_plan", "return_plan", "approve_closure", "reject_closure"})


class IllegalTransition(ValueError):
    def __init__(self, action: str, status: str) -> None:
        super().__init__(f"cannot {action.replace('_', ' ')} a case in status {status}")
        self.action, self.status = action, status


def next_status(status: str, action: str, *, paused: str | None = None) -> str:
    target = _TRANSITIONS[action].get(status)
    if target is None:
        raise IllegalTransition(action, status)
    return target or (paused or IN_SERVICE)


def allowed_actions(status: str) -> list[str]:
    return [action for action, moves in _TRANSITIONS.items() if status in moves and action != "assess"]


def check_four_eyes(actor: str, submitted_by: str, what: str) -> None:
    # Case-folded: QA.PREP and qa.prep are one person (the gateway accepts any case).
    if actor.casefold() == submitted_by.casefold():
        raise RuleBroken("user", f"the {what} must be decided by another staff member than the one who submitted it", f"{what}.four_eyes")


# Care records may be added while the case is open; services only once the plan is approved.
def check_open(status: str, what: str) -> None:
    if status == CLOSED:
        raise IllegalTransition(f"add {what} to", status)


def check_services_allowed(status: str) -> None:
    if status != IN_SERVICE:
        raise IllegalTransition("record a service on", status)


# -- risk assessment ----------------------------------------------------------------------


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    weight: int
    red_flag: bool = False  # "yes" alone makes the risk critical


QUESTIONNAIRE_VERSION = "risk-v1"
QUESTIONS: tuple[Question, ...] = (
    Question("threat_to_kill", "Has the perpetrator threatened to kill the survivor or the children?", 3, red_flag=True),
    Question("strangulation", "Has the perpetrator ever choked or strangled the survivor?", 3, red_flag=True),
    Question("self_harm", "Has the survivor thought about or attempted self-harm or suicide?", 3, red_flag=True),
    Question("weapon", "Has the perpetrator used or threatened a weapon?", 3),
    Question("escalation", "Has the violence become more frequent or more severe?", 2),
    Question("perpetrator_access", "Does the perpetrator know where the survivor is, or have access to her?", 2),
    Question("sexual_violence", "Has there been sexual violence?", 2),
    Question("children_at_risk", "Are children in the household at risk of harm?", 2),
    Question("pregnant", "Is the survivor pregnant or recently gave birth?", 1),
    Question("isolation", "Is the survivor cut off from family and friends?", 1),
    Question("economic_dependence", "Does the survivor depend on the perpetrator for money or housing?", 1),
    Question("substance_abuse", "Does the perpetrator abuse alcohol or drugs?", 1),
)
ANSWERS = ("yes", "no", "unknown")
# Score thresholds for medium, high and critical (a red flag is critical on its own).
THRESHOLDS = ((10, "critical"), (6, "high"), (3, "medium"))


def assess_risk(answers: dict[str, str]) -> tuple[str, int]:
    """(level, score) from the answers to every question; unknown counts as no."""
    ids = {q.id for q in QUESTIONS}
    unknown = sorted(set(answers) - ids)
    if unknown:
        raise RuleBroken("answers", f"unknown questions: {', '.join(unknown)}", "risk.unknown_question")
    missing = [q.id for q in QUESTIONS if q.id not in answers]
    if missing:
        raise RuleBroken("answers", f"answer every question; missing: {', '.join(missing)}", "risk.unanswered")
    bad = sorted(k for k, v in answers.items() if v not in ANSWERS)
    if bad:
        raise RuleBroken("answers", f"answer yes, no or unknown; not so for: {', '.join(bad)}", "risk.answer")
    score = sum(q.weight for q in QUESTIONS if answers[q.id] == "yes")
    if any(q.red_flag and answers[q.id] == "yes" for q in QUESTIONS):
        return "critical", score
    for threshold, level in THRESHOLDS:
        if score >= threshold:
            return level, score
    return "low", score


# -- consents -----------------------------------------------------------------------------


def check_consent_giver(child: bool, given_by: str) -> None:
    if child and given_by == "survivor":
        raise RuleBroken("given_by", "a child's consent is given by a guardian or legal representative", "consent.child")


# Which consent each use of the survivor's data needs.
CONSENT_FOR = {"service": "services", "referral": "partner_sharing", "economic_support": "registry_enrolment"}


def require_consent(consents: dict[str, bool], use: str) -> None:
    kind = CONSENT_FOR[use]
    if not consents.get(kind):
        raise RuleBroken("consent", f"no recorded consent for {kind.replace('_', ' ')}", f"consent.{kind}")


# -- referrals to partners ----------------------------------------------------------------

IN_PROGRESS, ACCEPTED, REJECTED, DONE, REVOKED = "in_progress", "accepted", "rejected", "done", "revoked"
REFERRAL_STATUSES = (IN_PROGRESS, ACCEPTED, REJECTED, DONE, REVOKED)
REFERRAL_OPEN = (IN_PROGRESS, ACCEPTED)
_REFERRAL_MOVES = {
    "accept": {IN_PROGRESS: ACCEPTED},
    "reject": {IN_PROGRESS: REJECTED},
    "complete": {ACCEPTED: DONE},
    "revoke": {IN_PROGRESS: REVOKED, ACCEPTED: REVOKED},
}


def next_referral_status(status: str, action: str) -> str:
    target = _REFERRAL_MOVES[action].get(status)
    if target is None:
        raise IllegalTransition(f"{action} a referral", status)
    return target


# -- statistics ---------------------------------------------------------------------------

def suppress(count: int, threshold: int = 5) -> int | str:
    """A count below the threshold is shown as "<5" (for 5) so that no survivor can be singled out."""
    return f"<{threshold}" if count < threshold else count
