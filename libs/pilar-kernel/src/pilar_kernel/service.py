"""The app factory every service and the gateway use (their ``app.py`` is the composition root).

It wires settings, database, token verification, problem responses, logging/metrics
middleware, ``/health`` ``/ready`` ``/metrics``, and runs the outbox relay and the service's
consumers as supervised background tasks for the life of the process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from . import problems
from .auth import PrincipalDep, TokenVerifier, get_principal
from .consumer import Consumer, ConsumerRunner
from .db import make_engine, make_session_factory
from .kafka import kafka_reachable
from .inputs import NulGuardMiddleware
from .observability import RequestContextMiddleware, configure_logging
from .outbox import OutboxRelay
from .problems import Unauthorized
from .settings import ServiceSettings

log = structlog.get_logger("pilar.service")


class _NoKeys:
    """Verifier used when no JWKS is configured (development only): every token is refused."""

    async def verify(self, token: str):
        raise Unauthorized("this service has no token keys configured (set PILAR_JWKS_FILE or PILAR_JWKS_URL)")


def make_verifier(settings: ServiceSettings):
    if settings.jwks_file or settings.jwks_url:
        return TokenVerifier(
            jwks_file=settings.jwks_file, jwks_url=settings.jwks_url, issuer=settings.jwt_issuer, audience=settings.jwt_audience
        )
    return _NoKeys()


def migration_head(migrations_dir: Path | None) -> str | None:
    if migrations_dir is None:
        return None
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    return ScriptDirectory.from_config(cfg).get_current_head()


def _security_of(dependant: Dependant) -> tuple[bool, tuple[str, ...]]:
    """Whether a route needs a token (it depends on the principal) and the scopes it requires."""
    needs, scopes = False, ()
    for dep in dependant.dependencies:
        if dep.call is get_principal:
            needs = True
        declared = getattr(dep.call, "pilar_scopes", None)
        if declared:
            scopes = scopes + tuple(s for s in declared if s not in scopes)
        sub_needs, sub_scopes = _security_of(dep)
        needs = needs or sub_needs
        scopes = scopes + tuple(s for s in sub_scopes if s not in scopes)
    return needs, scopes


def install_openapi(app: FastAPI) -> None:
    """The app's OpenAPI document, completed with the problem responses, bearer security and
    scopes every operation really has (see :func:`problems.document_problems`)."""

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        secured: dict[tuple[str, str], tuple[str, ...] | None] = {}
        # Routers are included lazily (FastAPI >= 0.16x): walk the effective routes.
        for context in iter_route_contexts(app.routes):
            route = context.original_route
            if not isinstance(route, APIRoute) or not route.include_in_schema:
                continue
            needs, scopes = _security_of(route.dependant)
            if needs:
                for method in context.methods or route.methods:
                    secured[(context.path_format, method)] = scopes or None
        app.openapi_schema = problems.document_problems(schema, secured=secured)
        return app.openapi_schema

    app.openapi = openapi


class Worker(Protocol):
    """A long-lived background job of a service process (relay, consumer, import worker...)."""

    async def run(self) -> None: ...

    async def stop(self) -> None: ...


WorkerFactory = Callable[[FastAPI], Worker]


@dataclass
class ServiceSpec:
    """What makes one service: its name, routers, consumers, workers and migrations folder."""

    name: str
    title: str
    routers: Sequence[APIRouter] = ()
    consumers: Sequence[Consumer] = ()
    workers: Sequence[WorkerFactory] = ()
    migrations_dir: Path | None = None
    description: str = ""
    run_relay: bool = True
    on_startup: Sequence[Callable[[FastAPI], Awaitable[None]]] = field(default_factory=tuple)


class _Supervisor:
    """Runs one worker as a task; if it crashes, builds a new one and restarts it with back-off."""

    def __init__(self, name: str, factory: Callable[[], Worker]) -> None:
        self.name = name
        self._factory = factory
        self._current: Worker | None = None
        self._stopping = asyncio.Event()
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._loop(), name=self.name)

    async def _loop(self) -> None:
        backoff = 1.0
        while not self._stopping.is_set():
            self._current = self._factory()
            try:
                await self._current.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("background worker crashed, restarting", worker=self.name, error=str(exc), backoff_s=backoff)
                try:
                    await asyncio.wait_for(self._stopping.wait(), timeout=backoff)
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, 30)

    async def stop(self, timeout: float = 10) -> None:
        self._stopping.set()
        if self._current is not None:
            await self._current.stop()
        if self.task is not None:
            try:
                await asyncio.wait_for(self.task, timeout=timeout)
            except (TimeoutError, asyncio.CancelledError):
                self.task.cancel()
            except Exception as exc:
                log.warning("worker ended with error", worker=self.name, error=str(exc))


def create_service_app(spec: ServiceSpec, settings: ServiceSettings) -> FastAPI:
    head = migration_head(spec.migrations_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(spec.name, settings.log_level, json=settings.log_json)
        engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
        app.state.engine = engine
        app.state.session_factory = make_session_factory(engine)
        for hook in spec.on_startup:
            await hook(app)
        supervisors: list[_Supervisor] = []
        if settings.relay_enabled and spec.run_relay:
            supervisors.append(
                _Supervisor(
                    "outbox-relay",
                    lambda: OutboxRelay(
                        app.state.session_factory,
                        database_url=settings.database_url,
                        bootstrap=settings.kafka_bootstrap,
                        service=spec.name,
                        batch_size=settings.relay_batch_size,
                        poll_interval_s=settings.relay_poll_interval_s,
                        request_timeout_ms=settings.kafka_request_timeout_ms,
                        partitions=settings.topic_partitions,
                    ),
                )
            )
        if settings.consumers_enabled:
            for consumer in spec.consumers:
                supervisors.append(
                    _Supervisor(
                        consumer.name,
                        lambda consumer=consumer: ConsumerRunner(
                            consumer,
                            app.state.session_factory,
                            bootstrap=settings.kafka_bootstrap,
                            max_retries=settings.consumer_max_retries,
                            backoff_s=settings.consumer_retry_backoff_s,
                            partitions=settings.topic_partitions,
                        ),
                    )
                )
        for factory in spec.workers:
            supervisors.append(_Supervisor(getattr(factory, "__name__", "worker"), lambda factory=factory: factory(app)))
        for supervisor in supervisors:
            supervisor.start()
        app.state.workers = supervisors
        log.info("service started", version=app.version)
        try:
            yield
        finally:
            for supervisor in supervisors:
                await supervisor.stop()
            await engine.dispose()

    app = FastAPI(title=spec.title, description=spec.description, version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.token_verifier = make_verifier(settings)
    problems.install(app)
    install_openapi(app)
    app.add_middleware(NulGuardMiddleware)
    app.add_middleware(RequestContextMiddleware, service=spec.name)

    ready_cache: dict[str, tuple[float, bool, str]] = {}

    @app.get("/health", tags=["operations"], include_in_schema=False)
    async def health() -> dict:
        return {"status": "ok", "service": spec.name}

    @app.get("/ready", tags=["operations"], include_in_schema=False)
    async def ready(request: Request) -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            async with request.app.state.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
                if head is not None:
                    current = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one_or_none()
                    checks["migrations"] = "ok" if current == head else f"at {current}, head is {head}"
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unreachable: {type(exc).__name__}"
        cached = ready_cache.get("kafka")
        if cached and time.monotonic() - cached[0] < 5 and cached[1]:
            checks["kafka"] = cached[2]
        else:
            ok = await kafka_reachable(settings.kafka_bootstrap)
            checks["kafka"] = "ok" if ok else "unreachable"
            ready_cache["kafka"] = (time.monotonic(), ok, checks["kafka"])
        green = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ready" if green else "not ready", "service": spec.name, "checks": checks}, status_code=200 if green else 503)

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics_endpoint() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/whoami", tags=["operations"], summary="The calling client as this service sees it (subject, scopes, region)")
    async def whoami(principal: PrincipalDep) -> dict:
        return {"subject": principal.subject, "scopes": sorted(principal.scopes), "region": principal.region}

    for router in spec.routers:
        app.include_router(router)
    return app
