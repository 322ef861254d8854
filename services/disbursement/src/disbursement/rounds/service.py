"""Use cases of programmes, budgets and rounds. Each runs inside the caller's transaction and
records its events in the outbox there.

Locks are taken in one order everywhere, so that concurrent commands queue instead of
deadlocking: round → payment. Every command on a round starts by locking its row.
The population snapshot and payment creation are single SQL statements over the projection,
because a round may hold a hundred thousand people.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text, tuple_
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from pilar_kernel.auth import Principal
from pilar_kernel.pagination import decode_cursor, page
from pilar_kernel.problems import Conflict, Forbidden, NotFound, Problem, RuleViolation

from ..access import acting_user, same_officer
from ..events import RoundApproved, RoundClosed, emit
from ..payments import service as payments
from . import domain
from .domain import IllegalTransition
from .models import PaymentRound, Programme, ProgrammeBudget, RoundEntry


def _now() -> datetime:
    return datetime.now(UTC)


def invalid(errors: list[dict[str, str]]) -> Problem:
    fields = ", ".join(sorted({e["field"] for e in errors}))
    return Problem(f"invalid input: {fields}", status=422, type="validation-error", title="Invalid input", errors=errors)


def _stale(what: str, version: int) -> Conflict:
    return Conflict(f"the {what} changed since you read it (now at version {version}): read it again", current_version=version)


# -- programmes and budgets ---------------------------------------------------------------


async def list_programmes(session: AsyncSession) -> list[Programme]:
    return list((await session.exec(select(Programme).order_by(Programme.code))).all())


async def get_programme(session: AsyncSession, code: str, *, for_update: bool = False) -> Programme:
    stmt = select(Programme).where(Programme.code == code)
    if for_update:
        stmt = stmt.with_for_update()
    programme = (await session.exec(stmt)).first()
    if programme is None:
        raise NotFound(f"no programme {code} is set up for payment")
    return programme


async def budgets_of(session: AsyncSession, code: str) -> list[ProgrammeBudget]:
    return list((await session.exec(select(ProgrammeBudget).where(ProgrammeBudget.programme_code == code).order_by(ProgrammeBudget.year))).all())


async def _check_exclusive(session: AsyncSession, code: str, exclusive_with: list[str]) -> list[str]:
    codes = sorted(set(exclusive_with) - {code})
    if codes:
        known = set((await session.exec(select(Programme.code).where(col(Programme.code).in_(codes)))).all())
        unknown = [c for c in codes if c not in known]
        if unknown:
            raise RuleViolation("exclusive_with", f"unknown programme(s): {', '.join(unknown)}", rule="programme.unknown")
    return codes


async def create_programme(session: AsyncSession, data: dict[str, Any]) -> Programme:
    if (await session.exec(select(Programme.code).where(Programme.code == data["code"]))).first():
        raise Conflict(f"programme {data['code']} is already set up", errors=[{"field": "code", "message": "exists", "rule": "programme.unique"}])
    data["exclusive_with"] = await _check_exclusive(session, data["code"], data.get("exclusive_with") or [])
    programme = Programme(**data)
    session.add(programme)
    await session.flush()
    return programme


async def update_programme(session: AsyncSession, code: str, data: dict[str, Any]) -> Programme:
    programme = await get_programme(session, code, for_update=True)
    if data.pop("version") != programme.version:
        raise _stale("programme", programme.version)
    data["exclusive_with"] = await _check_exclusive(session, code, data.get("exclusive_with") or [])
    for key, value in data.items():
        setattr(programme, key, value)
    programme.version += 1
    programme.updated_at = _now()
    session.add(programme)
    await session.flush()
    return programme


async def set_budget(session: AsyncSession, code: str, year: int, amount: int, version: int | None) -> ProgrammeBudget:
    """Create or change a year's budget; it may not drop below what its rounds already take."""
    await get_programme(session, code)
    budget = (
        await session.exec(select(ProgrammeBudget).where(ProgrammeBudget.programme_code == code, ProgrammeBudget.year == year).with_for_update())
    ).first()
    if budget is None:
        budget = ProgrammeBudget(programme_code=code, year=year, amount=amount)
    else:
        if version is not None and version != budget.version:
            raise _stale("budget", budget.version)
        if amount < budget.allocated:
            raise RuleViolation("amount", f"the year's rounds already take Rp{budget.allocated:,}; the budget cannot be smaller", rule="budget.allocated")
        budget.amount = amount
        budget.version += 1
        budget.updated_at = _now()
    session.add(budget)
    await session.flush()
    return budget


