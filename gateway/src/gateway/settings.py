"""Settings of the gateway (environment variables prefixed ``PILAR_``).

The kernel's ``ServiceSettings`` gives the database, Kafka, ``service_urls`` (the five
upstreams), the token issuer/audience and the PII key (used here to encrypt signing keys and
webhook secrets at rest). Everything below is the gateway's own.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pilar_kernel.settings import Environment, ServiceSettings

# The platform's services, in the order the catalogue lists them.
PLATFORM_SERVICES = ("registry", "disbursement", "shelter", "homeless-return", "disaster")


class Settings(ServiceSettings):
    service_name: str = "gateway"

    # -- identity
    # A PEM file (with ``jwt-kid`` beside it) whose key the gateway signs with; the local
    # stack and compose give one. Without it the gateway makes and keeps keys in its database.
    jwt_private_key_file: str | None = None
    token_ttl_s: int = Field(600, ge=60, le=3600)
    # A new key is published this long before it signs, so every verifier has it in time
    # (the kernel's TokenVerifier reloads a JWKS at most every 30 s on an unknown kid).
    key_activation_delay_s: float = 60.0
    # How often a gateway process re-reads keys and clients (revocations by other processes).
    directory_refresh_s: float = 5.0
    # Seed the demo clients (development only); None = yes in development.
    seed_demo_clients: bool | None = None

    # -- routing
    proxy_transport: Literal["aiohttp", "httpx"] = "aiohttp"
    upstream_timeout_s: float = 10.0
    upstream_connect_timeout_s: float = 2.0
    upstream_timeouts: dict[str, float] = Field(default_factory=dict)  # per service, overrides the above
    upstream_retries: int = 2  # extra attempts, idempotent methods only
    upstream_max_connections: int = 256
    breaker_failures: int = 5  # consecutive failures that open an upstream's circuit
    breaker_open_s: float = 10.0  # how long it stays open before one trial request
    # Coarse scope check: a route under /v1/<service>/ needs one scope starting with one of
    # these prefixes; by default "<service>:".
    scope_prefixes: dict[str, list[str]] = Field(default_factory=dict)

    # -- limits
    rate_limit_per_s: float = 50.0  # default token bucket of a client (per gateway process)
    rate_limit_burst: int = 100
    max_body_bytes: int = 10 * 1024 * 1024
    max_body_bytes_per_service: dict[str, int] = Field(default_factory=dict)

    # -- platform views and catalogue
    stats_paths: dict[str, str] = Field(default_factory=lambda: {"registry": "/v1/stats/persons", "shelter": "/v1/statistics/cases"})
    catalogue_cache_s: float = 60.0
    # Services whose events the catalogue lists and agencies may subscribe to.
    event_services: list[str] = Field(default_factory=lambda: list(PLATFORM_SERVICES))

    # -- webhooks
    webhook_consumer_name: str = "gateway.webhooks"
    webhook_poll_s: float = 1.0
    webhook_timeout_s: float = 5.0
    webhook_concurrency: int = 16
    webhook_max_attempts: int = 12  # per delivery, then it is marked failed
    webhook_backoff_s: float = 2.0  # first retry delay, doubling
    webhook_backoff_max_s: float = 900.0
    webhook_disable_after: int = 20  # consecutive failed attempts that disable a subscription
    webhook_retention_days: int = 14
    # Plain http callbacks to 127.0.0.1/localhost; None = only in development and test.
    webhook_allow_local_http: bool | None = None

    @property
    def is_dev(self) -> bool:
        return self.env in (Environment.development, Environment.test)

    def timeout_of(self, service: str) -> float:
        return self.upstream_timeouts.get(service, self.upstream_timeout_s)

    def body_limit_of(self, service: str) -> int:
        return self.max_body_bytes_per_service.get(service, self.max_body_bytes)

    def scope_prefixes_of(self, service: str) -> tuple[str, ...]:
        return tuple(self.scope_prefixes.get(service) or [f"{service}:"])

    def stats_path_of(self, service: str) -> str:
        return self.stats_paths.get(service, "/v1/stats")

    @property
    def demo_clients_enabled(self) -> bool:
        if self.seed_demo_clients is None:
            return self.env == Environment.development
        return self.seed_demo_clients

    @property
    def local_http_callbacks(self) -> bool:
        return self.is_dev if self.webhook_allow_local_http is None else self.webhook_allow_local_http
