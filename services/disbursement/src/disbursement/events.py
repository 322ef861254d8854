"""Events the disbursement service publishes (models in ``pilar_contracts.disbursement``) and
the outbox helpers its modules use. The handlers of the registry's events are in
``population.events``; importing this module registers every model this service touches."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from pilar_contracts import registry as _registry  # noqa: F401  (the events we consume)
from pilar_contracts.disbursement import (  # noqa: F401
    SOURCE,
    PaymentCancelled,
    PaymentFailed,
    PaymentReturned,
    PaymentSent,
    PaymentSucceeded,
    RoundApproved,
    RoundClosed,
)
from pilar_kernel.events import Envelope, Event
from pilar_kernel.outbox import add_event, lane_of
from pilar_kernel.tables import outbox
from pilar_kernel.tracecontext import child_traceparent


async def emit(session: AsyncSession, event: Event) -> None:
    await add_event(session, event, source=SOURCE)


async def emit_many(session: AsyncSession, events: Sequence[Event]) -> None:
    """Record many events in the outbox with one multi-row insert.

    Writes exactly the rows ``add_event`` writes; a bank callback settles up to a thousand
    payments, and one insert per event would dominate its transaction.
    """
    if not events:
        return
    rows = []
    traceparent = child_traceparent()  # one business step: its events share one span
    for event in events:
        env = Envelope.for_event(event, source=SOURCE, traceparent=traceparent)
        rows.append(
            {
                "topic": event.topic,
                "message_key": event.aggregate_id,
                "lane": lane_of(event.aggregate_id),
                "ce_id": uuid.UUID(env.id),
                "ce_type": env.type,
                "ce_source": env.source,
                "ce_time": env.time,
                "ce_subject": env.subject,
                "traceparent": env.traceparent,
                "payload": env.data,
            }
        )
    await session.execute(insert(outbox), rows)