# -- rounds -------------------------------------------------------------------------------


async def get_round(session: AsyncSession, round_id: uuid.UUID) -> PaymentRound:
    rnd = (await session.exec(select(PaymentRound).where(PaymentRound.id == round_id))).first()
    if rnd is None:
        raise NotFound("no such round")
    return rnd


async def lock_round(session: AsyncSession, round_id: uuid.UUID) -> PaymentRound:
    # populate_existing: triggers change the row behind the ORM's back (committed).
    stmt = select(PaymentRound).where(PaymentRound.id == round_id).with_for_update().execution_options(populate_existing=True)
    rnd = (await session.exec(stmt)).first()
    if rnd is None:
        raise NotFound("no such round")
    return rnd


async def reload(session: AsyncSession, rnd: PaymentRound) -> PaymentRound:
    await session.refresh(rnd)
    return rnd


def _advance(rnd: PaymentRound, action: str) -> None:
    try:
        rnd.status = domain.next_status(action, rnd.status)
    except IllegalTransition as exc:
        raise Conflict(str(exc), status_now=rnd.status) from exc
    rnd.version += 1
    rnd.updated_at = _now()


async def _save(session: AsyncSession, rnd: PaymentRound) -> PaymentRound:
    session.add(rnd)
    try:
        await session.flush()
    except IntegrityError as exc:
        constraint = getattr(getattr(exc.orig, "__cause__", None), "constraint_name", None)
        if constraint == "budget_allocated":
            raise RuleViolation("ceiling", "the year's budget has no room for this ceiling", rule="budget.exceeded") from exc
        raise
    return rnd


async def create_round(session: AsyncSession, principal: Principal, data: dict[str, Any]) -> PaymentRound:
    programme = await get_programme(session, data["programme_code"])
    errors = domain.check_round(
        amount=data["amount"], ceiling=data["ceiling"], period_start=data["period_start"], period_end=data["period_end"], year=data["year"]
    )
    if errors:
        raise invalid(errors)
    # The budget row is locked so that two rounds created at once see each other's ceilings.
    budget = (
        await session.exec(
            select(ProgrammeBudget)
            .where(ProgrammeBudget.programme_code == programme.code, ProgrammeBudget.year == data["year"])
            .with_for_update()
        )
    ).first()
    if budget is None:
        raise RuleViolation("year", f"{programme.code} has no budget for {data['year']}: set it first", rule="budget.missing")
    if budget.allocated + data["ceiling"] > budget.amount:
        raise RuleViolation(
            "ceiling",
            f"the {data['year']} budget has Rp{budget.amount - budget.allocated:,} left, less than this ceiling",
            rule="budget.exceeded",
        )
    taken = (
        await session.exec(
            select(PaymentRound.id).where(
                PaymentRound.programme_code == programme.code, PaymentRound.year == data["year"], PaymentRound.stage == data["stage"]
            )
        )
    ).first()
    if taken:
        raise Conflict(f"{programme.code} already has a stage {data['stage']} in {data['year']}",
                       errors=[{"field": "stage", "message": "exists", "rule": "round.unique_stage"}])
    rnd = PaymentRound(
        programme_code=programme.code,
        year=data["year"],
        stage=data["stage"],
        name=data.get("name") or f"{programme.name} {data['year']} tahap {data['stage']}",
        amount=data["amount"],
        ceiling=data["ceiling"],
        period_start=data["period_start"],
        period_end=data["period_end"],
        channel=data.get("channel") or programme.default_channel,
        created_by=acting_user(principal),
    )
    return await _save(session, rnd)


async def update_round(session: AsyncSession, round_id: uuid.UUID, data: dict[str, Any]) -> PaymentRound:
    rnd = await lock_round(session, round_id)
    if data.pop("version") != rnd.version:
        raise _stale("round", rnd.version)
    if rnd.status != "draft":
        raise Conflict(f"a round can be edited only as a draft; this one is {rnd.status}")
    for key, value in data.items():
        setattr(rnd, key, value)
    errors = domain.check_round(amount=rnd.amount, ceiling=rnd.ceiling, period_start=rnd.period_start, period_end=rnd.period_end, year=rnd.year)
    if errors:
        raise invalid(errors)
    rnd.version += 1
    rnd.updated_at = _now()
    return await _save(session, rnd)


