"""Composition root of the homeless-return service: routers, consumers and the kernel's app factory."""

from pathlib import Path

from fastapi import FastAPI

from pilar_kernel.service import ServiceSpec, create_service_app

from . import api, events  # noqa: F401  (events registers the event models)
from .settings import Settings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"

SPEC = ServiceSpec(
    name="homeless-return",
    title="Pilar Simlontar Rek",
    description="Returning stranded persons home (Simlontar Rek).",
    routers=[api.router],
    consumers=[],
    migrations_dir=MIGRATIONS,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings or Settings())
