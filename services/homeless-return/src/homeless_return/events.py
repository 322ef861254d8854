"""Events the homeless-return service publishes (models in ``pilar_contracts.homeless_return``)
and the handlers of those it consumes: a projection of the registry's persons, so that a
NIK hash taken at intake finds the registry's person id without asking the registry."""

from __future__ import annotations

import uuid

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import select

from pilar_contracts.homeless_return import (  # noqa: F401  (re-exported: this service's catalogue)
    SOURCE,
    ReturnCompleted,
    ReturnDeparted,
    ReturnLegHandedOver,
    ReturnRefused,
    ReturnReported,
    ReturnUnresolved,
    ReturnVerified,
)
from pilar_contracts.registry import PersonDeceased, PersonMerged, PersonRegistered
from pilar_kernel.consumer import Consumer
from pilar_kernel.outbox import add_event

from .models import KnownPerson, ReturnCase

persons = Consumer(name="homeless-return.persons")


async def emit(session: AsyncSession, event) -> None:
    await add_event(session, event, source=SOURCE)


async def _upsert(session: AsyncSession, person_id: uuid.UUID, nik_hash: str | None, **values) -> None:
    stmt = pg_insert(KnownPerson).values(person_id=person_id, nik_hash=nik_hash, **values)
    await session.execute(
        stmt.on_conflict_do_update(index_elements=["person_id"], set_={"nik_hash": nik_hash, "updated_at": stmt.excluded.updated_at, **values})
    )


@persons.on(PersonRegistered)
async def person_registered(session: AsyncSession, event: PersonRegistered, envelope) -> None:
    await _upsert(session, event.person_id, event.nik_hash, status="active")
    if event.nik_hash:
        # Cases taken in before the registry knew the person get the id now.
        await session.execute(
            update(ReturnCase)
            .where(ReturnCase.nik_hash == event.nik_hash, ReturnCase.person_id.is_(None))
            .values(person_id=event.person_id)
        )


@persons.on(PersonMerged)
async def person_merged(session: AsyncSession, event: PersonMerged, envelope) -> None:
    await _upsert(session, event.person_id, event.nik_hash, status="merged", merged_into=event.into_person_id)
    await session.execute(update(ReturnCase).where(ReturnCase.person_id == event.person_id).values(person_id=event.into_person_id))


@persons.on(PersonDeceased)
async def person_deceased(session: AsyncSession, event: PersonDeceased, envelope) -> None:
    await _upsert(session, event.person_id, event.nik_hash, status="deceased")


async def person_for(session: AsyncSession, nik_hash: str) -> uuid.UUID | None:
    """The registry person with this NIK hash, following merges to the surviving record."""
    row = (await session.exec(select(KnownPerson).where(KnownPerson.nik_hash == nik_hash).order_by(KnownPerson.status))).first()
    for _ in range(10):  # merge chains are short; the bound only guards against a cycle
        if row is None or row.merged_into is None:
            break
        nxt = (await session.exec(select(KnownPerson).where(KnownPerson.person_id == row.merged_into))).first()
        if nxt is None:
            return row.merged_into
        row = nxt
    return None if row is None else row.person_id