async def list_rounds(
    session: AsyncSession, *, programme_code: str | None, year: int | None, status: str | None, limit: int, cursor: str | None
) -> tuple[list[PaymentRound], str | None]:
    stmt = select(PaymentRound)
    if programme_code:
        stmt = stmt.where(PaymentRound.programme_code == programme_code)
    if year:
        stmt = stmt.where(PaymentRound.year == year)
    if status:
        stmt = stmt.where(PaymentRound.status == status)
    after = decode_cursor(cursor, datetime, uuid.UUID)
    if after:
        stmt = stmt.where(tuple_(PaymentRound.created_at, PaymentRound.id) > (after[0], after[1]))
    rows = list((await session.exec(stmt.order_by(PaymentRound.created_at, PaymentRound.id).limit(limit + 1))).all())
    return page(rows, limit, lambda r: [r.created_at.isoformat(), str(r.id)])


# -- who is payable -----------------------------------------------------------------------
#
# One statement classifies every person enrolled in the programme: the first rule they fail
# is their exclusion reason (domain.EXCLUSION_REASONS, in order). ``over_budget`` is decided
# after, by rank: the earliest enrolled eligible persons fill the ceiling.

_CLASSIFY = """
WITH cand AS (
    SELECT DISTINCT ON (en.person_id)
           en.person_id, en.enrolment_id, en.status AS en_status, en.active_from, en.ended_on, en.end_reason,
           en.regency_code AS en_regency
    FROM payee_enrolment en
    WHERE en.programme_code = :code {person_filter}
    ORDER BY en.person_id, (en.status = 'active' AND en.active_from <= :period_end) DESC, en.active_from, en.enrolment_id
),
classified AS (
    SELECT c.person_id, c.enrolment_id, c.active_from, p.nik_hash,
           coalesce(p.regency_code, c.en_regency) AS regency_code,
           CASE
               WHEN p.status = 'deceased' THEN 'deceased'
               WHEN p.status = 'merged' THEN 'merged'
               WHEN c.en_status <> 'active' OR c.active_from > :period_end THEN 'not_active'
               WHEN {paid_hit} THEN 'already_paid'
               WHEN {exclusive_hit} THEN 'exclusive_programme'
           END AS reason,
           CASE
               WHEN p.status = 'deceased' THEN 'died on ' || coalesce(p.date_of_death::text, 'an unknown date')
               WHEN p.status = 'merged' THEN 'record merged into ' || coalesce(p.merged_into::text, 'another')
               WHEN c.en_status = 'suspended' THEN 'enrolment suspended'
               WHEN c.en_status <> 'active' THEN 'enrolment ended on ' || coalesce(c.ended_on::text, '?') || ' (' || coalesce(c.end_reason, '?') || ')'
               WHEN c.active_from > :period_end THEN 'enrolment active only from ' || c.active_from::text
               WHEN {paid_hit} THEN {paid_detail}
               WHEN {exclusive_hit} THEN {exclusive_detail}
           END AS detail
    FROM cand c
    JOIN payee_person p ON p.person_id = c.person_id
    {paid_join}
    {exclusive_join}
)
"""

# A payment in this round: the person's own (even cancelled: nobody gets a second one), or a
# live one made to a duplicate record since merged into this person. Only looked for once the
# round has payments: a snapshot is always taken before.
_PAID_JOIN = """
    LEFT JOIN LATERAL (
        SELECT x.person_id, x.status FROM payment x WHERE x.round_id = :round_id AND x.person_id = c.person_id
        UNION ALL
        SELECT x.person_id, x.status FROM payee_person m JOIN payment x ON x.round_id = :round_id AND x.person_id = m.person_id
        WHERE m.merged_into = c.person_id AND x.status <> 'cancelled'
        LIMIT 1
    ) paid ON true
"""
_PAID_DETAIL = """CASE
                    WHEN paid.person_id <> c.person_id THEN 'paid in this round under the merged record ' || paid.person_id::text
                    WHEN paid.status = 'cancelled' THEN 'its payment in this round was cancelled; nobody is paid twice in a round'
                    ELSE 'a payment already exists in this round' END"""

