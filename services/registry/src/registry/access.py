"""Scopes of the registry API and the region rule shared by its modules."""

from __future__ import annotations

from pilar_kernel.auth import Principal
from pilar_kernel.problems import NotFound

READ = "registry:read"
WRITE = "registry:write"
VERIFY = "registry:verify"
APPROVE = "registry:approve"
PROGRAMME_ADMIN = "registry:programme-admin"
PII_READ = "registry:pii"
AUDIT_READ = "registry:audit"

ALL_SCOPES = (READ, WRITE, VERIFY, APPROVE, PROGRAMME_ADMIN, PII_READ, AUDIT_READ)


def acting_user(principal: Principal) -> str:
    """The officer acting (``Principal.actor``): the token's ``user`` claim, else the client
    itself, case-folded. Every "who did it" column and every four-eyes comparison uses it, so
    ``QA.PREP`` and ``qa.prep`` are one person (the gateway accepts a user id in any case)."""
    return principal.actor


def same_user(a: str | None, b: str | None) -> bool:
    """Whether two recorded actors are one person (rows written before case-folding included)."""
    return a is not None and b is not None and a.casefold() == b.casefold()


def ensure_region(principal: Principal, regency_code: str | None, what: str = "person") -> None:
    """A regency office sees only its own region; anything else does not exist for it (404)."""
    if not principal.may_access_region(regency_code):
        raise NotFound(f"no such {what}")
