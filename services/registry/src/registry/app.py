"""Composition root of the registry service: routers, consumers, privacy keys, app factory."""

from pathlib import Path

from fastapi import FastAPI

from pilar_kernel.service import ServiceSpec, create_service_app

from . import events  # noqa: F401  (registers the event models)
from .aid import api as aid_api
from .aid.events import aid
from .disasters import consumer as disasters_consumer
from .duplicates import api as duplicates_api
from .imports import api as imports_api
from .imports.service import import_worker
from .persons import api as persons_api
from .programmes import api as programmes_api
from .referrals.events import shelter_referrals
from .returns import consumer as returns_consumer
from .privacy import Privacy
from .settings import Settings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    async def install_privacy(app: FastAPI) -> None:
        app.state.privacy = Privacy.from_settings(settings)

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
    return create_service_app(spec, settings)
