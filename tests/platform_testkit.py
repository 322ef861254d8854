"""Helpers of the system tests: the platform seen from outside, and waiting for convergence."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import httpx

from pilar_devstack import LocalStack


@dataclass
class Platform:
    """A running platform seen from outside: the gateway URL and the demo clients' tokens."""

    stack: LocalStack
    http: httpx.AsyncClient
    _tokens: dict[tuple, tuple[str, float]] = field(default_factory=dict)

    @property
    def secrets(self) -> dict:
        return json.loads((self.stack.secrets_dir / "demo-clients.json").read_text())

    async def token(self, client: str, *, user: str | None = None, scopes: list[str] | None = None) -> str:
        """A token for a demo client from ``/oauth/token`` (cached while it is fresh)."""
        key = (client, user, tuple(sorted(scopes or [])))
        cached = self._tokens.get(key)
        if cached and cached[1] > time.monotonic() + 60:
            return cached[0]
        form = {"grant_type": "client_credentials"}
        if user:
            form["user"] = user
        if scopes:
            form["scope"] = " ".join(scopes)
        secret = self.secrets[client]["client_secret"]
        for _ in range(30):
            response = await self.http.post("/oauth/token", data=form, auth=(client, secret))
            if response.status_code != 429:
                break
            await asyncio.sleep(float(response.headers.get("retry-after", "1")))  # the gateway guards its token endpoint
        assert response.status_code == 200, response.text
        body = response.json()
        self._tokens[key] = (body["access_token"], time.monotonic() + body["expires_in"])
        return body["access_token"]

    async def headers(self, client: str, *, user: str | None = None, scopes: list[str] | None = None, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token(client, user=user, scopes=scopes)}", **extra}

    def url(self, name: str) -> str:
        return self.stack.url(name)

    async def call(self, method: str, path: str, *, expect: int | tuple[int, ...] = 200, **kwargs) -> httpx.Response:
        """One request through the gateway, waiting out its rate limit (429 + Retry-After) as a
        well-behaved partner does; asserts the expected status."""
        for _ in range(60):
            response = await self.http.request(method, path, **kwargs)
            if response.status_code != 429:
                break
            await asyncio.sleep(float(response.headers.get("retry-after", "1")))
        expected = (expect,) if isinstance(expect, int) else expect
        if response.status_code not in expected:
            service = path.split("/")[2] if path.startswith("/v1/") else "gateway"
            raise AssertionError(f"{method} {path}: {response.status_code} {response.text[:600]}; logs: {self.logs('gateway', service)}")
        return response

    def logs(self, *names: str) -> str:
        """Where the named processes log (to read when a test fails)."""
        return ", ".join(str(self.stack.log_path(name)) for name in dict.fromkeys(names) if name in self.stack.ports)

    async def json(self, method: str, path: str, **kwargs):
        return (await self.call(method, path, **kwargs)).json()

    async def all_pages(self, path: str, *, headers: dict[str, str], params: dict | None = None, limit: int = 500) -> list[dict]:
        """Every item of a cursor-paginated list (``items`` + ``next_cursor``)."""
        items: list[dict] = []
        query = {**(params or {}), "limit": limit}
        while True:
            page = await self.json("GET", path, headers=headers, params=query)
            items.extend(page["items"])
            if not page.get("next_cursor"):
                return items
            query["cursor"] = page["next_cursor"]


async def converge(check, *, timeout: float = 60.0, interval: float = 0.5, what: str = "the services to agree"):
    """Poll ``check`` (async, returns a truthy value when done) until it holds; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = await check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}")
        await asyncio.sleep(interval)


async def in_parallel(calls, limit: int = 6) -> list:
    """Await the coroutines a few at a time (as a field office's tablets would), in order."""
    gate = asyncio.Semaphore(limit)

    async def one(call):
        async with gate:
            return await call

    return await asyncio.gather(*(one(c) for c in calls))
