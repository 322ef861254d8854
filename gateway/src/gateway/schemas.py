"""Request and response models of the gateway's own API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

CLIENT_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{1,62}$"
REGION_PATTERN = r"^35\.\d{2}$"
SCOPE_PATTERN = r"^[a-z0-9-]+:[a-z0-9-]+$"
# A URL as sent on the wire: no spaces, no control characters (NUL included).
URL_PATTERN = r"^[a-z][a-z0-9+.-]*://[^\s\x00-\x1f\x7f]+$"
# A CloudEvents type of the catalogue (id.go.jatimprov.dinsos.<service>.<aggregate>.<event>.v<n>).
EVENT_TYPE_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,199}$"
EventType = Annotated[str, Field(pattern=EVENT_TYPE_PATTERN, max_length=200)]
Scope = Annotated[str, Field(pattern=SCOPE_PATTERN, max_length=100, examples=["registry:read"])]
ClientId = Annotated[str, Field(pattern=CLIENT_ID_PATTERN, max_length=63)]


class RateLimit(BaseModel):
    per_second: float | None = Field(None, gt=0, le=100_000, description="sustained requests per second; null = default")
    burst: int | None = Field(None, ge=1, le=1_000_000, description="bucket size; null = default")


class ClientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(pattern=CLIENT_ID_PATTERN, max_length=63, examples=["dinsos-sidoarjo"])
    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1, max_length=100)
    region: str | None = Field(None, pattern=REGION_PATTERN, description="a regency/city code; null = province-wide")
    rate_limit: RateLimit = RateLimit()


class ClientChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    scopes: list[Scope] | None = Field(None, min_length=1, max_length=100)
    region: str | None = Field(None, pattern=REGION_PATTERN)
    province_wide: bool = Field(False, description="true to clear the region")
    rate_limit: RateLimit | None = None


class TokenOut(BaseModel):
    access_token: str = Field(description="a JWT signed with EdDSA")
    token_type: str = Field(pattern="^Bearer$")
    expires_in: int = Field(ge=60, le=3600, description="seconds")
    scope: str = Field(description="the scopes granted, space-separated")


class ClientOut(BaseModel):
    client_id: str
    name: str
    scopes: list[str]
    region: str | None
    rate_limit: RateLimit
    status: str
    created_at: datetime
    secret_rotated_at: datetime | None
    revoked_at: datetime | None


class ClientWithSecret(ClientOut):
    client_secret: str = Field(description="shown once; the gateway keeps only a hash")


class KeyOut(BaseModel):
    kid: str
    origin: str
    state: str
    created_at: datetime
    active_from: datetime
    retired_at: datetime | None


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    callback_url: str = Field(min_length=10, max_length=2000, pattern=URL_PATTERN, examples=["https://siks.sidoarjokab.go.id/pilar/events"],
                              description="https (plain http to 127.0.0.1 only in development and test)")
    event_types: list[EventType] = Field(min_length=1, max_length=200, description="CloudEvents types (ce_type) from /v1/webhooks/event-types; "
                                         "a regional subscription takes only types that name a region or are province-public")
    region: str | None = Field(None, pattern=REGION_PATTERN, description="only events naming a region within this one (any of the event's region fields); "
                               "a regional client's subscriptions are always held to its region")


class SubscriptionOut(BaseModel):
    id: UUID
    client_id: str
    callback_url: str
    event_types: list[str]
    region: str | None
    status: str
    disabled_reason: str | None
    consecutive_failures: int
    created_at: datetime
    updated_at: datetime


class SubscriptionWithSecret(SubscriptionOut):
    secret: str = Field(description="HMAC-SHA256 key of X-Pilar-Signature; shown once")


class EventTypeOut(BaseModel):
    type: str = Field(description="the CloudEvents type to subscribe to")
    service: str
    topic: str
    summary: str
    regional: bool = Field(description="a regional subscription may take it (it names regions, or is province-public)")
    region_fields: list[str] = Field(description="the event's fields holding region codes, any of which routes it to a region")
    province_public: bool = Field(description="it concerns the whole province and goes to every region")


class AttemptOut(BaseModel):
    attempt: int
    at: datetime
    status_code: int | None = Field(description="the receiver's HTTP status; null when it could not be reached")
    error: str | None
    duration_ms: int


class DeliveryOut(BaseModel):
    id: int
    ce_id: str
    ce_type: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
