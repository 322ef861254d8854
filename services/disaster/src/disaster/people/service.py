"""Use cases of the rapid assessment. Each runs inside the caller's transaction and records
its events in the outbox there.

A NIK or KK number received from the field is checked, hashed with the platform key and
dropped: only the hashes are stored, and persons are matched to the registry by
``nik_hash`` against the local copy of the registry's persons.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from pilar_kernel import regions
from pilar_kernel.auth import Principal
from pilar_kernel.nik import validate_nik
from pilar_kernel.pagination import page
from pilar_kernel.pii import nik_hash
from pilar_kernel.problems import Conflict, NotFound

from .. import access
from ..events import HouseholdAffected, PersonAffected, emit
from ..evacuation.models import EvacuationPoint
from ..fields import cursor_values
from ..incidents import service as incidents
from ..incidents.models import Incident
from ..places import address, invalid
from . import domain
from .models import AffectedHousehold, AffectedPerson, RegistryPerson


def _now() -> datetime:
    return datetime.now(UTC)


async def match(session: AsyncSession, digest: str | None) -> RegistryPerson | None:
    """The registry person with this NIK hash, following merges to the surviving record."""
    if digest is None:
        return None
    person = (await session.exec(select(RegistryPerson).where(RegistryPerson.nik_hash == digest))).first()
    for _ in range(10):  # merge chains are short; the bound guards against a cycle
        if person is None or person.merged_into is None:
            break
        person = (await session.exec(select(RegistryPerson).where(RegistryPerson.person_id == person.merged_into))).first()
    return person


def _check_member(m: dict[str, Any], field: str) -> list[dict[str, str]]:
    errors = []
    if m.get("nik"):
        for e in validate_nik(m["nik"], birth_date=m.get("birth_date"), sex=m.get("sex")):
            errors.append({"field": f"{field}.nik", "message": e.message, "rule": e.rule})
    if m.get("birth_date") and m["birth_date"] > date.today():
        errors.append({"field": f"{field}.birth_date", "message": "in the future", "rule": "birth_date.future"})
    if "pregnant" in (m.get("vulnerabilities") or []) and m.get("sex") != "F":
        errors.append({"field": f"{field}.vulnerabilities", "message": "only a woman can be pregnant", "rule": "vulnerability.pregnant"})
    return errors


async def _check_point(session: AsyncSession, incident: Incident, point_id: uuid.UUID | None, field: str) -> list[dict[str, str]]:
    if point_id is None:
        return []
    point = (await session.exec(select(EvacuationPoint).where(EvacuationPoint.id == point_id))).first()
    if point is None or point.incident_id != incident.id:
        return [{"field": field, "message": "no such evacuation point in this incident", "rule": "evacuation.point"}]
    return []


async def _new_persons(session: AsyncSession, principal: Principal, key: str, incident: Incident, members: list[dict[str, Any]],
                       place: tuple[str, str, str | None], household: AffectedHousehold | None, field: str,
                       default_displaced: bool) -> list[tuple[AffectedPerson, RegistryPerson | None]]:
    errors: list[dict[str, str]] = []
    digests: list[str | None] = []
    for i, m in enumerate(members):
        errors += _check_member(m, f"{field}.{i}")
        errors += await _check_point(session, incident, m.get("evacuation_point_id"), f"{field}.{i}.evacuation_point_id")
        digests.append(nik_hash(m["nik"], key) if m.get("nik") else None)
    seen: set[str] = set()
    for i, d in enumerate(digests):
        if d is None:
            continue
        if d in seen:
            errors.append({"field": f"{field}.{i}.nik", "message": "the same NIK is listed twice", "rule": "nik.duplicate"})
        seen.add(d)
    if errors:
        raise invalid(errors)
    if seen:
        taken = (await session.exec(select(AffectedPerson.id).where(AffectedPerson.incident_id == incident.id,
                                                                    AffectedPerson.nik_hash.in_(seen)))).first()
        if taken is not None:
            raise Conflict("a person with this NIK is already recorded in this incident", affected_person_id=str(taken))
    found = [await match(session, digest) for digest in digests]
    ids = [f.person_id for f in found if f is not None]
    if len(ids) != len(set(ids)):
        raise Conflict("two of these persons are the same registry person (a merged record)")
    if ids:
        taken = (await session.exec(select(AffectedPerson.id).where(AffectedPerson.incident_id == incident.id,
                                                                    AffectedPerson.person_id.in_(ids)))).first()
        if taken is not None:
            raise Conflict("this registry person is already recorded in this incident", affected_person_id=str(taken))
    regency, district, village = place
    user = access.acting_user(principal)
    out = []
    for m, digest, registry_person in zip(members, digests, found):
        person = AffectedPerson(
            incident_id=incident.id, household_id=household.id if household else None, nik_hash=digest,
            person_id=registry_person.person_id if registry_person else None, name=m["name"], sex=m["sex"], birth_date=m.get("birth_date"),
            relationship=m.get("relationship"), regency_code=regency, district_code=district, village_code=village,
            condition=m.get("condition") or "unharmed",
            displaced=default_displaced if m.get("displaced") is None else m["displaced"],
            vulnerabilities=sorted(set(m.get("vulnerabilities") or [])), evacuation_point_id=m.get("evacuation_point_id"), recorded_by=user,
        )
        session.add(person)
        out.append((person, registry_person))
    await session.flush()
    return out


async def _person_event(session: AsyncSession, incident: Incident, person: AffectedPerson, damage_level: str | None) -> None:
    unmatched = person.person_id is None
    await emit(session, PersonAffected(
        affected_person_id=person.id, incident_id=incident.id, incident_category=incident.category, hazard=incident.hazard,
        household_id=person.household_id, person_id=person.person_id, nik_hash=person.nik_hash, regency_code=person.regency_code,
        district_code=person.district_code, damage_level=damage_level, condition=person.condition, displaced=person.displaced,
        flags=person.vulnerabilities, sex=person.sex,
        # Personal details only when the registry has to open a provisional record (see the contract).
        name=person.name if unmatched else None, birth_date=person.birth_date if unmatched else None,
        village_code=person.village_code if unmatched else None,
    ))


async def _household_event(session: AsyncSession, incident: Incident, household: AffectedHousehold) -> None:
    nik = None
    if household.recipient_person_id is not None:
        nik = (await session.exec(select(AffectedPerson.nik_hash).where(AffectedPerson.household_id == household.id,
                                                                        AffectedPerson.person_id == household.recipient_person_id))).first()
    await emit(session, HouseholdAffected(
        household_id=household.id, incident_id=incident.id, incident_category=incident.category, hazard=incident.hazard,
        regency_code=household.regency_code, district_code=household.district_code, damage_level=household.damage_level,
        displaced=household.displaced, member_count=household.member_count, registry_household_id=household.registry_household_id,
        recipient_person_id=household.recipient_person_id, recipient_nik_hash=nik, version=household.version,
        assessed_at=household.assessed_at,
    ))


async def _registry_household(session: AsyncSession, pairs: list[tuple[AffectedPerson, RegistryPerson | None]]) -> uuid.UUID | None:
    ids = [found.household_id for _, found in pairs if found is not None and found.household_id is not None]
    return ids[0] if ids else None


async def _choose_recipient(session: AsyncSession, household: AffectedHousehold) -> uuid.UUID | None:
    from .recipients import confirmed_recipient  # a recipient confirmed by hand overrides the rules

    assigned = await confirmed_recipient(session, household.id)
    if assigned is not None:
        return assigned
    rows = (await session.exec(
        select(AffectedPerson, RegistryPerson.is_head)
        .join(RegistryPerson, RegistryPerson.person_id == AffectedPerson.person_id, isouter=True)
        .where(AffectedPerson.household_id == household.id).order_by(AffectedPerson.created_at, AffectedPerson.id)
    )).all()
    members = [domain.Member(person_id=p.person_id, relationship=p.relationship, birth_date=p.birth_date,
                             vulnerabilities=tuple(p.vulnerabilities), condition=p.condition, registry_head=bool(head))
               for p, head in rows]
    return domain.recipient(members, date.today())


async def assess_household(session: AsyncSession, principal: Principal, key: str, incident_id: uuid.UUID, data: dict[str, Any]) -> AffectedHousehold:
    incident = await incidents.get_incident(session, principal, incident_id, for_update=True)
    if incident.status == "closed":
        raise Conflict("the incident is closed")
    place = address(data["village_code"], None)
    incidents.writable(principal, incident, place[0])
    digest = None
    if data.get("kk_number"):
        errors = domain.check_kk(data["kk_number"], "kk_number")
        if errors:
            raise invalid(errors)
        digest = domain.kk_hash(data["kk_number"], key)
        taken = (await session.exec(select(AffectedHousehold.id).where(AffectedHousehold.incident_id == incident.id,
                                                                       AffectedHousehold.kk_hash == digest))).first()
        if taken is not None:
            raise Conflict("this family card is already assessed in this incident", household_id=str(taken))
    members = data["members"]
    if data.get("member_count") is not None and data["member_count"] < len(members):
        raise invalid([{"field": "member_count", "message": "fewer than the members listed", "rule": "household.members"}])
    household = AffectedHousehold(
        incident_id=incident.id, kk_hash=digest, regency_code=place[0], district_code=place[1], village_code=place[2],
        damage_level=data["damage_level"], displaced=data["displaced"], member_count=data.get("member_count") or len(members),
        assessed_by=access.acting_user(principal),
    )
    session.add(household)
    await session.flush()
    pairs = await _new_persons(session, principal, key, incident, members, place, household, "members", data["displaced"])
    household.registry_household_id = await _registry_household(session, pairs)
    if household.registry_household_id is not None:
        taken = (await session.exec(select(AffectedHousehold.id).where(
            AffectedHousehold.incident_id == incident.id, AffectedHousehold.registry_household_id == household.registry_household_id,
            AffectedHousehold.id != household.id))).first()
        if taken is not None:
            raise Conflict("this family (known to the registry) is already assessed in this incident", household_id=str(taken))
    household.recipient_person_id = await _choose_recipient(session, household)
    session.add(household)
    await session.flush()
    await _household_event(session, incident, household)
    for person, _ in pairs:
        await _person_event(session, incident, person, household.damage_level)
    return household


async def record_person(session: AsyncSession, principal: Principal, key: str, incident_id: uuid.UUID, data: dict[str, Any]) -> AffectedPerson:
    """An affected person outside any assessed household (a traveller, a lone survivor)."""
    incident = await incidents.get_incident(session, principal, incident_id, for_update=True)
    if incident.status == "closed":
        raise Conflict("the incident is closed")
    place = address(data.pop("village_code"), None)
    incidents.writable(principal, incident, place[0])
    [(person, _)] = await _new_persons(session, principal, key, incident, [data], place, None, "body", bool(data.get("displaced")))
    await _person_event(session, incident, person, None)
    return person


async def get_household(session: AsyncSession, principal: Principal, household_id: uuid.UUID, *, for_update: bool = False) -> AffectedHousehold:
    stmt = select(AffectedHousehold).where(AffectedHousehold.id == household_id)
    if for_update:
        stmt = stmt.with_for_update()
    household = (await session.exec(stmt)).first()
    if household is None or not principal.may_access_region(household.regency_code):
        raise NotFound("no such household")
    return household


async def get_person(session: AsyncSession, principal: Principal, person_id: uuid.UUID, *, for_update: bool = False) -> AffectedPerson:
    stmt = select(AffectedPerson).where(AffectedPerson.id == person_id)
    if for_update:
        stmt = stmt.with_for_update()
    person = (await session.exec(stmt)).first()
    if person is None or not principal.may_access_region(person.regency_code):
        raise NotFound("no such person")
    return person


async def members_of(session: AsyncSession, household_id: uuid.UUID) -> list[AffectedPerson]:
    stmt = select(AffectedPerson).where(AffectedPerson.household_id == household_id).order_by(AffectedPerson.created_at, AffectedPerson.id)
    return list((await session.exec(stmt)).all())


def _stale(what: str, current: int, sent: int) -> Conflict:
    return Conflict(f"the {what} changed since you read it (version {current}, you sent {sent})", current_version=current)


async def reassess_household(session: AsyncSession, principal: Principal, household_id: uuid.UUID, patch: dict[str, Any]) -> AffectedHousehold:
    """A new damage level or displacement: announced again with the next version. The
    recipient is chosen afresh, since members may have been matched to the registry since."""
    household = await get_household(session, principal, household_id, for_update=True)
    incident = await incidents.get_incident(session, principal, household.incident_id)
    incidents.writable(principal, incident, household.regency_code)
    if household.version != patch["version"]:
        raise _stale("household", household.version, patch["version"])
    for field in ("damage_level", "displaced", "member_count"):
        if patch.get(field) is not None:
            setattr(household, field, patch[field])
    count = len(await members_of(session, household.id))
    if household.member_count < count:
        raise invalid([{"field": "member_count", "message": "fewer than the members recorded", "rule": "household.members"}])
    household.recipient_person_id = await _choose_recipient(session, household)
    household.version += 1
    household.assessed_at = _now()
    household.assessed_by = access.acting_user(principal)
    session.add(household)
    await session.flush()
    await _household_event(session, incident, household)
    return household


async def update_person(session: AsyncSession, principal: Principal, person_id: uuid.UUID, patch: dict[str, Any]) -> AffectedPerson:
    """Condition, displacement, vulnerable groups or evacuation point changed. Kept here for
    the statistics; the registry heard of the person once and is not told again."""
    person = await get_person(session, principal, person_id, for_update=True)
    incident = await incidents.get_incident(session, principal, person.incident_id)
    incidents.writable(principal, incident, person.regency_code)
    if person.version != patch["version"]:
        raise _stale("person", person.version, patch["version"])
    errors = await _check_point(session, incident, patch.get("evacuation_point_id"), "evacuation_point_id")
    if patch.get("vulnerabilities") is not None and "pregnant" in patch["vulnerabilities"] and person.sex != "F":
        errors.append({"field": "vulnerabilities", "message": "only a woman can be pregnant", "rule": "vulnerability.pregnant"})
    if errors:
        raise invalid(errors)
    for field in ("condition", "displaced", "evacuation_point_id"):
        if field in patch and (patch[field] is not None or field == "evacuation_point_id"):
            setattr(person, field, patch[field])
    if patch.get("vulnerabilities") is not None:
        person.vulnerabilities = sorted(set(patch["vulnerabilities"]))
    person.version += 1
    person.updated_at = _now()
    session.add(person)
    await session.flush()
    return person


async def list_households(session: AsyncSession, principal: Principal, incident_id: uuid.UUID, *, damage_level: str | None,
                          regency_code: str | None, limit: int, cursor: str | None):
    stmt = select(AffectedHousehold).where(AffectedHousehold.incident_id == incident_id)
    if principal.region:
        stmt = stmt.where(text("(affected_household.regency_code = :reg OR affected_household.regency_code LIKE :reg || '.%')")
                          .bindparams(reg=principal.region))
    if regency_code:
        stmt = stmt.where(AffectedHousehold.regency_code == regions.normalise(regency_code))
    if damage_level:
        stmt = stmt.where(AffectedHousehold.damage_level == damage_level)
    after = cursor_values(cursor, uuid.UUID)
    if after:
        stmt = stmt.where(AffectedHousehold.id > after[0])
    rows = list((await session.exec(stmt.order_by(AffectedHousehold.id).limit(limit + 1))).all())
    return page(rows, limit, lambda r: [str(r.id)])


async def list_persons(session: AsyncSession, principal: Principal, incident_id: uuid.UUID, *, condition: str | None,
                       displaced: bool | None, limit: int, cursor: str | None):
    stmt = select(AffectedPerson).where(AffectedPerson.incident_id == incident_id)
    if principal.region:
        stmt = stmt.where(text("(affected_person.regency_code = :reg OR affected_person.regency_code LIKE :reg || '.%')")
                          .bindparams(reg=principal.region))
    if condition:
        stmt = stmt.where(AffectedPerson.condition == condition)
    if displaced is not None:
        stmt = stmt.where(AffectedPerson.displaced == displaced)
    after = cursor_values(cursor, uuid.UUID)
    if after:
        stmt = stmt.where(AffectedPerson.id > after[0])
    rows = list((await session.exec(stmt.order_by(AffectedPerson.id).limit(limit + 1))).all())
    return page(rows, limit, lambda r: [str(r.id)])


def person_out(p: AffectedPerson) -> dict[str, Any]:
    out = p.model_dump(exclude={"nik_hash", "recorded_by", "updated_at"})
    out["nik_known"] = p.nik_hash is not None
    return out


def household_out(h: AffectedHousehold, members: list[AffectedPerson] | None = None) -> dict[str, Any]:
    out = h.model_dump(exclude={"kk_hash", "assessed_by", "created_at"})
    out["kk_known"] = h.kk_hash is not None
    out["members"] = [person_out(m) for m in members or []]
    return out