# Payees of overlapping rounds of mutually exclusive programmes, unless their payment there was cancelled.
_EXCLUSIVE_JOIN = """
    LEFT JOIN LATERAL (
        SELECT r.programme_code, r.year, r.stage
        FROM round_entry e JOIN payment_round r ON r.id = e.round_id
        WHERE e.round_id = ANY(:exclusive_rounds) AND e.person_id = c.person_id AND e.outcome = 'payee'
          AND NOT EXISTS (SELECT 1 FROM payment x WHERE x.round_id = e.round_id AND x.person_id = e.person_id AND x.status = 'cancelled')
        LIMIT 1
    ) excl ON true
"""


async def _exclusive_rounds(session: AsyncSession, rnd: PaymentRound) -> list[uuid.UUID]:
    programme = await get_programme(session, rnd.programme_code)
    if not programme.exclusive_with:
        return []
    rows = await session.execute(
        text(
            """
            SELECT id FROM payment_round
            WHERE programme_code = ANY(:codes) AND status IN ('approved', 'disbursing', 'closed')
              AND period_start <= :period_end AND period_end >= :period_start
            """
        ),
        {"codes": programme.exclusive_with, "period_start": rnd.period_start, "period_end": rnd.period_end},
    )
    return list(rows.scalars())


def _classify_sql(exclusive: bool, single_person: bool) -> str:
    """The classification for the whole programme (a snapshot) or one person (an addition, which may come after payments)."""
    return _CLASSIFY.format(
        person_filter="AND en.person_id = :person_id" if single_person else "",
        paid_hit="paid.person_id IS NOT NULL" if single_person else "false",
        paid_detail=_PAID_DETAIL if single_person else "NULL",
        paid_join=_PAID_JOIN if single_person else "",
        exclusive_hit="excl.programme_code IS NOT NULL" if exclusive else "false",
        exclusive_detail=(
            "'receives ' || excl.programme_code || ' ' || excl.year || ' stage ' || excl.stage || ' in an overlapping period'"
            if exclusive else "NULL"
        ),
        exclusive_join=_EXCLUSIVE_JOIN if exclusive else "",
    )


def _classify_params(rnd: PaymentRound, exclusive_rounds: list[uuid.UUID]) -> dict[str, Any]:
    params: dict[str, Any] = {"code": rnd.programme_code, "period_end": rnd.period_end, "round_id": rnd.id}
    if exclusive_rounds:
        params["exclusive_rounds"] = exclusive_rounds
    return params


async def take_snapshot(session: AsyncSession, principal: Principal, round_id: uuid.UUID) -> PaymentRound:
    """List every payee and every exclusion with its reason; taking it again replaces it."""
    rnd = await lock_round(session, round_id)
    _advance(rnd, "snapshot")
    user = acting_user(principal)
    exclusive_rounds = await _exclusive_rounds(session, rnd)
    slots = domain.slots(rnd.ceiling, rnd.amount)
    await session.execute(text("DELETE FROM round_entry WHERE round_id = :r"), {"r": rnd.id})
    await session.execute(
        text(
            _classify_sql(bool(exclusive_rounds), False)
            + """
            INSERT INTO round_entry (round_id, person_id, nik_hash, regency_code, enrolment_id, outcome, reason, detail, amount, source, added_by)
            SELECT :round_id, person_id, nik_hash, regency_code, enrolment_id,
                   CASE WHEN reason IS NULL AND rank <= :slots THEN 'payee' ELSE 'excluded' END,
                   CASE WHEN reason IS NULL AND rank > :slots THEN 'over_budget' ELSE reason END,
                   CASE WHEN reason IS NULL AND rank > :slots
                        THEN 'the ceiling pays ' || :slots_text || ' beneficiaries, enrolled earlier than this one'
                        ELSE detail END,
                   CASE WHEN reason IS NULL AND rank <= :slots THEN CAST(:amount AS bigint) END,
                   'snapshot', :user
            FROM (SELECT cl.*, row_number() OVER (ORDER BY reason IS NULL DESC, active_from, enrolment_id) AS rank FROM classified cl) ranked
            """
        ),
        {**_classify_params(rnd, exclusive_rounds), "slots": slots, "slots_text": str(slots), "amount": rnd.amount, "user": user},
    )
    count, planned = (
        await session.execute(
            text("SELECT count(*), CAST(coalesce(sum(amount), 0) AS bigint) FROM round_entry WHERE round_id = :r AND outcome = 'payee'"), {"r": rnd.id}
        )
    ).one()
    rnd.payee_count, rnd.planned_amount = count, planned
    rnd.prepared_by = user
    rnd.snapshot_version += 1
    rnd.snapshot_at = _now()
    return await _save(session, rnd)


