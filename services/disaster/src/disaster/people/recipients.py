"""Who receives a household's aid after the assessment: persons linked to the registry later,
and recipients named by hand.

The automatic choice (``service._choose_recipient``, rules in ``domain.recipient``) only sees
members matched to the registry. A member nobody knew at the assessment becomes known when
the registry opens a provisional record for them (its ``PersonRegistered`` names our
``affected_person_id`` and carries the NIK hash when the field team had a NIK); the consumer
in ``people.registry`` then links the member and calls :func:`announce_changed_recipients`,
which chooses again and, when the recipient changed, announces the household with its next
version, so the relief consumer in disbursement retries a held grant (and pays it once).

When no member can receive (children only, the adults missing or dead, nobody registered), an
officer names a registry person by hand: :func:`propose` (with a reason) and then
:func:`confirm` by *another* officer with the approve scope, because confirming releases
held emergency cash. The confirmed assignment overrides the automatic choice from then on.
Every proposal stays in ``recipient_assignment`` as the record of who named whom and why.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from pilar_kernel.auth import Principal
from pilar_kernel.problems import Conflict, Forbidden, NotFound

from .. import access
from ..incidents.models import Incident
from ..places import invalid
from . import service
from .models import AffectedHousehold, AffectedPerson, RecipientAssignment, RegistryPerson


def _now() -> datetime:
    return datetime.now(UTC)


def _actor(principal: Principal) -> str:
    """The acting officer, case-folded (``QA.PREP`` and ``qa.prep`` are one person)."""
    return principal.actor


# -- persons linked after the assessment --------------------------------------------------

# The affected person the registry opened a record for, unless that registry person is
# already recorded in the incident (then the record stays unlinked: two records, one person).
_LINK_AFFECTED = """
UPDATE affected_person a SET person_id = :p, version = a.version + 1, updated_at = now()
WHERE a.id = :a AND a.person_id IS NULL
  AND NOT EXISTS (SELECT 1 FROM affected_person b WHERE b.incident_id = a.incident_id AND b.person_id = :p)
RETURNING a.household_id
"""


async def link_affected(session: AsyncSession, affected_person_id: uuid.UUID, person_id: uuid.UUID) -> set[uuid.UUID]:
    """Link our affected-person record to the registry person opened for it; the households touched."""
    rows = (await session.execute(text(_LINK_AFFECTED), {"a": affected_person_id, "p": person_id})).all()
    return {r.household_id for r in rows if r.household_id is not None}


# Members the registry will still open a record for: it registers everyone reported alive or
# missing, nobody reported dead.
_WAITING = """
SELECT 1 FROM affected_person WHERE household_id = :h AND person_id IS NULL AND condition <> 'dead' LIMIT 1
"""


async def announce_changed_recipients(session: AsyncSession, household_ids: set[uuid.UUID]) -> int:
    """Choose each household's recipient again; announce those whose recipient changed (next
    version). Returns how many were announced. Locks each household row, in id order.

    A household waits until every member the registry will open a record for is linked: the
    registry hears of its members one event at a time, and choosing among the first ones
    linked would pay, say, the grandmother before the head of family was known (a paid grant
    is never reconsidered). The last member linked settles it."""
    announced = 0
    for household_id in sorted(household_ids, key=str):
        household = (await session.exec(
            select(AffectedHousehold).where(AffectedHousehold.id == household_id).with_for_update()
            .execution_options(populate_existing=True))).first()
        if household is None:
            continue
        if (await session.execute(text(_WAITING), {"h": household.id})).first() is not None:
            continue
        chosen = await service._choose_recipient(session, household)
        if chosen == household.recipient_person_id:
            continue
        household.recipient_person_id = chosen
        household.version += 1
        session.add(household)
        await session.flush()
        incident = (await session.exec(select(Incident).where(Incident.id == household.incident_id))).one()
        await service._household_event(session, incident, household)
        announced += 1
    return announced


async def confirmed_recipient(session: AsyncSession, household_id: uuid.UUID) -> uuid.UUID | None:
    """The registry person confirmed by hand as the household's recipient, if any."""
    return (await session.exec(select(RecipientAssignment.person_id).where(
        RecipientAssignment.household_id == household_id, RecipientAssignment.status == "confirmed"))).first()


# -- recipients named by hand -------------------------------------------------------------


