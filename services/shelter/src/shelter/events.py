"""Events the shelter service publishes: the contract models live in ``pilar_contracts.shelter``
so that consumers in other services import the models, not the shelter service."""

from pilar_contracts.shelter import *  # noqa: F401,F403
from pilar_contracts.shelter import SOURCE  # noqa: F401
from pilar_kernel.outbox import add_event


async def emit(session, event) -> None:
    await add_event(session, event, source=SOURCE)
