"""Checks of the region codes the disaster records carry (current Jawa Timur codes only)."""

from __future__ import annotations

from pilar_kernel import regions
from pilar_kernel.problems import Problem


def invalid(errors: list[dict[str, str]]) -> Problem:
    fields = ", ".join(sorted({e["field"] for e in errors}))
    return Problem(f"invalid input: {fields}", status=422, type="validation-error", title="Invalid input", errors=errors)


def check_code(code: str | None, level: str, field: str, *, within: str | None = None) -> list[dict[str, str]]:
    """Errors of ``code`` as a current Jawa Timur region of ``level`` (inside ``within`` if given)."""
    if code is None:
        return []
    region = regions.get(code)
    if region is None or region.level != level or not region.current or not regions.is_jatim(code):
        return [{"field": field, "message": f"not a current {level} code of Jawa Timur", "rule": f"region.{level}"}]
    if within is not None and not (region.code + ".").startswith(within + "."):
        return [{"field": field, "message": f"not inside {within}", "rule": "region.within"}]
    return []


def address(village_code: str | None, district_code: str | None, field_prefix: str = "") -> tuple[str, str, str | None]:
    """(regency, district, village) from a village code or, lacking one, a district code."""
    if village_code:
        errors = check_code(village_code, "village", field_prefix + "village_code")
        if errors:
            raise invalid(errors)
        village = regions.normalise(village_code)
        parts = village.split(".")
        return ".".join(parts[:2]), ".".join(parts[:3]), village
    if district_code:
        errors = check_code(district_code, "district", field_prefix + "district_code")
        if errors:
            raise invalid(errors)
        district = regions.normalise(district_code)
        return ".".join(district.split(".")[:2]), district, None
    raise invalid([{"field": field_prefix + "village_code", "message": "give the village (or at least the district)", "rule": "region.required"}])
