"""Events the disaster service publishes (models in ``pilar_contracts.disaster``) and the
outbox helper its modules use. The registry events it consumes are handled in
``people.registry``; importing this module registers every model this service touches."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from pilar_contracts import registry as _registry  # noqa: F401  (the events we consume)
from pilar_contracts.disaster import (  # noqa: F401
    SOURCE,
    DistributionRecorded,
    HouseholdAffected,
    IncidentDeclared,
    IncidentStatusChanged,
    ItemQuantity,
    PersonAffected,
    StockBelowMinimum,
    StockShipped,
)
from pilar_kernel.events import Event
from pilar_kernel.outbox import add_event


async def emit(session: AsyncSession, event: Event) -> None:
    await add_event(session, event, source=SOURCE)
