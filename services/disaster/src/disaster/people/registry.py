"""The local copy of the registry's persons, fed by its events (consumer ``disaster.registry``).

Persons and households travel on two topics, so events may arrive in either order: every
handler upserts. A person who enters the registry after being recorded here is linked to
those records at once: by NIK hash, or by our ``affected_person_id`` when the registry
opened a provisional record from our ``PersonAffected`` (a person recorded without a NIK);
a merge re-points them to the surviving record. Where that changes who receives a
household's aid, the household is announced again (``people.recipients``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from pilar_contracts.registry import HouseholdChanged, PersonDeceased, PersonMerged, PersonMoved, PersonRegistered, PersonUpdated
from pilar_kernel.consumer import Consumer
from pilar_kernel.events import Envelope

from . import recipients
from .models import RegistryPerson

NAME = "disaster.registry"
persons = Consumer(name=NAME)
_table = RegistryPerson.__table__


def _now() -> datetime:
    return datetime.now(UTC)


async def _upsert(session: AsyncSession, person_id, nik_hash, regency_code, **changes) -> None:
    stmt = pg_insert(_table).values(person_id=person_id, nik_hash=nik_hash, regency_code=regency_code, updated_at=_now(), **changes)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=["person_id"],
        set_={
            "nik_hash": text("coalesce(excluded.nik_hash, registry_person.nik_hash)"),
            "regency_code": text("coalesce(excluded.regency_code, registry_person.regency_code)"),
            "updated_at": stmt.excluded.updated_at,
            **{k: stmt.excluded[k] for k in changes},
        },
    ))


# Link affected persons recorded by NIK before the registry knew them (one per incident).
_LINK = """
UPDATE affected_person a SET person_id = :p, version = a.version + 1, updated_at = now()
WHERE a.nik_hash = :h AND a.person_id IS NULL
  AND NOT EXISTS (SELECT 1 FROM affected_person b WHERE b.incident_id = a.incident_id AND b.person_id = :p)
RETURNING a.household_id
"""

# Re-point records of a merged person to the survivor, unless the survivor is already recorded in that incident.
_REPOINT = """
UPDATE affected_person a SET person_id = :into, version = a.version + 1, updated_at = now()
WHERE a.person_id = :p
  AND NOT EXISTS (SELECT 1 FROM affected_person b WHERE b.incident_id = a.incident_id AND b.person_id = :into)
RETURNING a.household_id
"""


@persons.on(PersonRegistered)
async def person_registered(session: AsyncSession, event: PersonRegistered, envelope: Envelope) -> None:
    await _upsert(session, event.person_id, event.nik_hash, event.regency_code)
    households: set = set()
    if event.affected_person_id is not None:  # the registry opened this record from our PersonAffected
        households |= await recipients.link_affected(session, event.affected_person_id, event.person_id)
    if event.nik_hash:
        rows = (await session.execute(text(_LINK), {"p": event.person_id, "h": event.nik_hash})).all()
        households |= {r.household_id for r in rows if r.household_id is not None}
    # Newly known members may now receive their household's aid: announce a changed recipient.
    await recipients.announce_changed_recipients(session, households)


@persons.on(PersonUpdated)
async def person_updated(session: AsyncSession, event: PersonUpdated, envelope: Envelope) -> None:
    await _upsert(session, event.person_id, event.nik_hash, event.regency_code)


@persons.on(PersonMoved)
async def person_moved(session: AsyncSession, event: PersonMoved, envelope: Envelope) -> None:
    if event.to_regency_code is None:
        await _upsert(session, event.person_id, event.nik_hash, event.regency_code, status="moved_out")
    else:
        await _upsert(session, event.person_id, event.nik_hash, event.to_regency_code)


@persons.on(PersonDeceased)
async def person_deceased(session: AsyncSession, event: PersonDeceased, envelope: Envelope) -> None:
    await _upsert(session, event.person_id, event.nik_hash, event.regency_code, status="deceased")


@persons.on(PersonMerged)
async def person_merged(session: AsyncSession, event: PersonMerged, envelope: Envelope) -> None:
    await _upsert(session, event.into_person_id, event.into_nik_hash, None)
    await _upsert(session, event.person_id, event.nik_hash, event.regency_code, status="merged", merged_into=event.into_person_id)
    rows = (await session.execute(text(_REPOINT), {"p": event.person_id, "into": event.into_person_id})).all()
    # A household whose recipient was the merged record is announced again with the survivor.
    await recipients.announce_changed_recipients(session, {r.household_id for r in rows if r.household_id is not None})


@persons.on(HouseholdChanged)
async def household_changed(session: AsyncSession, event: HouseholdChanged, envelope: Envelope) -> None:
    await session.execute(
        text("UPDATE registry_person SET household_id = NULL, is_head = false WHERE household_id = :h AND NOT (person_id = ANY(:m))"),
        {"h": event.household_id, "m": list(event.member_ids)},
    )
    for member in event.member_ids:
        stmt = pg_insert(_table).values(person_id=member, household_id=event.household_id, is_head=member == event.head_person_id,
                                        updated_at=_now())
        await session.execute(stmt.on_conflict_do_update(
            index_elements=["person_id"],
            set_={"household_id": stmt.excluded.household_id, "is_head": stmt.excluded.is_head, "updated_at": stmt.excluded.updated_at},
        ))
