"""Composition root of the registry service: routers, consumers, privacy keys, app factory."""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from pilar_kernel import regions
from pilar_kernel.service import ServiceSpec, create_service_app

from . import events  # noqa: F401  (registers the event models)
from .aid import api as aid_api
from .aid.events import aid
from .disasters import consumer as disasters_consumer
from .duplicates import api as duplicates_api
from .imports import api as imports_api
from .imports.service import import_worker
from .persons import api as persons_api
from .persons.reads import PersonReader
from .programmes import api as programmes_api
from .referrals.events import shelter_referrals
from .returns import consumer as returns_consumer
from .privacy import Privacy
from .settings import Settings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def _tune_gc() -> None:
    """Keep Python's cyclic garbage collector off the long-lived objects of the process.

    After start-up the process holds about 170,000 objects that live as long as it does
    (modules, the region data that registration and import checks use, the app). Every full
    collection walked all of them, about 0.1 s each here, and during an import they came
    every piece or two: a fifth of the registry's CPU in the import, and a pause for any
    request in flight. ``gc.freeze()`` moves those objects out of the collector's sight, and a
    larger young-generation threshold makes the remaining collections fewer (an import piece
    allocates many objects that all stay alive until it is written). Unreachable objects are
    still freed by reference counting as before.
    """
    regions.get("35")  # load the region data now, so that it is frozen too
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    async def install_privacy(app: FastAPI) -> None:
        app.state.privacy = Privacy.from_settings(settings)
        # The single-person read path's own small pool (persons/reads.py), opened on first use.
        app.state.person_reader = PersonReader(settings.database_url, max_size=settings.db_pool_size)

    spec = ServiceSpec(
        name="registry",
        title="Pilar beneficiary registry",
        description="Persons, households and programme enrolment: the source of truth for who the agency serves.",
        routers=[persons_api.router, programmes_api.router, duplicates_api.router, imports_api.router, aid_api.router],
        # Facts from other services: payment results, shelter referrals, returns, disaster victims.
        consumers=[aid, shelter_referrals, returns_consumer.build(settings), disasters_consumer.build(settings)],
        workers=[import_worker],  # bulk CSV import jobs
        migrations_dir=MIGRATIONS,
        on_startup=[install_privacy],
    )
    app = create_service_app(spec, settings)
    kernel_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The kernel's lifespan (engine, workers), then close the read pool when it ends.
        try:
            async with kernel_lifespan(app):
                _tune_gc()
                yield
        finally:
            reader = getattr(app.state, "person_reader", None)
            if reader is not None:
                await reader.close()

    app.router.lifespan_context = lifespan
    return app
