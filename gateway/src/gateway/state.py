"""The gateway's per-process parts, built at start-up and kept on ``app.state.gateway``."""

from __future__ import annotations

import asyncio

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from pilar_kernel.pii import PiiCipher
from pilar_kernel.settings import Environment

from .clients import ClientDirectory
from .gatekeeper import Gatekeeper
from .keys import KeyRing, export_jwks_file
from .proxy import UpstreamPool
from .settings import Settings


@dataclass
class Gateway:
    settings: Settings
    cipher: PiiCipher
    keyring: KeyRing
    directory: ClientDirectory
    gatekeeper: Gatekeeper
    upstreams: UpstreamPool
    cache: dict[str, Any] = field(default_factory=dict)  # catalogue documents: name -> (expires, value)

    async def reload(self, session: AsyncSession) -> None:
        """Re-read keys and clients (revocations and rotations made by other processes)."""
        await self.reload_keys(session)
        await self.directory.load(session)

    async def reload_keys(self, session: AsyncSession) -> None:
        changed = await self.keyring.load(session)
        if changed:
            self.gatekeeper.forget_tokens()  # a retired key's tokens must not pass from the cache
        # In development the services read the local stack's JWKS file rather than the URL:
        # keep it equal to what the gateway publishes, so a rotated key works there too.
        s = self.settings
        if changed and s.env == Environment.development and s.jwks_file and s.jwt_private_key_file:
            export_jwks_file(s.jwks_file, self.keyring.jwks())


def gateway_of(request: Request) -> Gateway:
    return request.app.state.gateway


class DirectoryRefresher:
    """Background worker: re-reads keys and clients every ``directory_refresh_s``."""

    def __init__(self, app) -> None:
        self._app = app
        self._stopping = asyncio.Event()

    async def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        gateway: Gateway = self._app.state.gateway
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=gateway.settings.directory_refresh_s)
                return
            except TimeoutError:
                pass
            async with self._app.state.session_factory() as session:
                await gateway.reload(session)
