"""The consumer that builds the payable population from the registry's events.

Enrolment events (keyed by enrolment) and person events (keyed by person) travel on two
topics, so they may arrive in either order: a death can land before the approval it ends.
Each handler therefore upserts, and an approval never revives a person recorded as
deceased or merged. A merge re-announces the moved enrolments under the survivor with the
same enrolment id, which simply re-points them here.

A death or a merge also cancels the person's payments that have not gone out yet, and a
merge cancels the survivor's where the duplicate was already paid in the same round.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from pilar_contracts.registry import (
    EnrolmentApproved,
    EnrolmentEnded,
    EnrolmentResumed,
    EnrolmentSuspended,
    PersonDeceased,
    PersonMerged,
    PersonMoved,
)
from pilar_kernel.consumer import Consumer
from pilar_kernel.events import Envelope

from ..payments import service as payments
from .models import PayeeEnrolment, PayeePerson

population = Consumer(name="disbursement.population")


def _now() -> datetime:
    return datetime.now(UTC)


async def _upsert_person(session: AsyncSession, person_id, nik_hash, regency_code) -> None:
    """Create the person if new; otherwise refresh what the registry says, never the status."""
    stmt = pg_insert(PayeePerson.__table__).values(
        person_id=person_id, nik_hash=nik_hash, regency_code=regency_code, status="active", updated_at=_now()
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["person_id"],
            set_={
                "nik_hash": text("coalesce(excluded.nik_hash, payee_person.nik_hash)"),
                "regency_code": text("coalesce(excluded.regency_code, payee_person.regency_code)"),
                "updated_at": stmt.excluded.updated_at,
            },
        )
    )


@population.on(EnrolmentApproved)
async def enrolment_approved(session: AsyncSession, event: EnrolmentApproved, envelope: Envelope) -> None:
    await _upsert_person(session, event.person_id, event.nik_hash, event.regency_code)
    stmt = pg_insert(PayeeEnrolment.__table__).values(
        enrolment_id=event.enrolment_id,
        person_id=event.person_id,
        programme_code=event.programme_code,
        regency_code=event.regency_code,
        household_id=event.household_id,
        status="active",
        active_from=event.active_from,
        updated_at=_now(),
    )
    # An ended enrolment stays ended: the registry never re-opens one (it proposes anew).
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["enrolment_id"],
            set_={
                "person_id": stmt.excluded.person_id,
                "regency_code": stmt.excluded.regency_code,
                "household_id": stmt.excluded.household_id,
                "active_from": stmt.excluded.active_from,
                "updated_at": stmt.excluded.updated_at,
            },
            where=text("payee_enrolment.status IN ('active', 'suspended')"),
        )
    )


@population.on(EnrolmentEnded)
async def enrolment_ended(session: AsyncSession, event: EnrolmentEnded, envelope: Envelope) -> None:
    await _upsert_person(session, event.person_id, event.nik_hash, event.regency_code)
    stmt = pg_insert(PayeeEnrolment.__table__).values(
        enrolment_id=event.enrolment_id,
        person_id=event.person_id,
        programme_code=event.programme_code,
        regency_code=event.regency_code,
        status="ended",
        ended_on=event.ended_on,
        end_reason=event.reason,
        updated_at=_now(),
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["enrolment_id"],
            set_={"status": "ended", "ended_on": stmt.excluded.ended_on, "end_reason": stmt.excluded.end_reason, "updated_at": stmt.excluded.updated_at},
        )
    )


@population.on(EnrolmentSuspended)
async def enrolment_suspended(session: AsyncSession, event: EnrolmentSuspended, envelope: Envelope) -> None:
    # Same topic and key as the approval, so it always arrives after it: no upsert needed.
    await session.execute(
        text("UPDATE payee_enrolment SET status = 'suspended', updated_at = now() WHERE enrolment_id = :e AND status = 'active'"),
        {"e": event.enrolment_id},
    )


@population.on(EnrolmentResumed)
async def enrolment_resumed(session: AsyncSession, event: EnrolmentResumed, envelope: Envelope) -> None:
    await session.execute(
        text("UPDATE payee_enrolment SET status = 'active', updated_at = now() WHERE enrolment_id = :e AND status = 'suspended'"),
        {"e": event.enrolment_id},
    )


@population.on(PersonDeceased)
async def person_deceased(session: AsyncSession, event: PersonDeceased, envelope: Envelope) -> None:
    await _upsert_person(session, event.person_id, event.nik_hash, event.regency_code)
    await session.execute(
        text("UPDATE payee_person SET status = 'deceased', date_of_death = :d, updated_at = now() WHERE person_id = :p"),
        {"d": event.date_of_death, "p": event.person_id},
    )
    await payments.cancel_unsent_of_person(session, event.person_id, f"deceased on {event.date_of_death.isoformat()}")


@population.on(PersonMerged)
async def person_merged(session: AsyncSession, event: PersonMerged, envelope: Envelope) -> None:
    await _upsert_person(session, event.person_id, event.nik_hash, event.regency_code)
    await session.execute(
        text("UPDATE payee_person SET status = 'merged', merged_into = :into, updated_at = now() WHERE person_id = :p AND status <> 'deceased'"),
        {"into": event.into_person_id, "p": event.person_id},
    )
    await payments.cancel_unsent_of_person(session, event.person_id, f"record merged into {event.into_person_id}")
    # Where the duplicate was already paid, the survivor must not be paid again in that round.
    await payments.cancel_where(
        session,
        "person_id = :into AND round_id IN (SELECT round_id FROM payment WHERE person_id = :loser AND status IN ('sent', 'succeeded', 'returned'))",
        {"into": event.into_person_id, "loser": event.person_id},
        f"already paid in this round under the merged record {event.person_id}",
    )


@population.on(PersonMoved)
async def person_moved(session: AsyncSession, event: PersonMoved, envelope: Envelope) -> None:
    # Out of the province (no regency): the registry ends the enrolments; keep the last regency.
    if event.to_regency_code is not None:
        await _upsert_person(session, event.person_id, event.nik_hash, event.to_regency_code)
