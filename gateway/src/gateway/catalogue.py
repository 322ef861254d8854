"""The platform's catalogue: one OpenAPI document for every HTTP API, one AsyncAPI document
for every event, and plain HTML pages for both (no scripts, no CDN: they work offline).

The OpenAPI document is merged at request time from each service's ``/openapi.json``
(cached for ``catalogue_cache_s``; a few seconds only while a service is missing): service
paths ``/v1/x`` become ``/v1/<service>/x``, component names get a ``<service>__`` prefix so
two services' ``PersonOut`` cannot collide, and one OAuth2 client-credentials scheme covers
all. The AsyncAPI document comes from the event models themselves (kernel ``asyncapi``).
"""

from __future__ import annotations

import asyncio
import html
import time
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

from pilar_kernel.asyncapi import asyncapi_document
from pilar_kernel.http import async_client
from pilar_kernel.problems import PROBLEM_SCHEMA

from .events import platform_events
from .state import Gateway, gateway_of

router = APIRouter(tags=["catalogue"])

OAUTH_SCHEME = {
    "type": "oauth2",
    "description": "OAuth2 client credentials: POST /oauth/token with the client's id and secret. "
    "Tokens are EdDSA-signed JWTs (keys at /.well-known/jwks.json), valid for minutes.",
    "flows": {"clientCredentials": {"tokenUrl": "/oauth/token", "scopes": {}}},
}
PUBLIC_PATHS = ("/oauth/token", "/.well-known/jwks.json", "/v1/openapi.json", "/v1/asyncapi.json", "/v1/platform/health")
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "integer", "minimum": 1}}}
# What the gateway itself may answer on any proxied operation, before or instead of the
# service: no or a bad token (401), no scope of that service (403), the client's rate limit
# (429), the service unreachable (502), its circuit open (503), too slow (504).
GATEWAY_ANSWERS = {
    401: "No token, or a token the gateway does not accept (unknown or revoked client, expired)",
    403: "The token holds no scope of this service",
    429: "The client's rate limit at the gateway is exhausted; see Retry-After",
    502: "The gateway could not reach the service, or the service broke off the exchange",
    503: "The gateway stopped calling the service for a moment after repeated failures; see Retry-After",
    504: "The service did not answer in time",
}
BODY_TOO_LARGE = "The body is over the gateway's size limit for this service"


def _problem(description: str, *, retry_after: bool = False) -> dict:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if retry_after:
        response["headers"] = dict(RETRY_AFTER)
    return response


def add_gateway_answers(op: dict) -> dict:
    """The operation's responses plus the ones the gateway itself may give (the service's own
    declarations of the same status are kept)."""
    responses = dict(op.get("responses") or {})
    answers = dict(GATEWAY_ANSWERS)
    if "requestBody" in op:
        answers[413] = BODY_TOO_LARGE
    for code, description in answers.items():
        ours = _problem(description, retry_after=code in (429, 503))
        theirs = responses.get(str(code))
        if theirs is None:
            responses[str(code)] = ours
        else:  # the service's description stays; the gateway's problem+json body is added
            merged = dict(theirs)
            merged["content"] = {**ours["content"], **(theirs.get("content") or {})}
            if "headers" in ours:
                merged["headers"] = {**ours["headers"], **(theirs.get("headers") or {})}
            responses[str(code)] = merged
    return {**op, "responses": responses}


def _rewrite_refs(node: Any, prefix: str) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#/components/"):
                _, _, kind, name = value.split("/", 3)
                out[key] = f"#/components/{kind}/{prefix}{name}"
            else:
                out[key] = _rewrite_refs(value, prefix)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(item, prefix) for item in node]
    return node


