"""The registry's consumer of ``disaster.person`` events (consumer ``registry.disasters``).

``PersonAffected`` of a person the registry knows (by ``person_id``, else by ``nik_hash``,
following merges) adds the disaster-victim PPKS category: ``korban_bencana_sosial`` for a
social disaster, ``korban_bencana_alam`` otherwise (Permensos has no third disaster
category, so non-natural disasters such as settlement fires count with the natural ones).

A person the registry does not know becomes a provisional record with that category,
named as the field team recorded them (the event carries name, sex, birth date and village
only in this case; see ``pilar_contracts.disaster.PersonAffected``). The record keeps the
event's NIK hash, and its ``PersonRegistered`` names the ``affected_person_id``: that is how
the disaster service links its affected person to the new record, which lets the household's
emergency cash be paid. A NIK hash alone cannot make a full record, so such a record stays
provisional until a caseworker registers the person with the NIK (which completes this
record) or merges it: the duplicate review queues it when it looks like someone already
registered.
Nobody is registered from a report of their death; a known person reported dead is only
flagged, since a death is recorded on a certificate, not on a field report.

The disaster service publishes one ``PersonAffected`` per affected-person record, and the
inbox makes a redelivery a no-op, so one record never opens two provisional persons.

Wire it in the registry app with ``consumers=[disasters_consumer.build(settings)]``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from pilar_contracts.disaster import PersonAffected
from pilar_kernel import regions
from pilar_kernel.auth import Principal
from pilar_kernel.consumer import Consumer

from .. import access
from ..events import PersonUpdated
from ..persons import domain as persons_domain
from ..persons import service as persons
from ..persons.models import Person
from ..privacy import Privacy

NAME = "registry.disasters"

# The registry acts on these events as itself, not as any agency.
SYSTEM = Principal(subject="system:disaster-events", scopes=frozenset({access.WRITE}))

NATURAL = "korban_bencana_alam"
SOCIAL = "korban_bencana_sosial"

log = structlog.get_logger("registry.disasters")


def victim_category(incident_category: str) -> str:
    return SOCIAL if incident_category == "social" else NATURAL




async def flag(session: AsyncSession, person: Person, category: str) -> bool:
    """Add the PPKS category as one versioned change with its event; False if already there."""
    if category in person.ppks:
        return False
    person.ppks = sorted(set(person.ppks) | {category})
    person.version += 1
    person.updated_at = datetime.now(UTC)
    session.add(person)
    await session.flush()
    await persons.emit(
        session,
        PersonUpdated(person_id=person.id, nik_hash=person.nik_hash, regency_code=person.regency_code, changed=["ppks"],
                      ppks=person.ppks, decile=person.decile, disability_severity=person.disability_severity),
    )
    return True


def _village(code: str | None) -> str | None:
    """The event's village if it is one the registry accepts for an address, else None."""
    if not code:
        return None
    region = regions.get(code)
    return region.code if region is not None and region.level == "village" and region.current and regions.is_jatim(code) else None


def build(settings) -> Consumer:
    """The consumer, bound to the registry's settings (privacy keys, duplicate threshold)."""
    privacy = Privacy.from_settings(settings)
    consumer = Consumer(name=NAME)

    @consumer.on(PersonAffected)
    async def person_affected(session: AsyncSession, event: PersonAffected, envelope) -> None:
        category = victim_category(event.incident_category)
        person = await persons.find_surviving(session, event.person_id, event.nik_hash)
        if person is not None:
            if person.status == persons_domain.DECEASED:
                log.info("disaster report about a person recorded as deceased", affected_person_id=str(event.affected_person_id))
                return
            await flag(session, person, category)
            return
        if event.condition == "dead":
            log.info("no record opened for an unknown person reported dead", affected_person_id=str(event.affected_person_id))
            return
        if event.person_id is not None:
            log.warning("disaster event names a person the registry does not hold", person_id=str(event.person_id))
        name = event.name or f"Tanpa nama (bencana {event.incident_id})"
        person = await persons.register(
            session,
            SYSTEM,
            privacy,
            {"provisional": True, "nik_hash": event.nik_hash, "name": name, "sex": event.sex, "birth_date": event.birth_date,
             "village_code": _village(event.village_code), "ppks": [category]},
            duplicate_threshold=settings.name_match_threshold,
            affected_person_id=event.affected_person_id,
        )
        person.domicile_note = f"recorded by the disaster service: {event.hazard} incident {event.incident_id} (affected person {event.affected_person_id})"
        session.add(person)
        await session.flush()

    return consumer
