"""Settings shared by every service, read from the environment (prefix ``PILAR_``).

Secrets have development defaults so that the local stack starts with no setup; outside
``development`` and ``test`` those defaults are refused at start-up, so a forgotten
variable in production stops the process instead of running with a known key.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "insecure-development-secret-change-me"


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class ServiceSettings(BaseSettings):
    """Base settings; each service subclasses it and sets ``service_name``."""

    model_config = SettingsConfigDict(env_prefix="PILAR_", env_file=None, extra="ignore")

    service_name: str = "pilar"
    env: Environment = Environment.development
    log_level: str = "INFO"
    log_json: bool = True

    database_url: str = "postgresql+asyncpg://pilar:pilar@127.0.0.1:5433/pilar"
    db_pool_size: int = 10

    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_partitions: int = 6
    kafka_request_timeout_ms: int = 10_000

    # Outbox relay
    relay_enabled: bool = True
    relay_batch_size: int = 500
    relay_poll_interval_s: float = 1.0

    # Consumers
    consumers_enabled: bool = True
    consumer_max_retries: int = 3
    consumer_retry_backoff_s: float = 0.2

    # Tokens: services verify with the gateway's public keys (a JWKS file or URL).
    jwks_file: str | None = None
    jwks_url: str | None = None
    jwt_issuer: str = "pilar-gateway"
    jwt_audience: str = "pilar"

    # Platform-wide keyed hash of the normalised NIK (see design: nik_hash).
    nik_hash_key: str = DEV_SECRET
    # Key for encrypting PII at rest (hex, 32 bytes) in services that hold any.
    pii_key: str = "00" * 32

    service_urls: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> "ServiceSettings":
        if self.env in (Environment.development, Environment.test):
            return self
        problems = []
        if self.nik_hash_key == DEV_SECRET:
            problems.append("PILAR_NIK_HASH_KEY")
        if self.pii_key == "00" * 32:
            problems.append("PILAR_PII_KEY")
        if not (self.jwks_file or self.jwks_url):
            problems.append("PILAR_JWKS_FILE or PILAR_JWKS_URL")
        if problems:
            raise ValueError(
                f"refusing to start in {self.env.value}: set {', '.join(problems)} "
                "(development defaults are not secrets)"
            )
        return self

    @classmethod
    def parse_service_urls(cls, raw: str | dict[str, Any]) -> dict[str, str]:
        return raw if isinstance(raw, dict) else json.loads(raw)
