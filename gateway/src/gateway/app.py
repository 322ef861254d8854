"""Composition root of the gateway: identity, routing, catalogue, webhooks, platform views.

Built like a service with the kernel's app factory (``/health``, ``/ready``, ``/metrics``,
logging, problems, supervised workers). At start-up it imports the key file or makes a
key, seeds the demo clients in development, loads keys and clients, and opens one
connection pool per upstream. Background workers: the directory refresher (keys and
clients written by other processes), the webhook delivery worker, and the webhook consumer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware

from pilar_kernel.pii import PiiCipher
from pilar_kernel.problems import problem_response, problem_responses
from pilar_kernel.service import ServiceSpec, create_service_app

from . import api, catalogue, demo, keys, oauth, views
from .clients import ClientDirectory
from .events import import_service_events, platform_events
from .gatekeeper import Gatekeeper
from .keys import KeyRing
from .proxy import ProxyShortcut, UpstreamPool, method_not_allowed, own_routes, proxy_endpoint
from .settings import Settings
from .state import DirectoryRefresher, Gateway
from .webhooks import api as webhooks_api
from .webhooks.delivery import DeliveryWorker, build_consumer

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
PROXY_ROUTE = "/v1/{service}/{path:path}"
PROXY_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "integer", "minimum": 1}}}


def document_gateway_answers(app: FastAPI) -> None:
    """The gateway's own document, completed with what its gatekeeper adds to the kernel's
    answers: every route that takes a token is also rate-limited per client (429)."""
    kernel_openapi = app.openapi

    def openapi() -> dict:
        if getattr(app.state, "gateway_openapi", None) is None:
            doc = kernel_openapi()
            for item in doc.get("paths", {}).values():
                for op in item.values():
                    responses = op.get("responses") if isinstance(op, dict) else None
                    if responses is not None and ("401" in responses or 401 in responses):
                        limited = dict(problem_responses(429)[429])
                        limited["headers"] = RETRY_AFTER
                        responses.setdefault("429", limited)
                    if responses is not None and "429" in responses:
                        responses["429"].setdefault("headers", RETRY_AFTER)
            app.state.gateway_openapi = doc
        return app.state.gateway_openapi

    app.openapi = openapi


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    missing_event_services = import_service_events(settings.event_services)
    consumer = build_consumer(settings, platform_events(settings.event_services))

    async def start(app: FastAPI) -> None:
        cipher = PiiCipher.from_env_value(settings.pii_key)
        keyring = KeyRing(cipher, issuer=settings.jwt_issuer, audience=settings.jwt_audience)
        directory = ClientDirectory()
        gateway = Gateway(
            settings=settings,
            cipher=cipher,
            keyring=keyring,
            directory=directory,
            gatekeeper=Gatekeeper(keyring, directory, settings),
            upstreams=UpstreamPool(settings.service_urls, settings),
        )
        gateway.cache["missing_event_services"] = missing_event_services
        async with app.state.session_factory() as session, session.begin():
            await keys.bootstrap(session, cipher, settings.jwt_private_key_file)
            if settings.demo_clients_enabled:
                await demo.seed(session, settings.jwt_private_key_file)
        async with app.state.session_factory() as session:
            await gateway.reload(session)
        app.state.gateway = gateway
        # The kernel's PrincipalDep verifies with app.state.token_verifier: make that the
        # gatekeeper, so the gateway's own routes check client state and rate limits too.
        app.state.token_verifier = gateway.gatekeeper

    spec = ServiceSpec(
        name="gateway",
        title="Pilar API gateway",
        description="The one HTTP entry for integrating agencies: tokens, routing, limits, catalogue.",
        routers=[oauth.router, api.router, webhooks_api.router, views.router, catalogue.router],
        consumers=[consumer] if consumer is not None else [],
        workers=[DirectoryRefresher, DeliveryWorker, catalogue.CatalogueRefresher],
        migrations_dir=MIGRATIONS,
        run_relay=False,  # the gateway publishes no events
        on_startup=[start],
    )
    app = create_service_app(spec, settings)
    kernel_http_handler = app.exception_handlers[StarletteHTTPException]

    async def http_problem(request: Request, exc: StarletteHTTPException):
        # Starlette's 405 names the methods of the first route on the path only: name them all.
        if exc.status_code == 405:
            methods = own_routes(request.app).methods_of(request.scope["path"])
            if methods:
                return problem_response(method_not_allowed(request.scope["method"], request.scope["path"], methods), request)
        return await kernel_http_handler(request, exc)

    app.add_exception_handler(StarletteHTTPException, http_problem)
    document_gateway_answers(app)
    # After every gateway route, so /v1/admin, /v1/webhooks ... are never taken for services.
    app.add_route(PROXY_ROUTE, proxy_endpoint, methods=PROXY_METHODS, include_in_schema=False)
    # Innermost middleware (inside the kernel's request context): known services skip routing.
    app.user_middleware.append(Middleware(ProxyShortcut, route_path=PROXY_ROUTE))

    kernel_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with kernel_lifespan(app):
            try:
                yield
            finally:
                gateway = getattr(app.state, "gateway", None)
                if gateway is not None:
                    await gateway.upstreams.aclose()

    app.router.lifespan_context = lifespan
    return app
