"""The consumer of the disaster service's household events (consumer ``disbursement.relief``).

Where a relief programme is configured for the incident's category and regency, an affected
household gets emergency cash: one payment in the programme's open round, to the household's
recipient (a registry person), the amount set for its damage level. Exactly once per
household per incident: the grant row is unique on (incident, household) and is written in
the same transaction as the payment, and a paid grant is never reconsidered.

When the household cannot be paid yet (nobody in it known to the registry, the round not
disbursing, the ceiling reached...) the grant is held with the reason; a later re-assessment
of the household (a newer version of the event) tries again. Lock order as everywhere in
this service: round → payment.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import structlog
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from pilar_contracts.disaster import HouseholdAffected
from pilar_kernel.consumer import Consumer
from pilar_kernel.events import Envelope

from .models import ReliefGrant, ReliefProgramme

NAME = "disbursement.relief"
ADDED_BY = "system:disaster-relief"

relief = Consumer(name=NAME)
log = structlog.get_logger("disbursement.relief")

_grant = ReliefGrant.__table__


def amount_for(programme: ReliefProgramme | dict, damage_level: str) -> int:
    get = programme.get if isinstance(programme, dict) else lambda k: getattr(programme, k)
    return {"light": get("amount_light"), "moderate": get("amount_moderate"), "heavy": get("amount_heavy")}.get(damage_level, 0) or 0


async def _programme_for(session: AsyncSession, event: HouseholdAffected) -> dict | None:
    row = (await session.execute(text(
        """
        SELECT * FROM relief_programme
        WHERE active
          AND (cardinality(incident_categories) = 0 OR :cat = ANY(incident_categories))
          AND (cardinality(regency_codes) = 0 OR :reg = ANY(regency_codes))
        ORDER BY created_at, id LIMIT 1
        """), {"cat": event.incident_category, "reg": event.regency_code})).mappings().first()
    return dict(row) if row else None


async def _save(session: AsyncSession, event: HouseholdAffected, programme: dict, *, status: str, amount: int, reason: str | None = None,
                payment_id: uuid.UUID | None = None) -> None:
    values = {
        "id": uuid.uuid4(), "incident_id": event.incident_id, "household_id": event.household_id, "relief_programme_id": programme["id"],
        "regency_code": event.regency_code, "damage_level": event.damage_level, "person_id": event.recipient_person_id,
        "amount": amount, "status": status, "reason": reason, "payment_id": payment_id, "household_version": event.version,
        "updated_at": datetime.now(UTC),
    }
    stmt = pg_insert(_grant).values(**values)
    keep = ("relief_programme_id", "regency_code", "damage_level", "person_id", "amount", "status", "reason", "payment_id",
            "household_version", "updated_at")
    # Only a held grant changes; a paid one stays as it is.
    await session.execute(stmt.on_conflict_do_update(
        constraint="ux_relief_household", set_={k: stmt.excluded[k] for k in keep}, where=_grant.c.status == "held"))


async def _pay(session: AsyncSession, event: HouseholdAffected, programme: dict, amount: int) -> str | None:
    """Create the payment in the programme's round; returns a hold reason instead when it cannot."""
    person_id = event.recipient_person_id
    rnd = (await session.execute(text("SELECT * FROM payment_round WHERE id = :r FOR UPDATE"), {"r": programme["round_id"]})).mappings().one()
    if rnd["status"] != "disbursing":
        return "round_not_disbursing"
    if rnd["committed"] + amount > rnd["ceiling"]:
        return "over_ceiling"
    payee = (await session.execute(text("SELECT status FROM payee_person WHERE person_id = :p"), {"p": person_id})).first()
    if payee is not None and payee.status != "active":
        return "recipient_not_payable"  # the registry recorded a death or a merge
    paid = (await session.execute(text("SELECT 1 FROM payment WHERE round_id = :r AND person_id = :p"), {"r": rnd["id"], "p": person_id})).first()
    if paid is not None:
        return "already_paid_in_round"  # one payment per person and round: another incident already paid them here
    note = f"emergency cash: incident {event.incident_id}, household {event.household_id}, {event.damage_level} damage"
    await session.execute(text(
        """
        INSERT INTO round_entry (round_id, person_id, nik_hash, regency_code, outcome, amount, source, added_by, note)
        VALUES (:r, :p, :h, :reg, 'payee', :amount, 'addition', :by, :note)
        ON CONFLICT (round_id, person_id) DO UPDATE
        SET outcome = 'payee', reason = NULL, detail = NULL, amount = excluded.amount, source = 'addition',
            added_by = excluded.added_by, note = excluded.note, added_at = now()
        """), {"r": rnd["id"], "p": person_id, "h": event.recipient_nik_hash, "reg": event.regency_code, "amount": amount, "by": ADDED_BY,
               "note": note})
    payment_id = (await session.execute(text(
        """
        INSERT INTO payment (id, round_id, person_id, nik_hash, regency_code, programme_code, year, stage, amount, channel, status)
        VALUES (gen_random_uuid(), :r, :p, :h, :reg, :code, :year, :stage, :amount, :channel, 'created')
        RETURNING id
        """), {"r": rnd["id"], "p": person_id, "h": event.recipient_nik_hash, "reg": event.regency_code, "code": rnd["programme_code"],
               "year": rnd["year"], "stage": rnd["stage"], "amount": amount, "channel": rnd["channel"]})).scalar_one()
    await session.execute(text(
        "UPDATE payment_round SET payee_count = payee_count + 1, planned_amount = planned_amount + :a, version = version + 1, "
        "updated_at = now() WHERE id = :r"), {"a": amount, "r": rnd["id"]})
    await _save(session, event, programme, status="paid", amount=amount, payment_id=payment_id)
    return None


@relief.on(HouseholdAffected)
async def household_affected(session: AsyncSession, event: HouseholdAffected, envelope: Envelope) -> None:
    existing = (await session.execute(
        text("SELECT status, household_version FROM relief_grant WHERE incident_id = :i AND household_id = :h FOR UPDATE"),
        {"i": event.incident_id, "h": event.household_id})).first()
    if existing is not None and (existing.status == "paid" or existing.household_version >= event.version):
        return  # paid once already, or an older assessment arriving late
    programme = await _programme_for(session, event)
    if programme is None:
        return  # no relief programme for this incident
    amount = amount_for(programme, event.damage_level)
    if amount <= 0:
        if existing is not None:
            await _save(session, event, programme, status="held", amount=0, reason="damage_not_paid")
        return
    if event.recipient_person_id is None:
        await _save(session, event, programme, status="held", amount=amount, reason="recipient_unknown")
        return
    reason = await _pay(session, event, programme, amount)
    if reason is not None:
        log.info("emergency cash held", household_id=str(event.household_id), reason=reason)
        await _save(session, event, programme, status="held", amount=amount, reason=reason)