def merge_openapi(own: dict, services: dict[str, dict | None], *, title: str = "Pilar platform API") -> dict:
    """The gateway's own document plus each service's, prefixed; ``None`` marks a missing one."""
    components: dict[str, dict] = {kind: dict(values) for kind, values in own.get("components", {}).items()}
    components.setdefault("securitySchemes", {})["oauth2"] = OAUTH_SCHEME
    components.setdefault("schemas", {}).setdefault("Problem", PROBLEM_SCHEMA)
    paths: dict[str, Any] = {}
    tags: list[dict] = list(own.get("tags", []))
    for path, item in own.get("paths", {}).items():
        item = dict(item)
        if path in PUBLIC_PATHS:
            item = {method: {**op, "security": []} for method, op in item.items()}
        paths[path] = item
    status: dict[str, str] = {}
    for name, doc in services.items():
        if doc is None:
            status[name] = "unavailable"
            continue
        status[name] = "ok"
        prefix = f"{name.replace('-', '_')}__"
        doc = _rewrite_refs(doc, prefix)
        tags.append({"name": name, "description": doc.get("info", {}).get("description", "")})
        for kind, values in doc.get("components", {}).items():
            if kind == "securitySchemes":  # one token for all: keep the scheme the operations name
                for key, value in values.items():
                    components.setdefault("securitySchemes", {}).setdefault(key, value)
                continue
            bucket = components.setdefault(kind, {})
            for key, value in values.items():
                bucket[prefix + key] = value
        for path, item in doc.get("paths", {}).items():
            if not path.startswith("/v1/"):
                continue  # operations endpoints (/health, /ready, /metrics) are not proxied
            operations = {}
            for method, op in item.items():
                if method in HTTP_METHODS and isinstance(op, dict):
                    op = add_gateway_answers(op)
                    op["tags"] = [f"{name}: {t}" for t in op.get("tags", [])] or [name]
                    if "operationId" in op:
                        op["operationId"] = f"{prefix}{op['operationId']}"
                operations[method] = op
            paths[f"/v1/{name}/{path[4:]}"] = operations
    return {
        "openapi": own.get("openapi", "3.1.0"),
        "info": {
            "title": title,
            "version": own.get("info", {}).get("version", "0.1.0"),
            "description": "Every Pilar service behind the gateway: call /v1/<service>/... with a bearer token from /oauth/token.",
        },
        "servers": [{"url": "/"}],
        "security": [{"oauth2": []}],
        "tags": tags,
        "paths": paths,
        "components": components,
        "x-pilar-services": status,
    }


async def _service_openapi(client: httpx.AsyncClient, base_url: str) -> dict | None:
    try:
        response = await client.get(f"{base_url}/openapi.json", timeout=3.0)
        return response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


async def platform_openapi(gateway: Gateway, own: dict) -> dict:
    cached = gateway.cache.get("openapi")
    if cached and cached[0] > time.monotonic():
        return cached[1]
    upstreams = list(gateway.upstreams)
    async with async_client(timeout=3.0) as client:
        docs = await asyncio.gather(*(_service_openapi(client, u.base_url) for u in upstreams))
    for upstream, doc in zip(upstreams, docs, strict=True):
        if doc is not None:
            upstream.routes.load(doc)  # the methods each path declares: 405s at the gateway
    merged = merge_openapi(own, {u.name: d for u, d in zip(upstreams, docs, strict=True)})
    complete = all(d is not None for d in docs)
    ttl = gateway.settings.catalogue_cache_s if complete else min(5.0, gateway.settings.catalogue_cache_s)
    gateway.cache["openapi"] = (time.monotonic() + ttl, merged)
    return merged


class CatalogueRefresher:
    """Background worker: keeps the merged OpenAPI document fresh, and with it each upstream's
    route table (the methods its paths declare), so that the gateway answers 405 for an
    undeclared method without a catalogue request having come first."""

    def __init__(self, app) -> None:
        self._app = app
        self._stopping = asyncio.Event()

    async def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        gateway: Gateway = self._app.state.gateway
        while not self._stopping.is_set():
            doc = await platform_openapi(gateway, self._app.openapi())
            complete = all(state == "ok" for state in doc.get("x-pilar-services", {}).values())
            wait = gateway.settings.catalogue_cache_s if complete else min(5.0, gateway.settings.catalogue_cache_s)
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=max(wait, 0.5))
            except TimeoutError:
                pass


def platform_asyncapi(gateway: Gateway) -> dict:
    cached = gateway.cache.get("asyncapi")
    if cached is not None:
        return cached
    settings = gateway.settings
    doc = asyncapi_document(
        title="Pilar platform events",
        events=platform_events(settings.event_services),
        servers={"kafka": {"host": settings.kafka_bootstrap, "protocol": "kafka", "description": "the platform's Kafka"}},
    )
    doc["info"]["description"] += (
        " Agencies receive these events as signed webhooks: POST /v1/webhooks/subscriptions with the event types"
        " (each message's name); deliveries are CloudEvents in structured JSON with an X-Pilar-Signature header."
    )
    doc["x-pilar-missing-services"] = gateway.cache.get("missing_event_services", [])
    gateway.cache["asyncapi"] = doc
    return doc


@router.get("/v1/openapi.json", summary="OpenAPI document of the whole platform")
async def openapi_json(request: Request) -> JSONResponse:
    return JSONResponse(await platform_openapi(gateway_of(request), request.app.openapi()))


@router.get("/v1/asyncapi.json", summary="AsyncAPI 3.0 catalogue of every event")
async def asyncapi_json(request: Request) -> JSONResponse:
    return JSONResponse(platform_asyncapi(gateway_of(request)))


