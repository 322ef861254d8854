"""Scopes of the disbursement API and the rules shared by its modules."""

from __future__ import annotations

from fastapi import Depends

from pilar_kernel.auth import Principal, PrincipalDep
from pilar_kernel.problems import Forbidden, NotFound

READ = "disbursement:read"  # rounds, payments, totals (a regency office: its region only)
PREPARE = "disbursement:prepare"  # programme officers: rounds, snapshots, payments, files, statements
APPROVE = "disbursement:approve"  # a second officer approves a round under a decree (SK)
PROGRAMME_ADMIN = "disbursement:programme-admin"  # programme settings and yearly budgets
BANK_CALLBACK = "disbursement:bank-callback"  # the paying bank reports results

ALL_SCOPES = (READ, PREPARE, APPROVE, PROGRAMME_ADMIN, BANK_CALLBACK)


def acting_user(principal: Principal) -> str:
    """The officer acting, case-folded (the kernel's ``Principal.actor``): four-eyes comparisons
    and "who did it" columns use it, so ``QA.PREP`` and ``qa.prep`` are one officer."""
    return principal.actor


def same_officer(a: str | None, b: str | None) -> bool:
    """Whether two recorded officers are one (rows written before ids were case-folded included)."""
    return a is not None and b is not None and a.casefold() == b.casefold()


def ensure_region(principal: Principal, regency_code: str | None, what: str) -> None:
    """A regency office sees only its own region; anything else does not exist for it (404)."""
    if not principal.may_access_region(regency_code):
        raise NotFound(f"no such {what}")


def provincial(*scopes: str):
    """Dependency: the principal, holding ``scopes`` and province-wide (rounds and money are the province's)."""

    async def dep(principal: PrincipalDep) -> Principal:
        principal.require(*scopes)
        if principal.region is not None:
            raise Forbidden("payment rounds are run by the province: a regency/city office's token may only read")
        return principal

    dep.pilar_scopes = scopes  # read by the OpenAPI document (security requirements)
    return Depends(dep)
