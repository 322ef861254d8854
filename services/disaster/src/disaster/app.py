"""Composition root of the disaster service: routers, the registry consumer and the kernel's app factory."""

from pathlib import Path

from fastapi import APIRouter, FastAPI

from pilar_kernel.auth import PrincipalDep
from pilar_kernel.service import ServiceSpec, create_service_app

from . import events  # noqa: F401  (registers the event models)
from .evacuation import api as evacuation_api
from .incidents import api as incidents_api
from .people import api as people_api
from .people import recipients_api
from .people.registry import persons as registry_persons
from .settings import Settings
from .stock import api as stock_api
from .tagana import api as tagana_api

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"

whoami = APIRouter(prefix="/v1", tags=["disaster"])


@whoami.get("/whoami", summary="The calling client as this service sees it")
async def _whoami(principal: PrincipalDep) -> dict:
    return {"subject": principal.subject, "scopes": sorted(principal.scopes), "region": principal.region}


SPEC = ServiceSpec(
    name="disaster",
    title="Pilar disaster response",
    description="Incidents, affected people, evacuation points, Tagana volunteers and buffer stock.",
    routers=[incidents_api.router, people_api.router, recipients_api.router, evacuation_api.router, tagana_api.router, stock_api.router, whoami],
    consumers=[registry_persons],
    migrations_dir=MIGRATIONS,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings or Settings())