# -- HTML -------------------------------------------------------------------------------

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1b1f23;line-height:1.45}
h1{font-size:1.6rem}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}td,th{border:1px solid #d0d7de;padding:.3rem .5rem;
text-align:left;vertical-align:top;font-size:.92rem}th{background:#f6f8fa}code{background:#f6f8fa;padding:0 .2rem}
.m{font-weight:600;font-family:monospace}.warn{background:#fff8c5;padding:.5rem;border:1px solid #d4a72c}
nav a{margin-right:1rem}
"""


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content='width=device-width'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<nav><a href='/docs/platform'>HTTP APIs</a><a href='/docs/events'>Events</a>"
        f"<a href='/v1/openapi.json'>openapi.json</a><a href='/v1/asyncapi.json'>asyncapi.json</a></nav>{body}</body></html>"
    )


def _schema_type(schema: dict) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_schema_type(s) for s in schema["anyOf"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_schema_type(schema.get('items', {}))}"
    if "enum" in schema:
        return " | ".join(repr(v) for v in schema["enum"])
    return f"{kind} ({schema['format']})" if "format" in schema else str(kind)


def render_openapi(doc: dict) -> HTMLResponse:
    e = html.escape
    parts = [f"<h1>{e(doc['info']['title'])}</h1><p>{e(doc['info']['description'])}</p>"]
    missing = [name for name, state in doc.get("x-pilar-services", {}).items() if state != "ok"]
    if missing:
        parts.append(f"<p class=warn>Not reachable now, so not listed: {e(', '.join(missing))}.</p>")
    parts.append(
        "<h2>Getting a token</h2><pre>curl -u CLIENT_ID:CLIENT_SECRET -d grant_type=client_credentials "
        "http://GATEWAY/oauth/token</pre><p>Send it as <code>Authorization: Bearer ...</code>. "
        "Errors are <code>application/problem+json</code>.</p>"
    )
    groups: dict[str, list[tuple[str, str, dict]]] = {}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict):
                groups.setdefault((op.get("tags") or ["other"])[0], []).append((method, path, op))
    for tag in sorted(groups):
        rows = "".join(
            f"<tr><td class=m>{e(m.upper())}</td><td><code>{e(p)}</code></td><td>{e(op.get('summary') or '')}</td></tr>"
            for m, p, op in sorted(groups[tag], key=lambda r: (r[1], r[0]))
        )
        parts.append(f"<h2>{e(tag)}</h2><table><tr><th>method</th><th>path</th><th>what</th></tr>{rows}</table>")
    return _page(doc["info"]["title"], "".join(parts))


def render_asyncapi(doc: dict) -> HTMLResponse:
    e = html.escape
    schemas = doc["components"]["schemas"]
    parts = [f"<h1>{e(doc['info']['title'])}</h1><p>{e(doc['info']['description'])}</p>"]
    missing = doc.get("x-pilar-missing-services") or []
    if missing:
        parts.append(f"<p class=warn>Event models not installed here: {e(', '.join(missing))}.</p>")
    if not doc["channels"]:
        parts.append("<p>No events are catalogued yet.</p>")
    for channel in doc["channels"].values():
        parts.append(f"<h2>Topic <code>{e(channel['address'])}</code></h2>")
        for ref in channel["messages"].values():
            message = doc["components"]["messages"][ref["$ref"].rsplit("/", 1)[-1]]
            payload = schemas[message["payload"]["$ref"].rsplit("/", 1)[-1]]
            required = set(payload.get("required", []))
            rows = "".join(
                f"<tr><td><code>{e(name)}</code></td><td>{e(_schema_type(prop))}</td><td>{'yes' if name in required else ''}</td>"
                f"<td>{e(prop.get('description', ''))}</td></tr>"
                for name, prop in payload.get("properties", {}).items()
            )
            parts.append(
                f"<h3><code>{e(message['name'])}</code></h3><p>{e(message.get('summary', ''))} "
                f"Kafka key: {e(message['bindings']['kafka']['key']['description'])}.</p>"
                f"<table><tr><th>field</th><th>type</th><th>required</th><th>about</th></tr>{rows}</table>"
            )
    return _page(doc["info"]["title"], "".join(parts))


@router.get("/docs/platform", include_in_schema=False)
async def platform_docs(request: Request) -> HTMLResponse:
    return render_openapi(await platform_openapi(gateway_of(request), request.app.openapi()))


@router.get("/docs/events", include_in_schema=False)
async def events_docs(request: Request) -> HTMLResponse:
    return render_asyncapi(platform_asyncapi(gateway_of(request)))
