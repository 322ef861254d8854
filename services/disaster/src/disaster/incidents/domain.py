"""Rules of incidents, with no I/O: disaster kinds and the status scheme.

Status follows the national scheme: siaga darurat (alert) → tanggap darurat (emergency
response) → transisi darurat ke pemulihan (transition) → pemulihan (recovery) → closed.
An incident may be declared straight into emergency response, a status may be extended
under a new decree, and any open incident may be closed (a false alarm ends at alert).
"""

from __future__ import annotations

from datetime import date

CATEGORIES = ("natural", "non_natural", "social")
# Hazards by UU 24/2007 category. Fire appears twice: forest and land fires are natural,
# settlement and building fires non-natural.
HAZARDS: dict[str, tuple[str, ...]] = {
    "natural": ("flood", "flash_flood", "landslide", "eruption", "earthquake", "tsunami", "tornado", "drought",
                "extreme_weather", "abrasion", "fire"),
    "non_natural": ("fire", "epidemic", "technology_failure", "pollution", "other"),
    "social": ("conflict", "terror", "other"),
}
STATUSES = ("alert", "emergency_response", "transition", "recovery", "closed")
INITIAL_STATUSES = ("alert", "emergency_response")
# Statuses declared by a decree (SK): these need its number and the declaring authority.
DECREED = ("alert", "emergency_response", "transition")
AUTHORITIES = ("regent", "mayor", "governor", "president", "head_of_agency")


def check_kind(category: str, hazard: str) -> list[dict[str, str]]:
    if category not in HAZARDS:
        return [{"field": "category", "message": f"one of {', '.join(CATEGORIES)}", "rule": "incident.category"}]
    if hazard not in HAZARDS[category]:
        return [{"field": "hazard", "message": f"a {category} disaster is one of: {', '.join(HAZARDS[category])}", "rule": "incident.hazard"}]
    return []


def can_move(current: str, target: str) -> bool:
    """Forward one step, the same status again (an extension), or closed from anywhere open."""
    if current == "closed":
        return False
    if target == current or target == "closed":
        return True
    return STATUSES.index(target) == STATUSES.index(current) + 1


def check_decree(status: str, decree_number: str | None, authority: str | None, effective_from: date,
                 effective_until: date | None) -> list[dict[str, str]]:
    errors = []
    if status in DECREED and not decree_number:
        errors.append({"field": "decree_number", "message": f"a {status} status is declared by a decree: give its number", "rule": "status.decree"})
    if status in DECREED and not authority:
        errors.append({"field": "authority", "message": "who declared the status", "rule": "status.authority"})
    if effective_until is not None and effective_until < effective_from:
        errors.append({"field": "effective_until", "message": "ends before it starts", "rule": "status.period"})
    return errors
