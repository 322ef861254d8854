"""Who may pass: token verification with the gateway's own keys, client state, rate limits.

Installed as the app's ``token_verifier``, so the kernel's ``PrincipalDep`` on the gateway's
own routes goes through it too; the proxy calls it directly. A verified token is cached
until it expires (the signature check is the costliest step of a proxied request), but the
client's state is checked on every request: a revoked client is refused at once.
"""

from __future__ import annotations

import time

from pilar_kernel.auth import Principal
from pilar_kernel.problems import Forbidden, Unauthorized

from .clients import ClientDirectory
from .keys import KeyRing
from .limits import RateLimiter
from .settings import Settings

ADMIN_SCOPE = "gateway:admin"
WEBHOOKS_SCOPE = "gateway:webhooks"
_CACHE_MAX = 20_000


class Gatekeeper:
    def __init__(self, keyring: KeyRing, directory: ClientDirectory, settings: Settings) -> None:
        self.keyring = keyring
        self.directory = directory
        self.settings = settings
        self.limiter = RateLimiter()
        self._cache: dict[str, tuple[Principal, float]] = {}

    def forget_tokens(self) -> None:
        self._cache.clear()

    async def _verified(self, token: str) -> Principal:
        cached = self._cache.get(token)
        if cached is not None and time.time() < cached[1]:
            return cached[0]
        verifier = self.keyring.verifier
        if verifier is None:
            raise Unauthorized("the gateway has no keys loaded yet")
        principal = await verifier.verify(token)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[token] = (principal, float(principal.claims["exp"]))
        return principal

    async def verify(self, token: str) -> Principal:
        """A principal whose client exists and is not revoked, within its rate limit.

        Its scopes are the token's, narrowed to the client's current ones (a scope removed by
        an admin stops working at the gateway before the token runs out).
        """
        principal = await self._verified(token)
        client = self.directory.get(principal.subject)
        if client is None:
            raise Unauthorized("the token's client is not known to this gateway")
        if client.revoked:
            raise Unauthorized("the token's client has been revoked")
        self.limiter.check(
            client.client_id,
            client.rate_per_s if client.rate_per_s is not None else self.settings.rate_limit_per_s,
            client.rate_burst if client.rate_burst is not None else self.settings.rate_limit_burst,
        )
        if not principal.scopes <= client.scopes:
            principal = Principal(principal.subject, principal.scopes & client.scopes, principal.region, principal.claims)
        return principal

    def may_use_service(self, principal: Principal, service: str) -> bool:
        prefixes = self.settings.scope_prefixes_of(service)
        return any(scope.startswith(prefixes) for scope in principal.scopes)

    def require_service(self, principal: Principal, service: str) -> None:
        if not self.may_use_service(principal, service):
            prefixes = " or ".join(f"{p}*" for p in self.settings.scope_prefixes_of(service))
            raise Forbidden(f"calling {service} needs a scope {prefixes}", required_scopes=[f"{p}*" for p in self.settings.scope_prefixes_of(service)])
