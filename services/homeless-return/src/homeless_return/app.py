"""Composition root of the homeless-return service: routers, consumers, the overdue gauge
and the kernel's app factory."""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog
from fastapi import FastAPI
from prometheus_client import Gauge

from pilar_kernel.service import ServiceSpec, create_service_app

from . import api, domain, events, service
from .privacy import Privacy
from .settings import Settings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"

OVERDUE = Gauge("pilar_homeless_return_overdue", "Returns past the one-working-day departure standard and not yet departed")

log = structlog.get_logger("homeless_return.overdue")


class OverdueGauge:
    """Recounts the overdue returns every ``overdue_refresh_s`` seconds for ``/metrics``."""

    def __init__(self, app: FastAPI) -> None:
        self._sessions = app.state.session_factory
        self._interval = app.state.settings.overdue_refresh_s
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                async with self._sessions() as session:
                    OVERDUE.set(await service.count_overdue(session, domain.local_date(service.now())))
            except Exception as exc:  # the database may be away for a moment: try again later
                log.warning("could not count overdue returns", error=str(exc))
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self._interval)
            except TimeoutError:
                pass

    async def stop(self) -> None:
        self._stopping.set()


def overdue_gauge(app: FastAPI) -> OverdueGauge:
    return OverdueGauge(app)


async def install_privacy(app: FastAPI) -> None:
    app.state.privacy = Privacy.from_settings(app.state.settings)


SPEC = ServiceSpec(
    name="homeless-return",
    title="Pilar Simlontar Rek",
    description="Returning stranded persons home (Simlontar Rek): intake, care, verification, relay legs, handovers.",
    routers=[api.router],
    consumers=[events.persons],
    workers=[overdue_gauge],
    migrations_dir=MIGRATIONS,
    on_startup=[install_privacy],
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings or Settings())
