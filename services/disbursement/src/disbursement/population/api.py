"""HTTP routes to read the payable population as this service knows it (``/v1/population``)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlmodel import select

from pilar_kernel.auth import Principal, require_scopes
from pilar_kernel.db import SessionDep
from pilar_kernel.pagination import decode_cursor, page
from pilar_kernel.problems import NotFound

from .. import access
from ..rounds.schemas import CODE_PATTERN
from .models import PayeeEnrolment, PayeePerson

router = APIRouter(prefix="/v1/population", tags=["population"])

Reader = Annotated[Principal, require_scopes(access.READ)]


class EnrolmentOut(BaseModel):
    enrolment_id: uuid.UUID
    person_id: uuid.UUID
    programme_code: str
    regency_code: str | None
    status: Literal["active", "suspended", "ended"]
    active_from: date | None
    ended_on: date | None
    end_reason: str | None


class PersonOut(BaseModel):
    person_id: uuid.UUID
    nik_hash: str | None
    regency_code: str | None
    status: Literal["active", "deceased", "merged"]
    date_of_death: date | None
    merged_into: uuid.UUID | None
    enrolments: list[EnrolmentOut]


class EnrolmentPage(BaseModel):
    items: list[EnrolmentOut]
    next_cursor: str | None


@router.get("/persons/{person_id}", response_model=PersonOut, summary="One person as known here, with the enrolments that make them payable")
async def get_person(person_id: uuid.UUID, session: SessionDep, principal: Reader):
    person = (await session.exec(select(PayeePerson).where(PayeePerson.person_id == person_id))).first()
    if person is None:
        raise NotFound("no such person in the payable population")
    access.ensure_region(principal, person.regency_code, "person in the payable population")
    enrolments = (await session.exec(select(PayeeEnrolment).where(PayeeEnrolment.person_id == person_id).order_by(PayeeEnrolment.enrolment_id))).all()
    return {**person.model_dump(), "enrolments": [e.model_dump() for e in enrolments]}


@router.get("/enrolments", response_model=EnrolmentPage, summary="Enrolments known here (a regency office sees its own region's)")
async def list_enrolments(
    session: SessionDep,
    principal: Reader,
    programme_code: str | None = Query(default=None, pattern=CODE_PATTERN),
    status: Literal["active", "suspended", "ended"] | None = None,
    regency_code: str | None = Query(default=None, pattern=r"^\d{2}\.\d{2}$"),
    limit: int = Query(default=100, ge=1, le=1000),
    cursor: str | None = None,
):
    stmt = select(PayeeEnrolment)
    if principal.region:
        if regency_code and not principal.may_access_region(regency_code):
            return {"items": [], "next_cursor": None}
        regency_code = regency_code or principal.region
    if regency_code:
        stmt = stmt.where(PayeeEnrolment.regency_code == regency_code)
    if programme_code:
        stmt = stmt.where(PayeeEnrolment.programme_code == programme_code)
    if status:
        stmt = stmt.where(PayeeEnrolment.status == status)
    after = decode_cursor(cursor, uuid.UUID)
    if after:
        stmt = stmt.where(PayeeEnrolment.enrolment_id > after[0])
    rows = list((await session.exec(stmt.order_by(PayeeEnrolment.enrolment_id).limit(limit + 1))).all())
    items, next_cursor = page(rows, limit, lambda e: [str(e.enrolment_id)])
    return {"items": [e.model_dump() for e in items], "next_cursor": next_cursor}