async def _registry_person(session: AsyncSession, person_id: uuid.UUID) -> RegistryPerson:
    person = (await session.exec(select(RegistryPerson).where(RegistryPerson.person_id == person_id))).first()
    if person is None:
        raise invalid([{"field": "person_id", "message": "no such person in the registry (or not heard of yet)", "rule": "recipient.unknown"}])
    if person.status == "merged" and person.merged_into is not None:
        raise invalid([{"field": "person_id", "message": f"this record was merged into {person.merged_into}: name that one",
                        "rule": "recipient.merged"}])
    if person.status != "active":
        raise invalid([{"field": "person_id", "message": f"the registry records this person as {person.status}",
                        "rule": "recipient.inactive"}])
    return person


async def _household(session: AsyncSession, principal: Principal, household_id: uuid.UUID) -> tuple[AffectedHousehold, Incident]:
    household = await service.get_household(session, principal, household_id, for_update=True)
    incident = (await session.exec(select(Incident).where(Incident.id == household.incident_id))).one()
    access.ensure_own_region(principal, household.regency_code, "aid recipients")
    return household, incident


async def propose(session: AsyncSession, principal: Principal, household_id: uuid.UUID, person_id: uuid.UUID, reason: str) -> RecipientAssignment:
    """Name a registry person as the household's recipient; another officer must confirm.
    An open proposal for the household is withdrawn by the new one."""
    household, _ = await _household(session, principal, household_id)
    await _registry_person(session, person_id)
    if household.recipient_person_id == person_id:
        raise Conflict("this person already receives the household's aid", recipient_person_id=str(person_id))
    gone = (await session.exec(select(AffectedPerson.id).where(
        AffectedPerson.incident_id == household.incident_id, AffectedPerson.person_id == person_id,
        AffectedPerson.condition.in_(("dead", "missing"))))).first()
    if gone is not None:
        raise invalid([{"field": "person_id", "message": "this person is recorded dead or missing in the incident", "rule": "recipient.condition"}])
    user = _actor(principal)
    await session.execute(text(
        "UPDATE recipient_assignment SET status = 'withdrawn', decided_at = now() WHERE household_id = :h AND status = 'proposed'"),
        {"h": household.id})
    assignment = RecipientAssignment(household_id=household.id, person_id=person_id, reason=reason, proposed_by=user)
    session.add(assignment)
    await session.flush()
    return assignment


async def _assignment(session: AsyncSession, principal: Principal, assignment_id: uuid.UUID) -> RecipientAssignment:
    head = (await session.exec(select(RecipientAssignment.household_id).where(RecipientAssignment.id == assignment_id))).first()
    if head is None:
        raise NotFound("no such recipient assignment")
    await service.get_household(session, principal, head)  # 404 outside the caller's region
    return head


async def confirm(session: AsyncSession, principal: Principal, assignment_id: uuid.UUID) -> tuple[RecipientAssignment, AffectedHousehold]:
    """Confirm a proposal (four eyes): the person becomes the recipient, the household is
    announced with its next version, and held emergency cash is paid to them."""
    household_id = await _assignment(session, principal, assignment_id)
    household, incident = await _household(session, principal, household_id)  # lock order: household → assignment
    assignment = (await session.exec(select(RecipientAssignment).where(RecipientAssignment.id == assignment_id).with_for_update()
                                     .execution_options(populate_existing=True))).one()
    if assignment.status != "proposed":
        raise Conflict(f"this proposal is {assignment.status}", current_status=assignment.status,
                       errors=[{"field": "status", "message": f"already {assignment.status}", "rule": "recipient.decided"}])
    user = _actor(principal)
    if user == assignment.proposed_by.casefold():
        raise Forbidden("four-eyes rule: a recipient named by hand must be confirmed by another officer than the one who named them",
                        type="four-eyes", title="Four-eyes rule",
                        errors=[{"field": "user", "message": f"{user} proposed this recipient", "rule": "recipient.four_eyes"}])
    await _registry_person(session, assignment.person_id)  # still active
    await session.execute(text(
        "UPDATE recipient_assignment SET status = 'superseded', decided_at = now() WHERE household_id = :h AND status = 'confirmed'"),
        {"h": household.id})
    assignment.status, assignment.confirmed_by, assignment.decided_at = "confirmed", user, _now()
    session.add(assignment)
    await session.flush()
    household.recipient_person_id = assignment.person_id
    household.version += 1
    session.add(household)
    await session.flush()
    await service._household_event(session, incident, household)
    return assignment, household


async def list_for(session: AsyncSession, principal: Principal, household_id: uuid.UUID) -> list[RecipientAssignment]:
    await service.get_household(session, principal, household_id)
    stmt = select(RecipientAssignment).where(RecipientAssignment.household_id == household_id).order_by(
        RecipientAssignment.proposed_at, RecipientAssignment.id)
    return list((await session.exec(stmt)).all())


def assignment_out(a: RecipientAssignment) -> dict[str, Any]:
    return a.model_dump()
