"""The registry's consumer of the disbursement service's payment events (``registry.aid``).

Each event carries the payment's whole state and its version, so a handler upserts the row
and keeps it only if the event is newer: redelivered or reordered events change nothing.
"""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from pilar_contracts.disbursement import PaymentCancelled, PaymentFailed, PaymentReturned, PaymentSent, PaymentSucceeded
from pilar_kernel.consumer import Consumer
from pilar_kernel.events import Envelope

from .models import AidHistory

aid = Consumer(name="registry.aid")


async def record_payment(session: AsyncSession, event, envelope: Envelope) -> None:
    row = {
        "payment_id": event.payment_id,
        "person_id": event.person_id,
        "programme_code": event.programme_code,
        "round_id": event.round_id,
        "year": event.year,
        "stage": event.stage,
        "amount": event.amount,
        "channel": event.channel,
        "status": event.status,
        "reason": getattr(event, "reason", None),
        "attempt": event.attempt,
        "returned_amount": getattr(event, "returned_amount", None),
        "version": event.version,
        "status_at": event.occurred_at,
    }
    stmt = pg_insert(AidHistory.__table__).values(**row)
    changing = {k: stmt.excluded[k] for k in row if k not in ("payment_id", "person_id")}
    await session.execute(
        stmt.on_conflict_do_update(index_elements=["payment_id"], set_=changing, where=AidHistory.__table__.c.version < stmt.excluded.version)
    )


for _event_class in (PaymentSent, PaymentSucceeded, PaymentFailed, PaymentReturned, PaymentCancelled):
    aid.on(_event_class)(record_payment)
