"""Composition root of the disbursement service: routers, the population consumer, the bank
sender and status checker, and the kernel's app factory."""

from pathlib import Path

from fastapi import FastAPI

from pilar_kernel.service import ServiceSpec, create_service_app

from . import events  # noqa: F401  (registers the event models)
from .payments import api as payments_api
from .payments.bank import BankSender, BankStatusChecker
from .population import api as population_api
from .population.events import population
from .reconciliation import api as reconciliation_api
from .relief import api as relief_api
from .relief.consumer import relief
from .rounds import api as rounds_api
from .settings import Settings
from .statistics import router as statistics_router

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"

def bank_sender(app: FastAPI) -> BankSender:
    sender = BankSender(app)
    app.state.bank_sender = sender  # the API wakes it when it queues payments
    return sender


def bank_status_checker(app: FastAPI) -> BankStatusChecker:
    """Asks the bank about payments whose result never came (see payments/bank.py)."""
    return BankStatusChecker(app)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    spec = ServiceSpec(
        name="disbursement",
        title="Pilar aid disbursement",
        description="Programme budgets, payment rounds, the bank and post-office channels, and reconciliation.",
        routers=[rounds_api.router, payments_api.router, reconciliation_api.router, population_api.router, relief_api.router,
                 statistics_router],
        consumers=[population, relief],
        workers=[bank_sender, bank_status_checker] if settings.bank_url else [],
        migrations_dir=MIGRATIONS,
    )
    return create_service_app(spec, settings)