async def snapshot_summary(session: AsyncSession, rnd: PaymentRound, region: str | None) -> dict[str, Any]:
    where, params = "round_id = :r", {"r": rnd.id}
    if region:
        where += " AND (regency_code = :g OR regency_code LIKE :gp)"
        params.update(g=region, gp=region + ".%")
    rows = (
        await session.execute(
            text(f"SELECT outcome, reason, count(*), CAST(coalesce(sum(amount), 0) AS bigint) FROM round_entry WHERE {where} GROUP BY outcome, reason"), params
        )
    ).all()
    payees = sum(n for outcome, _, n, _ in rows if outcome == "payee")
    planned = sum(a for outcome, _, _, a in rows if outcome == "payee")
    return {
        "round_id": rnd.id,
        "snapshot_version": rnd.snapshot_version,
        "taken_at": rnd.snapshot_at,
        "prepared_by": rnd.prepared_by,
        "region": region,
        "payees": payees,
        "planned_amount": planned,
        "excluded": {reason: n for outcome, reason, n, _ in rows if outcome == "excluded"},
    }


async def approve(session: AsyncSession, principal: Principal, round_id: uuid.UUID, sk_number: str, snapshot_version: int) -> PaymentRound:
    """Approve the snapshot the approver reviewed (its version) under a decree (SK) number."""
    rnd = await lock_round(session, round_id)
    user = acting_user(principal)
    if rnd.status in ("approved", "disbursing", "closed") and same_officer(rnd.approved_by, user) and rnd.sk_number == sk_number:
        return rnd  # the same approval again: nothing changes
    try:
        domain.next_status("approve", rnd.status)
    except IllegalTransition as exc:
        raise Conflict(str(exc), status_now=rnd.status) from exc
    if snapshot_version != rnd.snapshot_version:
        raise Conflict(
            f"the snapshot was taken again (now version {rnd.snapshot_version}); review it before approving",
            current_snapshot_version=rnd.snapshot_version,
        )
    adders = (await session.execute(text("SELECT DISTINCT added_by FROM round_entry WHERE round_id = :r AND source = 'addition'"), {"r": rnd.id})).scalars()
    if any(same_officer(user, other) for other in (rnd.prepared_by, *adders)):
        raise Forbidden("a round must be approved by another officer than the one who prepared it", rule="round.four_eyes")
    if rnd.payee_count == 0:
        raise RuleViolation("round", "the snapshot has no payees: there is nothing to approve", rule="round.empty")
    _advance(rnd, "approve")
    rnd.approved_by, rnd.approved_at, rnd.sk_number = user, _now(), sk_number
    await _save(session, rnd)
    await emit(
        session,
        RoundApproved(
            round_id=rnd.id, programme_code=rnd.programme_code, year=rnd.year, stage=rnd.stage, sk_number=sk_number,
            amount_per_beneficiary=rnd.amount, ceiling=rnd.ceiling, payee_count=rnd.payee_count, planned_amount=rnd.planned_amount,
            period_start=rnd.period_start, period_end=rnd.period_end, channel=rnd.channel,
        ),
    )
    return rnd


# Persons whose standing changed since the snapshot (death, merge, enrolment ended) are not paid.
_RECHECK = """
UPDATE round_entry e
SET outcome = 'excluded', amount = NULL,
    reason = CASE p.status WHEN 'deceased' THEN 'deceased' WHEN 'merged' THEN 'merged' ELSE 'not_active' END,
    detail = CASE p.status WHEN 'deceased' THEN 'died on ' || coalesce(p.date_of_death::text, 'an unknown date')
                           WHEN 'merged' THEN 'record merged into ' || coalesce(p.merged_into::text, 'another')
                           ELSE 'enrolment ended' END || ' after the snapshot'
FROM payee_person p
WHERE e.round_id = :r AND e.outcome = 'payee' AND p.person_id = e.person_id
  AND (p.status <> 'active' OR NOT EXISTS (
        SELECT 1 FROM payee_enrolment en
        WHERE en.person_id = e.person_id AND en.programme_code = :code AND en.status = 'active'))
"""

