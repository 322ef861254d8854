"""Scopes of the disaster API and the region rules shared by its modules."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import or_

from pilar_kernel.auth import Principal, require_scopes
from pilar_kernel.problems import Forbidden, NotFound

READ = "disaster:read"  # incidents, assessments, evacuation, stock, statistics
WRITE = "disaster:write"  # BPBD, regency offices and Tagana: record incidents, assessments, evacuation, deployments, stock
APPROVE = "disaster:approve"  # approve stock requests (never one's own)
ADMIN = "disaster:admin"  # catalogue, warehouses, minimum levels, volunteers' register

ALL_SCOPES = (READ, WRITE, APPROVE, ADMIN)


def acting_user(principal: Principal) -> str:
    """The officer acting: the kernel's ``Principal.actor`` (the token's ``user`` claim, else the
    client itself, case-folded). The gateway accepts a user name in any case, so ``QA.PREP`` and
    ``qa.prep`` are one officer: four-eyes comparisons and the "who did it" columns use it."""
    return principal.actor


def same_actor(a: str | None, b: str | None) -> bool:
    """Whether two recorded actors are one officer (records written before folding keep their case)."""
    return a is not None and b is not None and a.casefold() == b.casefold()


def in_region(column, region: str):
    """SQL: ``column`` is the region ``region`` or lies inside it (``35.08`` and ``35.08.*``)."""
    return or_(column == region, column.startswith(region + ".", autoescape=True))


def sees_any(principal: Principal, codes: Iterable[str | None]) -> bool:
    return any(principal.may_access_region(code) for code in codes)


def ensure_visible(principal: Principal, codes: Iterable[str | None], what: str) -> None:
    """A regency office sees only records touching its region; others do not exist for it (404)."""
    if not sees_any(principal, codes):
        raise NotFound(f"no such {what}")


def ensure_own_region(principal: Principal, code: str | None, what: str) -> None:
    """A regency office may only write records located in its own region."""
    if not principal.may_access_region(code):
        raise Forbidden(f"your token may only record {what} in {principal.region}")


def ensure_provincial(principal: Principal, what: str) -> None:
    if principal.region is not None:
        raise Forbidden(f"{what} is managed by the province: a regency/city token may not change it")


def require(*scopes: str):
    """Dependency: the principal, after checking it holds every scope (a FastAPI ``Depends``)."""
    return require_scopes(*scopes)
