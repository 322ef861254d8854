"""Finding probable duplicates and deciding them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import select

from pilar_kernel.auth import Principal
from pilar_kernel.problems import Conflict, NotFound, Problem

from .. import access
from ..persons import service as persons
from ..persons.models import Person
from ..privacy import Privacy
from .models import DuplicateCandidate

_SIMILAR = text(
    """
    SELECT id, similarity(name_norm, :name) AS score
    FROM person
    WHERE birth_date = :birth_date AND district_code = :district AND id <> :id
      AND status IN ('active', 'moved_out') AND similarity(name_norm, :name) >= :threshold
    ORDER BY score DESC
    LIMIT 10
    """
)


async def find_and_queue(session: AsyncSession, person: Person, threshold: float) -> int:
    """Queue every existing record that probably is ``person`` too; returns how many."""
    if person.birth_date is None or person.district_code is None:
        return 0
    rows = (
        await session.exec(
            _SIMILAR.bindparams(name=person.name_norm, birth_date=person.birth_date, district=person.district_code, id=person.id, threshold=threshold)
        )
    ).all()
    for other_id, score in rows:
        await session.exec(
            pg_insert(DuplicateCandidate)
            .values(id=uuid.uuid4(), person_id=person.id, other_id=other_id, regency_code=person.regency_code, similarity=float(score))
            .on_conflict_do_nothing()
        )
    return len(rows)


async def _open(session: AsyncSession, principal: Principal, candidate_id: uuid.UUID) -> DuplicateCandidate:
    candidate = (await session.exec(select(DuplicateCandidate).where(DuplicateCandidate.id == candidate_id).with_for_update())).first()
    if candidate is None or not principal.may_access_region(candidate.regency_code):
        raise NotFound("no such duplicate candidate")
    if candidate.status != "open":
        raise Conflict(f"this pair was already {candidate.status}")
    return candidate


def _decide(candidate: DuplicateCandidate, principal: Principal, status: str, note: str | None) -> None:
    candidate.status = status
    candidate.decided_by = access.acting_user(principal)
    candidate.decided_at = datetime.now(UTC)
    candidate.note = note


async def merge(session: AsyncSession, principal: Principal, privacy: Privacy, candidate_id: uuid.UUID, keep: uuid.UUID, note: str | None) -> Person:
    candidate = await _open(session, principal, candidate_id)
    if keep not in (candidate.person_id, candidate.other_id):
        raise Problem("keep must be one of the pair", status=422, type="validation-error", title="Invalid input",
                      errors=[{"field": "keep", "message": "not one of the two records", "rule": "duplicate.keep"}])
    drop = candidate.other_id if keep == candidate.person_id else candidate.person_id
    survivor = await persons.merge(session, principal, privacy, drop, keep)
    _decide(candidate, principal, "merged", note)
    session.add(candidate)
    return survivor


async def dismiss(session: AsyncSession, principal: Principal, candidate_id: uuid.UUID, note: str) -> DuplicateCandidate:
    candidate = await _open(session, principal, candidate_id)
    _decide(candidate, principal, "dismissed", note)
    session.add(candidate)
    return candidate