# A round's payments are created once, under the round's lock; were a second one ever tried
# for a person, the unique (round, person) constraint would refuse it.
_CREATE_PAYMENTS = """
INSERT INTO payment (id, round_id, person_id, nik_hash, regency_code, programme_code, year, stage, amount, channel, status)
SELECT gen_random_uuid(), e.round_id, e.person_id, e.nik_hash, e.regency_code, :code, :year, :stage, e.amount, :channel, 'created'
FROM round_entry e
WHERE e.round_id = :r AND e.outcome = 'payee' {person_filter}
"""


async def start_disbursing(session: AsyncSession, principal: Principal, round_id: uuid.UUID) -> PaymentRound:
    """Create one payment per payee of the approved round; the channels take it from there."""
    rnd = await lock_round(session, round_id)
    if rnd.status == "disbursing":
        return rnd  # started already: payments exist (a repeat creates none)
    _advance(rnd, "disburse")
    await session.execute(text(_RECHECK), {"r": rnd.id, "code": rnd.programme_code})
    await session.execute(
        text(_CREATE_PAYMENTS.format(person_filter="")),
        {"r": rnd.id, "code": rnd.programme_code, "year": rnd.year, "stage": rnd.stage, "channel": rnd.channel},
    )
    count, planned = (
        await session.execute(
            text("SELECT count(*), CAST(coalesce(sum(amount), 0) AS bigint) FROM round_entry WHERE round_id = :r AND outcome = 'payee'"), {"r": rnd.id}
        )
    ).one()
    rnd.payee_count, rnd.planned_amount = count, planned
    rnd.disbursing_at = _now()
    await _save(session, rnd)
    return await reload(session, rnd)


async def add_payee(session: AsyncSession, principal: Principal, round_id: uuid.UUID, person_id: uuid.UUID, note: str) -> RoundEntry:
    """Add one eligible person to a round (a late approval, say) if the ceiling still has room.

    Adding someone already a payee changes nothing. Once the round is disbursing, the
    payment is created at once; the ceiling and the one-payment rule hold in the database
    even if two additions race past these checks.
    """
    rnd = await lock_round(session, round_id)
    if rnd.status not in domain.ADDITION_STATUSES:
        raise Conflict(f"payees can be added while a round is {', '.join(domain.ADDITION_STATUSES)}; this one is {rnd.status}")
    existing = (await session.exec(select(RoundEntry).where(RoundEntry.round_id == rnd.id, RoundEntry.person_id == person_id))).first()
    if existing is not None and existing.outcome == "payee":
        live = (
            await session.execute(
                text("SELECT 1 FROM payment WHERE round_id = :r AND person_id = :p AND status <> 'cancelled'"), {"r": rnd.id, "p": person_id}
            )
        ).first()
        if rnd.status != "disbursing" or live:
            return existing  # a payee already: nothing changes
    exclusive_rounds = await _exclusive_rounds(session, rnd)
    row = (
        await session.execute(
            text(_classify_sql(bool(exclusive_rounds), True) + " SELECT * FROM classified"),
            {**_classify_params(rnd, exclusive_rounds), "person_id": person_id},
        )
    ).mappings().first()
    if row is None:
        raise RuleViolation("person_id", f"no {rnd.programme_code} enrolment of this person is known here", rule="payee.not_enrolled")
    if row["reason"] is not None:
        raise RuleViolation("person_id", f"not payable in this round: {row['detail']}", rule=f"payee.{row['reason']}")
    used = rnd.committed if rnd.status == "disbursing" else rnd.planned_amount
    if used + rnd.amount > rnd.ceiling:
        raise RuleViolation("person_id", f"the round's ceiling has Rp{rnd.ceiling - used:,} left, less than one payment", rule="payee.over_budget")
    user = acting_user(principal)
    await session.execute(
        text(
            """
            INSERT INTO round_entry (round_id, person_id, nik_hash, regency_code, enrolment_id, outcome, amount, source, added_by, note)
            VALUES (:r, :p, :nik_hash, :regency, :enrolment, 'payee', :amount, 'addition', :user, :note)
            ON CONFLICT (round_id, person_id) DO UPDATE
            SET outcome = 'payee', reason = NULL, detail = NULL, amount = excluded.amount, source = 'addition',
                added_by = excluded.added_by, note = excluded.note, added_at = now()
            """
        ),
        {"r": rnd.id, "p": person_id, "nik_hash": row["nik_hash"], "regency": row["regency_code"], "enrolment": row["enrolment_id"],
         "amount": rnd.amount, "user": user, "note": note},
    )
    rnd.payee_count += 1
    rnd.planned_amount += rnd.amount
    rnd.version += 1
    rnd.updated_at = _now()
    await _save(session, rnd)
    if rnd.status == "disbursing":
        await session.execute(
            text(_CREATE_PAYMENTS.format(person_filter="AND e.person_id = :p")),
            {"r": rnd.id, "p": person_id, "code": rnd.programme_code, "year": rnd.year, "stage": rnd.stage, "channel": rnd.channel},
        )
    entry = (
        await session.exec(
            select(RoundEntry).where(RoundEntry.round_id == rnd.id, RoundEntry.person_id == person_id).execution_options(populate_existing=True)
        )
    ).one()
    return entry


