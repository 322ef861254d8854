"""The registry's consumer of ``homeless_return.return`` events.

* ``ReturnCompleted`` of a person the registry knows (by ``person_id``, else by
  ``nik_hash``): the destination becomes the person's ``domicile_note`` and the PPKS
  categories the case calls for are added.
* ``ReturnUnresolved``: a known person gets ``gelandangan`` (and the cause's category);
  an unknown one becomes a provisional record with those categories. Names never travel
  in events, so the record is named after the return case until a caseworker completes it.

Wire it in the registry app with ``consumers=[returns_consumer.build(settings)]``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from pilar_contracts.homeless_return import ReturnCompleted, ReturnUnresolved
from pilar_kernel import regions
from pilar_kernel.auth import Principal
from pilar_kernel.consumer import Consumer

from .. import access
from ..events import PersonUpdated
from ..persons import domain as persons_domain
from ..persons import service as persons
from ..persons.models import Person
from ..privacy import Privacy

NAME = "registry.homeless-returns"

# The registry acts on these events as itself, not as any agency.
SYSTEM = Principal(subject="system:homeless-return-events", scopes=frozenset({access.WRITE}))

STRANDED = "gelandangan"
# PPKS category a case's cause or flag calls for, beyond being stranded.
CAUSE_PPKS = {"suspected_trafficking": "korban_trafficking", "job_scam": "pekerja_migran_bermasalah_sosial"}

log = structlog.get_logger("registry.returns")

WIB = timezone(timedelta(hours=7))


def _day(moment: datetime) -> date:
    # Dates in notes are Jawa Timur's local days.
    return moment.astimezone(WIB).date()


def completed_ppks(event: ReturnCompleted) -> set[str]:
    """A return home leaves the person flagged for what happened on the road: trafficking
    or a job scam; a repeat claimant is flagged as a wanderer (gelandangan)."""
    out = {CAUSE_PPKS[event.cause]} if event.cause in CAUSE_PPKS else set()
    if "suspected_trafficking" in event.flags:
        out.add(CAUSE_PPKS["suspected_trafficking"])
    if "repeat_claimant" in event.flags:
        out.add(STRANDED)
    return out


def unresolved_ppks(event: ReturnUnresolved) -> set[str]:
    """Someone who could not be returned stays stranded in Jawa Timur: gelandangan, plus
    the cause's category."""
    out = {STRANDED}
    if event.cause in CAUSE_PPKS:
        out.add(CAUSE_PPKS[event.cause])
    if "suspected_trafficking" in event.flags:
        out.add(CAUSE_PPKS["suspected_trafficking"])
    return out


def _place(code: str | None) -> str:
    if not code:
        return "unknown place"
    region = regions.get(code)
    return f"{code} {region.name}" if region else code




async def record(session: AsyncSession, person: Person, note: str, add_ppks: set[str]) -> None:
    """Set the domicile note and add PPKS categories, as one versioned change with its event."""
    ppks = sorted(set(person.ppks) | add_ppks)
    changed = [field for field, new in (("domicile_note", note), ("ppks", ppks)) if getattr(person, field) != new]
    if not changed:
        return
    person.domicile_note, person.ppks = note, ppks
    person.version += 1
    person.updated_at = datetime.now(UTC)
    session.add(person)
    await session.flush()
    await persons.emit(
        session,
        PersonUpdated(person_id=person.id, nik_hash=person.nik_hash, regency_code=person.regency_code, changed=changed,
                      ppks=person.ppks, decile=person.decile, disability_severity=person.disability_severity),
    )


def build(settings) -> Consumer:
    """The consumer, bound to the registry's settings (privacy keys, duplicate threshold)."""
    privacy = Privacy.from_settings(settings)
    consumer = Consumer(name=NAME)

    @consumer.on(ReturnCompleted)
    async def return_completed(session: AsyncSession, event: ReturnCompleted, envelope) -> None:
        person = await persons.find_surviving(session, event.person_id, event.nik_hash)
        if person is None:
            log.info("completed return of a person not in the registry", return_id=str(event.return_id))
            return
        if person.status == persons_domain.DECEASED:
            log.warning("completed return of a person recorded as deceased", return_id=str(event.return_id), person_id=str(person.id))
            return
        note = f"{_place(event.destination_code)}: returned home by Simlontar Rek on {_day(event.returned_at).isoformat()} (return {event.return_id})"
        await record(session, person, note, completed_ppks(event))

    @consumer.on(ReturnUnresolved)
    async def return_unresolved(session: AsyncSession, event: ReturnUnresolved, envelope) -> None:
        note = f"stranded in {_place(event.found_regency_code)}: Simlontar Rek return {event.return_id} unresolved on {_day(event.unresolved_at).isoformat()}"
        person = await persons.find_surviving(session, event.person_id, event.nik_hash)
        if person is not None:
            if person.status != persons_domain.DECEASED:
                await record(session, person, note, unresolved_ppks(event))
            return
        # Not in the registry: a provisional PPKS record (a NIK hash alone cannot make a full one;
        # it is kept, so that registering the person with that NIK completes this record).
        person = await persons.register(
            session,
            SYSTEM,
            privacy,
            {
                "provisional": True,
                "nik_hash": event.nik_hash,
                "name": f"Tanpa nama (Simlontar Rek {event.return_id})",
                "sex": event.sex,
                "birth_date": event.birth_date,
                "ppks": sorted(unresolved_ppks(event)),
            },
            duplicate_threshold=settings.name_match_threshold,
        )
        person.domicile_note = note
        session.add(person)
        await session.flush()

    return consumer
