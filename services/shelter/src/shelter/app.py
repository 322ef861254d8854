"""Composition root of the shelter service: routers, the survivor-data cipher, domain errors
as problems, and the kernel's app factory."""

from pathlib import Path

from fastapi import FastAPI, Request

from pilar_kernel.problems import Conflict, RuleViolation, problem_response
from pilar_kernel.service import ServiceSpec, create_service_app

from . import api, domain, events, facilities, statistics  # noqa: F401  (events registers the event models)
from .privacy import Sealer
from .settings import Settings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


async def _rule_broken(request: Request, exc: domain.RuleBroken):
    return problem_response(RuleViolation(exc.field, exc.message, rule=exc.rule), request)


async def _illegal_transition(request: Request, exc: domain.IllegalTransition):
    error = {"field": "status", "message": str(exc), "rule": "case.transition"}
    return problem_response(Conflict(str(exc), current_status=exc.status, errors=[error]), request)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    async def install_sealer(app: FastAPI) -> None:
        app.state.sealer = Sealer.from_settings(settings)

    spec = ServiceSpec(
        name="shelter",
        title="Pilar shelter cases",
        description="Cases of women and children who are victims of violence, and shelter beds. Need-to-know: a case exists only "
        "for its caseworker and its shelter's supervisors; every read and change is audited.",
        routers=[facilities.router, api.router, statistics.router],
        consumers=[],
        migrations_dir=MIGRATIONS,
        on_startup=[install_sealer],
    )
    app = create_service_app(spec, settings)
    app.add_exception_handler(domain.RuleBroken, _rule_broken)
    app.add_exception_handler(domain.IllegalTransition, _illegal_transition)
    return app