async def close(session: AsyncSession, principal: Principal, round_id: uuid.UUID) -> PaymentRound:
    """Close a round whose payments are all settled; payments still failed are cancelled."""
    rnd = await lock_round(session, round_id)
    if rnd.status == "closed":
        return rnd
    if rnd.status == "disbursing":
        queued, sent = (
            await session.execute(
                text("SELECT count(*) FILTER (WHERE status = 'created'), count(*) FILTER (WHERE status = 'sent') FROM payment WHERE round_id = :r"),
                {"r": rnd.id},
            )
        ).one()
        if queued or sent:
            raise Conflict(
                f"{queued + sent} payment(s) are still waiting: {queued} to be sent (wait, or cancel them), {sent} for their result "
                "(the bank is asked about those with no result after a while; the bank statement or a settlement by hand, "
                "POST /v1/payments/{id}/settlements, settles them)",
                unsettled=queued + sent, queued=queued, sent=sent,
            )
    _advance(rnd, "close")
    await payments.cancel_where(session, "round_id = :r AND status = 'failed'", {"r": rnd.id}, "the round was closed")
    rnd.closed_by, rnd.closed_at = acting_user(principal), _now()
    await _save(session, rnd)
    await reload(session, rnd)
    totals = await payments.round_totals(session, rnd.id)
    await emit(
        session,
        RoundClosed(
            round_id=rnd.id, programme_code=rnd.programme_code, year=rnd.year, stage=rnd.stage,
            paid_count=totals["paid_count"], paid_amount=totals["paid_amount"], cancelled_count=totals["cancelled_count"],
            returned_count=totals["returned_count"], returned_amount=totals["returned_amount"], remaining_budget=rnd.ceiling - rnd.committed,
        ),
    )
    return rnd


async def cancel(session: AsyncSession, principal: Principal, round_id: uuid.UUID, reason: str) -> PaymentRound:
    rnd = await lock_round(session, round_id)
    if rnd.status == "cancelled":
        return rnd
    _advance(rnd, "cancel")
    rnd.cancel_reason = reason
    return await _save(session, rnd)


async def list_entries(
    session: AsyncSession,
    principal: Principal,
    rnd: PaymentRound,
    *,
    outcome: str | None,
    reason: str | None,
    regency_code: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[RoundEntry], str | None]:
    stmt = select(RoundEntry).where(RoundEntry.round_id == rnd.id)
    if principal.region:
        if regency_code and not principal.may_access_region(regency_code):
            return [], None
        regency_code = regency_code or principal.region
    if regency_code:
        stmt = stmt.where(RoundEntry.regency_code == regency_code)
    if outcome:
        stmt = stmt.where(RoundEntry.outcome == outcome)
    if reason:
        stmt = stmt.where(RoundEntry.reason == reason)
    after = decode_cursor(cursor, uuid.UUID)
    if after:
        stmt = stmt.where(RoundEntry.person_id > after[0])
    rows = list((await session.exec(stmt.order_by(RoundEntry.person_id).limit(limit + 1))).all())
    return page(rows, limit, lambda e: [str(e.person_id)])


def round_out(rnd: PaymentRound) -> dict[str, Any]:
    out = rnd.model_dump()
    out["remaining_budget"] = rnd.ceiling - rnd.committed
    return out
