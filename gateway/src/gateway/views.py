"""Platform views: the health of every upstream, and one statistics overview.

Both fan out to the services in parallel with short timeouts; a service that is down or
slow is named in the answer instead of failing it or holding it up.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from pilar_kernel.auth import PrincipalDep
from pilar_kernel.http import async_client

from .proxy import Upstream
from .state import gateway_of

router = APIRouter(prefix="/v1", tags=["platform"])
HEALTH_TIMEOUT_S = 2.0
STATS_TIMEOUT_S = 5.0


async def _ready(client: httpx.AsyncClient, upstream: Upstream) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        response = await client.get(f"{upstream.base_url}/ready", timeout=HEALTH_TIMEOUT_S)
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        state = "up" if response.status_code == 200 else "not ready"
        checks = body.get("checks") if isinstance(body, dict) else None
    except httpx.TimeoutException:
        state, checks = "timeout", None
    except (httpx.HTTPError, ValueError):
        state, checks = "down", None
    out: dict[str, Any] = {"status": state, "latency_ms": round((time.perf_counter() - started) * 1000, 1),
                           "circuit": upstream.breaker.state}
    if checks:
        out["checks"] = checks
    return out


@router.get("/platform/health", summary="Health of the gateway and of every upstream service")
async def platform_health(request: Request) -> JSONResponse:
    gateway = gateway_of(request)
    upstreams = list(gateway.upstreams)
    async with async_client(timeout=HEALTH_TIMEOUT_S) as client:
        results = await asyncio.gather(*(_ready(client, u) for u in upstreams))
    services = {u.name: r for u, r in zip(upstreams, results, strict=True)}
    down = sorted(name for name, r in services.items() if r["status"] != "up")
    return JSONResponse({"status": "ok" if not down else "degraded", "gateway": "up", "unavailable": down, "services": services})


async def _stats(client: httpx.AsyncClient, upstream: Upstream, path: str, authorization: str) -> tuple[str, Any]:
    try:
        response = await client.get(f"{upstream.base_url}{path}", headers={"Authorization": authorization}, timeout=STATS_TIMEOUT_S)
    except httpx.TimeoutException:
        return "missing", "timed out"
    except httpx.HTTPError:
        return "missing", "unreachable"
    if response.status_code == 404:
        return "none", None
    if response.status_code in (401, 403):
        return "denied", f"HTTP {response.status_code}"
    if response.status_code != 200:
        return "missing", f"HTTP {response.status_code}"
    try:
        return "ok", response.json()
    except ValueError:
        return "missing", "not JSON"


@router.get("/stats/overview", summary="Statistics of every service in one answer (partial when one is down)")
async def stats_overview(request: Request, principal: PrincipalDep) -> dict:
    gateway = gateway_of(request)
    authorization = request.headers["authorization"]  # the caller's token: each service applies its own rules
    permitted = [u for u in gateway.upstreams if gateway.gatekeeper.may_use_service(principal, u.name)]
    async with async_client(timeout=STATS_TIMEOUT_S) as client:
        results = await asyncio.gather(
            *(_stats(client, u, gateway.settings.stats_path_of(u.name), authorization) for u in permitted)
        )
    statistics: dict[str, Any] = {}
    missing: dict[str, str] = {}
    without: list[str] = []
    denied: dict[str, str] = {}
    for upstream, (kind, value) in zip(permitted, results, strict=True):
        if kind == "ok":
            statistics[upstream.name] = value
        elif kind == "none":
            without.append(upstream.name)
        elif kind == "denied":
            denied[upstream.name] = value
        else:
            missing[upstream.name] = value
    return {
        "complete": not missing,
        "statistics": statistics,
        "missing": missing,
        "without_statistics": without,
        "denied": denied,
        "not_in_scope": sorted(u.name for u in gateway.upstreams if u not in permitted),
        "region": principal.region,
    }
