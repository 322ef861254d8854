"""HTTP routes for persons and households (``/v1/persons``, ``/v1/households``)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from sqlalchemy import any_, literal, text, tuple_
from sqlmodel import select

from pilar_kernel.auth import Principal, require_scopes
from pilar_kernel.db import SessionDep
from pilar_kernel.idempotency import idempotent
from pilar_kernel.pagination import page
from pilar_kernel.problems import Forbidden, NotFound, Problem

from .. import access
from ..fields import CURSOR_MAX, DISTRICT_PATTERN, PPKS_PATTERN, REGENCY_PATTERN, problem_responses, time_id_cursor
from ..privacy import PrivacyDep
from . import domain, service
from .reads import PersonReader
from .models import Household, HouseholdMember, PiiAccess, Person
from .schemas import (
    DeathIn,
    HouseholdOut,
    LookupIn,
    MembershipOut,
    MergeIn,
    MoveOutIn,
    PersonIn,
    PersonOut,
    PersonPage,
    PersonPatch,
    PiiAccessOut,
)

router = APIRouter(prefix="/v1", tags=["persons"])

Reader = Annotated[Principal, require_scopes(access.READ)]
Writer = Annotated[Principal, require_scopes(access.WRITE)]
Verifier = Annotated[Principal, require_scopes(access.VERIFY)]
ReasonHeader = Annotated[
    str | None,
    Header(alias="X-Access-Reason", max_length=500, description="why unmasked NIK and phone are needed (needs the registry:pii scope); recorded in the audit log"),
]


def _reveal_asked(principal: Principal, reason: str | None) -> bool:
    """Whether unmasked NIK and phone were asked for, and may be given (403 or 422 otherwise)."""
    if reason is None:
        return False
    if not principal.has(access.PII_READ):
        raise Forbidden("unmasked personal data needs the registry:pii scope", required_scopes=[access.PII_READ])
    if len(reason.strip()) < 5:
        raise Problem("give a reason of at least 5 characters", status=422, type="validation-error", title="Invalid input",
                      errors=[{"field": "header.X-Access-Reason", "message": "too short", "rule": "pii.reason"}])
    return True


async def _answer(request: Request, privacy, principal: Principal, row, reason: str | None) -> dict:
    """A person from the read path; a reveal is recorded (and committed) before it is answered."""
    reveal = _reveal_asked(principal, reason)
    out = service.row_out(privacy, row, reveal=reveal)
    if reveal:
        async with request.app.state.session_factory() as session:
            await service.record_pii_access(session, principal, row["id"], reason.strip(), request.headers.get("x-correlation-id"))
            await session.commit()
    return out


def _shaped(out: dict) -> dict:
    """A PersonOut as the response model writes it (the idempotent path answers JSON directly, and a replay the same)."""
    return PersonOut.model_validate(out).model_dump(mode="json")


def _reader(request: Request) -> PersonReader:
    return request.app.state.person_reader


@router.post("/persons", status_code=201, response_model=PersonOut, summary="Register a person (or a provisional record without NIK)")
async def register_person(body: PersonIn, request: Request, session: SessionDep, privacy: PrivacyDep, principal: Writer):
    async def produce():
        person = await service.register(
            session, principal, privacy, body.model_dump(), duplicate_threshold=request.app.state.settings.name_match_threshold
        )
        return _shaped(await service.to_out(session, privacy, person, reveal=False))

    return await idempotent(request, session, principal, produce)


@router.get("/persons/{person_id}", response_model=PersonOut, summary="One person; NIK and phone masked unless asked for with a reason")
async def get_person(person_id: uuid.UUID, request: Request, privacy: PrivacyDep, principal: Reader, reason: ReasonHeader = None):
    # The read path: one query, no ORM session (see persons/reads.py).
    row = await _reader(request).by_id(principal, person_id)
    return await _answer(request, privacy, principal, row, reason)


@router.post("/persons/lookup", response_model=PersonOut, summary="Find a person by NIK (blind index) or provisional id",
             responses=problem_responses(404))
async def lookup_person(body: LookupIn, request: Request, privacy: PrivacyDep, principal: Reader, reason: ReasonHeader = None):
    service.check_lookup(body.nik, body.provisional_id)
    reader = _reader(request)
    if body.nik:
        row = await reader.by_nik_hash(principal, privacy.hash_nik(body.nik))
    else:
        row = await reader.by_provisional_id(principal, body.provisional_id)
    return await _answer(request, privacy, principal, row, reason)


@router.get("/persons", response_model=PersonPage, summary="Search and list persons")
async def list_persons(
    session: SessionDep,
    privacy: PrivacyDep,
    principal: Reader,
    regency_code: str | None = Query(default=None, pattern=REGENCY_PATTERN, description="35.xx"),
    district_code: str | None = Query(default=None, pattern=DISTRICT_PATTERN, description="35.xx.yy"),
    status: str | None = Query(default=None, pattern="^(active|deceased|moved_out|merged)$"),
    ppks: str | None = Query(default=None, pattern=PPKS_PATTERN, description="a PPKS category slug"),
    decile_max: int | None = Query(default=None, ge=1, le=10),
    name: str | None = Query(default=None, min_length=3, max_length=200, description="fuzzy match on the normalised name"),
    limit: int = Query(default=50, ge=1, le=500),
    cursor: str | None = Query(default=None, max_length=CURSOR_MAX),
):
    stmt = select(Person)
    if principal.region:
        if regency_code and regency_code != principal.region:
            return {"items": [], "next_cursor": None}
        regency_code = principal.region
    if regency_code:
        stmt = stmt.where(Person.regency_code == regency_code)
    if district_code:
        stmt = stmt.where(Person.district_code == district_code)
    if status:
        stmt = stmt.where(Person.status == status)
    if ppks:
        stmt = stmt.where(literal(ppks) == any_(Person.ppks))
    if decile_max:
        stmt = stmt.where(Person.decile <= decile_max)
    if name:
        # Trigram similarity, best first: no cursor (the first page is the answer).
        q = domain.normalise_name(name)
        stmt = stmt.where(text("similarity(person.name_norm, :q) > 0.3").bindparams(q=q)).order_by(
            text("similarity(person.name_norm, :q) DESC").bindparams(q=q), Person.id
        ).limit(limit)
        people = (await session.exec(stmt)).all()
        return {"items": [await service.to_out(session, privacy, p, reveal=False) for p in people], "next_cursor": None}
    after = time_id_cursor(cursor)
    if after:
        stmt = stmt.where(tuple_(Person.created_at, Person.id) > after)
    people = (await session.exec(stmt.order_by(Person.created_at, Person.id).limit(limit + 1))).all()
    people, next_cursor = page(list(people), limit, lambda p: [p.created_at.isoformat(), str(p.id)])
    return {"items": [await service.to_out(session, privacy, p, reveal=False) for p in people], "next_cursor": next_cursor}


@router.patch("/persons/{person_id}", response_model=PersonOut, summary="Change facts about a person (optimistic: send the version you read)")
async def patch_person(person_id: uuid.UUID, body: PersonPatch, request: Request, session: SessionDep, privacy: PrivacyDep, principal: Writer):
    async def produce():
        person = await service.update(session, principal, privacy, person_id, body.model_dump(exclude_unset=True))
        return _shaped(await service.to_out(session, privacy, person, reveal=False))

    return await idempotent(request, session, principal, produce, status_code=200)


@router.post("/persons/{person_id}/death", response_model=PersonOut, summary="Record a death: ends every active enrolment")
async def record_death(person_id: uuid.UUID, body: DeathIn, request: Request, session: SessionDep, privacy: PrivacyDep, principal: Writer):
    async def produce():
        person = await service.record_death(session, principal, person_id, body.date_of_death, body.version)
        return _shaped(await service.to_out(session, privacy, person, reveal=False))

    return await idempotent(request, session, principal, produce, status_code=200)


@router.post("/persons/{person_id}/move-out", response_model=PersonOut, summary="Record a move out of Jawa Timur")
async def move_out(person_id: uuid.UUID, body: MoveOutIn, request: Request, session: SessionDep, privacy: PrivacyDep, principal: Writer):
    async def produce():
        person = await service.move_out(session, principal, person_id, body.moved_on, body.destination, body.version)
        return _shaped(await service.to_out(session, privacy, person, reveal=False))

    return await idempotent(request, session, principal, produce, status_code=200)


@router.post("/persons/{person_id}/merge", response_model=PersonOut, summary="Merge this (duplicate or provisional) record into another")
async def merge_person(person_id: uuid.UUID, body: MergeIn, request: Request, session: SessionDep, privacy: PrivacyDep, principal: Verifier):
    async def produce():
        survivor = await service.merge(session, principal, privacy, person_id, body.into_person_id)
        return _shaped(await service.to_out(session, privacy, survivor, reveal=False))

    return await idempotent(request, session, principal, produce, status_code=200)


@router.get("/persons/{person_id}/households", response_model=list[MembershipOut], summary="The person's KK memberships over time")
async def person_households(person_id: uuid.UUID, session: SessionDep, principal: Reader):
    await service.get_person(session, principal, person_id)
    return await service.household_history(session, person_id)


@router.get("/persons/{person_id}/pii-access", response_model=list[PiiAccessOut], summary="Who read this person's unmasked data, when and why")
async def pii_access_log(person_id: uuid.UUID, session: SessionDep, principal: Annotated[Principal, require_scopes(access.AUDIT_READ)]):
    await service.get_person(session, principal, person_id)
    rows = (await session.exec(select(PiiAccess).where(PiiAccess.person_id == person_id).order_by(PiiAccess.id))).all()
    return [{"at": r.at, "subject": r.subject, "fields": r.fields, "reason": r.reason} for r in rows]


@router.get("/households/{household_id}", response_model=HouseholdOut, summary="A household (KK) and its current members")
async def get_household(household_id: uuid.UUID, session: SessionDep, principal: Reader):
    household = (await session.exec(select(Household).where(Household.id == household_id))).first()
    if household is None or not principal.may_access_region(household.regency_code):
        raise NotFound("no such household")
    rows = (
        await session.exec(
            select(HouseholdMember, Person.name)
            .join(Person, Person.id == HouseholdMember.person_id)
            .where(HouseholdMember.household_id == household_id, HouseholdMember.valid_to.is_(None))
            .order_by(HouseholdMember.id)
        )
    ).all()
    return {
        "id": household.id,
        "kk_number": household.kk_number,
        "regency_code": household.regency_code,
        "members": [{"person_id": m.person_id, "name": name, "relationship": m.relationship, "since": m.valid_from} for m, name in rows],
    }


@router.get("/reference/ppks", summary="The 26 PPKS categories")
async def ppks_categories(principal: Reader) -> dict[str, str]:
    return domain.PPKS_CATEGORIES


@router.get("/stats/persons", summary="Counts for dashboards: by regency, status, decile, PPKS category")
async def person_stats(session: SessionDep, principal: Reader) -> dict:
    region = principal.region
    where = "WHERE regency_code = :r" if region else ""
    params = {"r": region} if region else {}
    ppks = (await session.exec(text(f"SELECT c, count(*) FROM person, unnest(ppks) AS c {where} GROUP BY c").bindparams(**params))).all()
    return {
        "by_regency": await service.count_by(session, Person.regency_code, principal),
        "by_status": await service.count_by(session, Person.status, principal),
        "by_decile": await service.count_by(session, Person.decile, principal),
        "by_ppks": {c: n for c, n in ppks},
    }
