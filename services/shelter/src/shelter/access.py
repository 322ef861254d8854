"""Who may do what: scopes, the staff record behind a token, and need-to-know on cases.

A case is visible to its assigned caseworker and to the supervisors of its shelter, and to
no one else: for everyone else it does not exist (404), and the refused attempt is audited.
Authorisation takes three things together: the scope in the token, an active staff record
for the token's ``user`` claim whose role matches that scope, and the case's assignment.

User ids are compared case-insensitively: the gateway takes a user name in any case, so
``QA.PREP`` and ``qa.prep`` are one staff member (``Principal.actor``), and every "who did
it" column holds the staff record's own id, whatever case the token used.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select

from pilar_kernel.auth import Principal, PrincipalDep
from pilar_kernel.db import SessionDep
from pilar_kernel.problems import Forbidden, NotFound

from . import audit
from .models import Case, Staff

CASEWORKER = "shelter:caseworker"
SUPERVISOR = "shelter:supervisor"
ANALYST = "shelter:analyst"
ADMIN = "shelter:admin"
ALL_SCOPES = (CASEWORKER, SUPERVISOR, ANALYST, ADMIN)

ROLE_SCOPE = {"caseworker": CASEWORKER, "supervisor": SUPERVISOR}


@dataclass(frozen=True)
class Actor:
    """A staff member acting through a token."""

    principal: Principal
    user_id: str
    role: str
    shelter_id: uuid.UUID
    sessions: async_sessionmaker  # to audit refused access outside the request's transaction

    @property
    def is_supervisor(self) -> bool:
        return self.role == "supervisor"

    def may_access(self, case: Case) -> bool:
        if self.is_supervisor:
            return case.shelter_id == self.shelter_id
        # A caseworker who moved to another shelter no longer sees the cases left behind.
        return case.caseworker_id == self.user_id and case.shelter_id == self.shelter_id

    def require_supervisor(self, what: str) -> None:
        if not self.is_supervisor:
            raise Forbidden(f"only a supervisor of the case's shelter may {what}", required_scopes=[SUPERVISOR])


async def get_actor(request: Request, principal: PrincipalDep, session: SessionDep) -> Actor:
    if not (principal.has(CASEWORKER) or principal.has(SUPERVISOR)):
        raise Forbidden(f"missing scope: {CASEWORKER} or {SUPERVISOR}", required_scopes=[CASEWORKER, SUPERVISOR])
    staff = await find_staff(session, principal.actor) if principal.claims.get("user") else None
    if staff is None or not staff.active:
        raise Forbidden("the token's user is not active staff of a shelter")
    if not principal.has(ROLE_SCOPE[staff.role]):
        raise Forbidden(f"a {staff.role} acts with the {ROLE_SCOPE[staff.role]} scope", required_scopes=[ROLE_SCOPE[staff.role]])
    return Actor(principal=principal, user_id=staff.user_id, role=staff.role, shelter_id=staff.shelter_id,
                 sessions=request.app.state.session_factory)


ActorDep = Annotated[Actor, Depends(get_actor)]


def same_user(a: str | None, b: str | None) -> bool:
    """One person, whatever the case of the ids."""
    return a is not None and b is not None and a.casefold() == b.casefold()


async def find_staff(session, user_id: str, *, for_update: bool = False) -> Staff | None:
    """The staff record of ``user_id`` in any case (ids are ASCII: lower() is case-folding)."""
    stmt = select(Staff).where(func.lower(Staff.user_id) == user_id.casefold())
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.exec(stmt)).first()


async def load_case(session, actor: Actor, case_id: uuid.UUID, *, action: str, for_update: bool = False) -> Case:
    """The case if ``actor`` may see it; 404 otherwise (and the attempt is audited).

    With ``for_update`` the row is locked, and access is checked again on the locked row,
    in case a transfer committed in between.
    """
    case = (await session.exec(select(Case).where(Case.id == case_id))).first()
    if case is not None and for_update and actor.may_access(case):
        stmt = select(Case).where(Case.id == case_id).with_for_update().execution_options(populate_existing=True)
        case = (await session.exec(stmt)).one()
    if case is None:
        raise NotFound("no such case")
    if not actor.may_access(case):
        await audit.record_denied(actor, case, action)
        raise NotFound("no such case")
    return case
