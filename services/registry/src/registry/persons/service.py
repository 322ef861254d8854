"""Use cases of persons and households: each runs inside the caller's transaction and
records its events in the outbox there."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pilar_kernel import regions
from pilar_kernel.auth import Principal
from pilar_kernel.nik import mask_nik
from pilar_kernel.outbox import add_event
from pilar_kernel.problems import Conflict, Forbidden, NotFound, Problem

from .. import access
from ..events import (
    SOURCE,
    HouseholdChanged,
    PersonDeceased,
    PersonMerged,
    PersonMoved,
    PersonRegistered,
    PersonUpdated,
)
from ..privacy import Privacy
from . import domain
from .models import Household, HouseholdMember, PiiAccess, Person

PII_FIELDS = ("nik", "phone")
_UPDATABLE = (
    "name", "birth_place", "birth_date", "sex", "village_code", "rt", "rw", "street", "disability_type",
    "disability_severity", "ppks", "decile", "decile_date", "occupation", "employer",
)


async def emit(session: AsyncSession, event) -> None:
    await add_event(session, event, source=SOURCE)


def invalid(errors: list[dict[str, str]]) -> Problem:
    fields = ", ".join(sorted({e["field"] for e in errors}))
    return Problem(f"invalid input: {fields}", status=422, type="validation-error", title="Invalid input", errors=errors)


def _address_codes(village_code: str | None) -> tuple[str | None, str | None, str | None]:
    if not village_code:
        return None, None, None
    village = regions.normalise(village_code)
    parts = village.split(".")
    return village, ".".join(parts[:3]), ".".join(parts[:2])


def _new_provisional_id() -> str:
    return "PRV-" + secrets.token_hex(5).upper()


async def get_person(session: AsyncSession, principal: Principal, person_id: uuid.UUID, *, for_update: bool = False) -> Person:
    stmt = select(Person).where(Person.id == person_id)
    if for_update:
        stmt = stmt.with_for_update()
    person = (await session.exec(stmt)).first()
    if person is None:
        raise NotFound("no such person")
    access.ensure_region(principal, person.regency_code)
    return person


def _check_own_region(principal: Principal, regency_code: str | None) -> None:
    if not principal.may_access_region(regency_code):
        raise Forbidden(f"your token may only register or move persons living in {principal.region}")


async def find_surviving(session: AsyncSession, person_id: uuid.UUID | None, nik_hash: str | None) -> Person | None:
    """A person by id or nik_hash (as other services' events name them), locked, following merges to the surviving record."""
    person = None
    if person_id is not None:
        person = (await session.exec(select(Person).where(Person.id == person_id).with_for_update())).first()
    if person is None and nik_hash:
        person = (await session.exec(select(Person).where(Person.nik_hash == nik_hash).with_for_update())).first()
    for _ in range(10):  # merge chains are short; the bound guards against a cycle
        if person is None or person.status != domain.MERGED or person.merged_into is None:
            break
        person = (await session.exec(select(Person).where(Person.id == person.merged_into).with_for_update())).first()
    return person


async def current_membership(session: AsyncSession, person_id: uuid.UUID) -> tuple[HouseholdMember, Household] | None:
    row = (
        await session.exec(
            select(HouseholdMember, Household)
            .join(Household, Household.id == HouseholdMember.household_id)
            .where(HouseholdMember.person_id == person_id, HouseholdMember.valid_to.is_(None))
        )
    ).first()
    return None if row is None else (row[0], row[1])


async def _household_event(session: AsyncSession, household: Household) -> None:
    members = (
        await session.exec(
            select(HouseholdMember.person_id, HouseholdMember.relationship)
            .where(HouseholdMember.household_id == household.id, HouseholdMember.valid_to.is_(None))
            .order_by(HouseholdMember.id)
        )
    ).all()
    head = next((pid for pid, rel in members if rel == "head"), None)
    await emit(
        session,
        HouseholdChanged(household_id=household.id, regency_code=household.regency_code, member_ids=[m[0] for m in members], head_person_id=head),
    )


async def _join_household(session: AsyncSession, person: Person, kk_number: str, relationship: str) -> None:
    """Put ``person`` in the KK ``kk_number`` (created if new), closing any current membership."""
    current = await current_membership(session, person.id)
    if current is not None:
        member, household = current
        if household.kk_number == kk_number and member.relationship == relationship:
            return
        member.valid_to = datetime.now(UTC)
        session.add(member)
        await session.flush()
        if household.kk_number != kk_number:
            await _household_event(session, household)
    await session.exec(
        pg_insert(Household)
        .values(id=uuid.uuid4(), kk_number=kk_number, regency_code=person.regency_code)
        .on_conflict_do_nothing(index_elements=["kk_number"])
    )
    household = (await session.exec(select(Household).where(Household.kk_number == kk_number).with_for_update())).one()
    session.add(HouseholdMember(household_id=household.id, person_id=person.id, relationship=relationship))
    await session.flush()
    await _household_event(session, household)


async def register(
    session: AsyncSession, principal: Principal, privacy: Privacy, data: dict[str, Any], *, duplicate_threshold: float = 0.4,
    affected_person_id: uuid.UUID | None = None,
) -> Person:
    """A new person. ``data`` may carry ``nik_hash`` without ``nik`` (a provisional record of a
    person another service reported with a NIK); ``affected_person_id`` names the disaster
    service's record the person was opened from (both travel in ``PersonRegistered``)."""
    errors = domain.check_registration(data)
    if errors:
        raise invalid(errors)
    village, district, regency = _address_codes(data.get("village_code"))
    _check_own_region(principal, regency)
    person_id = uuid.uuid4()
    nik = data.get("nik")
    if nik and data.get("birth_date") is None:
        # A NIK carries the birth date: a registration without one takes it from there.
        data["birth_date"] = domain.birth_date_from_nik(nik)
    nik_hash = data.get("nik_hash") or (privacy.hash_nik(nik) if nik else None)
    if nik_hash:
        holder = (await session.exec(select(Person).where(Person.nik_hash == nik_hash).with_for_update())).first()
        if holder is not None:
            if nik and holder.nik_enc is None and holder.status == domain.ACTIVE and principal.may_access_region(holder.regency_code or regency):
                # A provisional record opened from another service's report kept only the NIK's hash: this completes it.
                return await _complete(session, principal, privacy, holder, data, nik, regency)
            raise Conflict("a person with this NIK is already registered",
                           errors=[{"field": "nik", "message": "already registered", "rule": "nik.unique"}])
    person = Person(
        id=person_id,
        nik_hash=nik_hash,
        nik_enc=privacy.seal(nik, person_id) if nik else None,
        provisional_id=None if nik else _new_provisional_id(),
        pii_key_id=privacy.cipher.current_key_id,
        name=data["name"],
        name_norm=domain.normalise_name(data["name"]),
        birth_place=data.get("birth_place"),
        birth_date=data.get("birth_date"),
        sex=data["sex"],
        village_code=village,
        district_code=district,
        regency_code=regency,
        rt=data.get("rt"),
        rw=data.get("rw"),
        street=data.get("street"),
        phone_enc=privacy.seal(data["phone"], person_id) if data.get("phone") else None,
        phone_index=privacy.index_phone(data["phone"]) if data.get("phone") else None,
        disability_type=data.get("disability_type"),
        disability_severity=data.get("disability_severity"),
        ppks=sorted(set(data.get("ppks") or [])),
        decile=data.get("decile"),
        decile_date=data.get("decile_date"),
        occupation=data.get("occupation"),
        employer=data.get("employer"),
    )
    session.add(person)
    try:
        await session.flush()
    except IntegrityError as exc:  # the same NIK registered concurrently: one wins
        raise Conflict("a person with this NIK is already registered", errors=[{"field": "nik", "message": "already registered", "rule": "nik.unique"}]) from exc
    await session.refresh(person)
    await emit(
        session,
        PersonRegistered(
            person_id=person.id, nik_hash=nik_hash, regency_code=regency, provisional=nik is None, district_code=district,
            birth_date=person.birth_date, sex=person.sex, ppks=person.ppks, decile=person.decile,
            disability_severity=person.disability_severity, affected_person_id=affected_person_id,
        ),
    )
    if data.get("kk_number"):
        await _join_household(session, person, data["kk_number"], data["relationship"])
    from ..duplicates.service import find_and_queue  # late import: duplicates builds on persons

    await find_and_queue(session, person, duplicate_threshold)
    return person


async def _complete(session: AsyncSession, principal: Principal, privacy: Privacy, person: Person, data: dict[str, Any], nik: str,
                    regency: str | None) -> Person:
    """Give a provisional record that holds only a NIK hash its NIK and the registration's facts.

    The record keeps its id (other services already hold it) and its provisional id (papers
    issued with it stay traceable); facts the registration leaves out stay as they were, PPKS
    categories are added. Announced as ``PersonUpdated`` (and ``PersonMoved`` when the
    regency changed), like any other change to a known person.
    """
    old_regency = person.regency_code
    changed = ["nik"]
    for field in _UPDATABLE:
        value = data.get(field)
        if field == "ppks":
            value = sorted(set(person.ppks) | set(value or []))
        if value is not None and value != getattr(person, field):
            setattr(person, field, value)
            changed.append(field)
    if "village_code" in changed:
        person.village_code, person.district_code, person.regency_code = _address_codes(person.village_code)
    person.name_norm = domain.normalise_name(person.name)
    person.nik_enc = privacy.seal(nik, person.id)
    if data.get("phone"):
        person.phone_enc, person.phone_index = privacy.seal(data["phone"], person.id), privacy.index_phone(data["phone"])
        changed.append("phone")
    _bump(person)
    session.add(person)
    await session.flush()
    if person.regency_code != old_regency:
        await emit(session, PersonMoved(person_id=person.id, nik_hash=person.nik_hash, regency_code=person.regency_code,
                                        from_regency_code=old_regency, to_regency_code=person.regency_code))
    await emit(session, PersonUpdated(person_id=person.id, nik_hash=person.nik_hash, regency_code=person.regency_code,
                                      changed=sorted(set(changed)), ppks=person.ppks, decile=person.decile,
                                      disability_severity=person.disability_severity))
    if data.get("kk_number"):
        await _join_household(session, person, data["kk_number"], data["relationship"])
    return person


def _require_version(person: Person, version: int) -> None:
    if person.version != version:
        raise Conflict(f"the person changed since you read it (version {person.version}, you sent {version})", current_version=person.version)


def _bump(person: Person) -> None:
    person.version += 1
    person.updated_at = datetime.now(UTC)


async def update(session: AsyncSession, principal: Principal, privacy: Privacy, person_id: uuid.UUID, patch: dict[str, Any]) -> Person:
    person = await get_person(session, principal, person_id, for_update=True)
    _require_version(person, patch.pop("version"))
    if person.status in (domain.DECEASED, domain.MERGED):
        raise Conflict(f"a {person.status} record cannot be changed")
    merged = {field: getattr(person, field) for field in _UPDATABLE}
    merged.update({k: v for k, v in patch.items() if k in _UPDATABLE})
    check = {**merged, "provisional": person.nik_enc is None, "kk_number": patch.get("kk_number"), "relationship": patch.get("relationship")}
    if person.nik_enc is not None:
        check["nik"] = privacy.open(person.nik_enc, person.id)
        if merged["birth_date"] is None:  # clearing (or never having had) it: the NIK's date
            merged["birth_date"] = check["birth_date"] = domain.birth_date_from_nik(check["nik"])
    errors = domain.check_registration(check)
    if errors:
        raise invalid(errors)
    changed = sorted(k for k in patch if k in _UPDATABLE and getattr(person, k) != merged[k])
    if "phone" in patch:
        phone = patch["phone"]
        person.phone_enc = privacy.seal(phone, person.id) if phone else None
        person.phone_index = privacy.index_phone(phone) if phone else None
        changed.append("phone")
    old_regency = person.regency_code
    for field in changed:
        if field in _UPDATABLE:
            setattr(person, field, merged[field])
    if "village_code" in changed:
        person.village_code, person.district_code, person.regency_code = _address_codes(merged["village_code"])
        _check_own_region(principal, person.regency_code)
    if "name" in changed:
        person.name_norm = domain.normalise_name(person.name)
    if "ppks" in changed:
        person.ppks = sorted(set(person.ppks))
    if changed:
        _bump(person)
        session.add(person)
        await session.flush()
        if person.regency_code != old_regency:
            await emit(session, PersonMoved(person_id=person.id, nik_hash=person.nik_hash, regency_code=person.regency_code,
                                            from_regency_code=old_regency, to_regency_code=person.regency_code))
        await emit(session, PersonUpdated(person_id=person.id, nik_hash=person.nik_hash, regency_code=person.regency_code,
                                          changed=sorted(set(changed)), ppks=person.ppks, decile=person.decile,
                                          disability_severity=person.disability_severity))
    if patch.get("kk_number"):
        await _join_household(session, person, patch["kk_number"], patch["relationship"])
    return person


async def _end_enrolments(session: AsyncSession, person: Person, reason: str, on: date) -> None:
    from ..programmes import service as programmes  # late import: programmes depends on persons

    await programmes.end_all_enrolments(session, person, reason=reason, ended_on=on)


async def record_death(session: AsyncSession, principal: Principal, person_id: uuid.UUID, date_of_death: date, version: int) -> Person:
    person = await get_person(session, principal, person_id, for_update=True)
    _require_version(person, version)
    if not domain.can_transition(person.status, domain.DECEASED):
        raise Conflict(f"a {person.status} record cannot be recorded as deceased")
    if date_of_death > date.today() or (person.birth_date and date_of_death < person.birth_date):
        raise Problem("date of death must be between birth and today", status=422, type="validation-error", title="Invalid input",
                      errors=[{"field": "date_of_death", "message": "not between birth and today", "rule": "death.date"}])
    person.status, person.deceased_date = domain.DECEASED, date_of_death
    _bump(person)
    session.add(person)
    await session.flush()
    await emit(session, PersonDeceased(person_id=person.id, nik_hash=person.nik_hash, regency_code=person.regency_code, date_of_death=date_of_death))
    await _end_enrolments(session, person, "death", date_of_death)
    return person


async def move_out(session: AsyncSession, principal: Principal, person_id: uuid.UUID, moved_on: date, destination: str | None, version: int) -> Person:
    person = await get_person(session, principal, person_id, for_update=True)
    _require_version(person, version)
    if not domain.can_transition(person.status, domain.MOVED_OUT):
        raise Conflict(f"a {person.status} record cannot move out")
    if destination is not None and (not regions.exists(destination) or regions.is_jatim(destination)):
        raise Problem("destination must be a region code outside Jawa Timur", status=422, type="validation-error", title="Invalid input",
                      errors=[{"field": "destination", "message": "not a region outside Jawa Timur", "rule": "region.outside"}])
    person.status = domain.MOVED_OUT
    person.domicile_note = destination
    _bump(person)
    session.add(person)
    await session.flush()
    await emit(session, PersonMoved(person_id=person.id, nik_hash=person.nik_hash, regency_code=person.regency_code,
                                    from_regency_code=person.regency_code, to_regency_code=None))
    await _end_enrolments(session, person, "moved", moved_on)
    return person


async def merge(session: AsyncSession, principal: Principal, privacy: Privacy, person_id: uuid.UUID, into_id: uuid.UUID) -> Person:
    """Merge the duplicate ``person_id`` into ``into_id``. The duplicate stays as history
    (status merged, pointing at the survivor); PPKS categories and enrolments move over."""
    if person_id == into_id:
        raise Problem("a record cannot be merged into itself", status=422, type="validation-error", title="Invalid input",
                      errors=[{"field": "into_person_id", "message": "same as the merged record", "rule": "merge.self"}])
    # Lock both rows in a fixed order so two opposite merges cannot deadlock.
    first, second = sorted([person_id, into_id], key=str)
    locked = {p.id: p for p in [await get_person(session, principal, first, for_update=True), await get_person(session, principal, second, for_update=True)]}
    loser, survivor = locked[person_id], locked[into_id]
    if loser.status == domain.MERGED or survivor.status == domain.MERGED:
        raise Conflict("one of the records is already merged")
    # Two different NIKs may still be one person (a NIK issued twice): a reviewer decides. The
    # merged record keeps its NIK, so a lookup by it finds the record pointing at the survivor.
    if survivor.nik_enc is None and loser.nik_enc is not None:
        raise Conflict("merge the provisional record into the record with the NIK, not the reverse")
    survivor.ppks = sorted(set(survivor.ppks) | set(loser.ppks))
    for field in ("birth_place", "birth_date", "village_code", "district_code", "regency_code", "phone_index", "disability_type",
                  "disability_severity", "decile", "decile_date", "occupation", "employer"):
        if getattr(survivor, field) is None and getattr(loser, field) is not None:
            setattr(survivor, field, getattr(loser, field))
    if survivor.phone_enc is None and loser.phone_enc is not None:
        # Ciphertexts are bound to their row: decrypt and seal again for the survivor.
        survivor.phone_enc = privacy.seal(privacy.open(loser.phone_enc, loser.id), survivor.id)
    loser.status, loser.merged_into = domain.MERGED, survivor.id
    _bump(loser)
    _bump(survivor)
    session.add_all([loser, survivor])
    await session.flush()
    current = await current_membership(session, loser.id)
    if current is not None:
        member, household = current
        member.valid_to = datetime.now(UTC)
        session.add(member)
        await session.flush()
        await _household_event(session, household)
    from ..programmes import service as programmes

    await programmes.move_enrolments(session, loser, survivor)
    await emit(session, PersonMerged(person_id=loser.id, nik_hash=loser.nik_hash, regency_code=loser.regency_code,
                                     into_person_id=survivor.id, into_nik_hash=survivor.nik_hash))
    return survivor


def check_lookup(nik: str | None, provisional_id: str | None) -> None:
    if bool(nik) == bool(provisional_id):
        raise Problem("send exactly one of nik or provisional_id", status=422, type="validation-error", title="Invalid input",
                      errors=[{"field": "nik", "message": "exactly one of nik, provisional_id", "rule": "lookup.one"}])


async def record_pii_access(session: AsyncSession, principal: Principal, person_id: uuid.UUID, reason: str, correlation_id: str | None) -> None:
    session.add(PiiAccess(subject=principal.subject, person_id=person_id, fields=list(PII_FIELDS), reason=reason, correlation_id=correlation_id))
    await session.flush()


# The person's own columns in a PersonOut (NIK, phone and household are added by render).
OUT_COLUMNS = (
    "id", "provisional_id", "name", "birth_place", "birth_date", "sex", "village_code", "district_code", "regency_code", "rt", "rw",
    "street", "disability_type", "disability_severity", "ppks", "decile", "decile_date", "occupation", "employer", "status",
    "deceased_date", "merged_into", "domicile_note", "version", "created_at", "updated_at",
)


def render(columns: dict[str, Any], nik: str | None, phone: str | None, household: dict[str, Any] | None, *, reveal: bool) -> dict[str, Any]:
    """A PersonOut as a dict: NIK and phone masked unless ``reveal``."""
    out = columns
    out["nik"] = nik if reveal else (mask_nik(nik) if nik else None)
    out["nik_masked"] = not reveal and nik is not None
    out["phone"] = phone if reveal else (phone[:4] + "*" * (len(phone) - 7) + phone[-3:] if phone and len(phone) > 7 else None)
    out["household"] = household
    return out


async def to_out(session: AsyncSession, privacy: Privacy, person: Person, *, reveal: bool) -> dict[str, Any]:
    membership = await current_membership(session, person.id)
    household = (
        {"household_id": membership[1].id, "kk_number": membership[1].kk_number, "relationship": membership[0].relationship} if membership else None
    )
    return render(
        {c: getattr(person, c) for c in OUT_COLUMNS}, privacy.open(person.nik_enc, person.id), privacy.open(person.phone_enc, person.id),
        household, reveal=reveal,
    )


def row_out(privacy: Privacy, row, *, reveal: bool) -> dict[str, Any]:
    """The same PersonOut from a row of the read path (``persons.reads``: the person's columns
    plus ``household_id``, ``kk_number`` and ``relationship`` of the current household)."""
    person_id = row["id"]
    household = (
        {"household_id": row["household_id"], "kk_number": row["kk_number"], "relationship": row["relationship"]}
        if row["household_id"] is not None else None
    )  # fmt: skip
    return render(
        {c: row[c] for c in OUT_COLUMNS}, privacy.open(row["nik_enc"], person_id), privacy.open(row["phone_enc"], person_id),
        household, reveal=reveal,
    )


async def household_history(session: AsyncSession, person_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = (
        await session.exec(
            select(HouseholdMember, Household.kk_number)
            .join(Household, Household.id == HouseholdMember.household_id)
            .where(HouseholdMember.person_id == person_id)
            .order_by(HouseholdMember.valid_from, HouseholdMember.id)
        )
    ).all()
    return [
        {"household_id": m.household_id, "kk_number": kk, "relationship": m.relationship, "valid_from": m.valid_from, "valid_to": m.valid_to}
        for m, kk in rows
    ]


async def count_by(session: AsyncSession, column, principal: Principal) -> dict[str, int]:
    stmt = select(column, func.count()).group_by(column)
    if principal.region:
        stmt = stmt.where(Person.regency_code == principal.region)
    return {str(k): n for k, n in (await session.exec(stmt)).all()}

