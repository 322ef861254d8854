"""Event models, their registry, and the CloudEvents 1.0 binary-mode Kafka envelope.

Every event a service publishes is a subclass of :class:`Event` declaring its CloudEvents
``ce_type`` and its Kafka ``topic``; the aggregate id (``key_field``) becomes both the Kafka
key (per-aggregate order) and ``ce_subject``. Subclasses register themselves, which gives
consumers a decoder, the stack its topic list and the catalogue its AsyncAPI document.

Binary mode: the event data is the JSON value; the attributes travel as ``ce_*`` headers
(CloudEvents Kafka protocol binding), plus ``content-type`` and W3C ``traceparent``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from .tracecontext import child_traceparent

SPEC_VERSION = "1.0"
TYPE_PREFIX = "id.go.jatimprov.dinsos."


class Event(BaseModel):
    """Base of every integration event. Subclasses set the three class variables."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ce_type: ClassVar[str]
    topic: ClassVar[str]
    key_field: ClassVar[str]

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "ce_type" in cls.__dict__:
            register(cls)

    @property
    def aggregate_id(self) -> str:
        return str(getattr(self, self.key_field))

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


class UnknownEventType(LookupError):
    pass


class EnvelopeError(ValueError):
    """A message that is not a valid Pilar CloudEvent (missing headers, bad JSON, schema)."""


_REGISTRY: dict[str, type[Event]] = {}


def register(cls: type[Event]) -> type[Event]:
    for attr in ("ce_type", "topic", "key_field"):
        if not getattr(cls, attr, None):
            raise TypeError(f"{cls.__name__} must set {attr}")
    if not cls.ce_type.startswith(TYPE_PREFIX) or not cls.ce_type.rsplit(".", 1)[-1].startswith("v"):
        raise TypeError(f"{cls.__name__}: ce_type must look like {TYPE_PREFIX}<service>.<aggregate>.<verb>.v<N>")
    if cls.key_field not in cls.model_fields:
        raise TypeError(f"{cls.__name__}: key_field {cls.key_field!r} is not a field")
    existing = _REGISTRY.get(cls.ce_type)
    if existing is not None and existing.__qualname__ != cls.__qualname__:
        raise TypeError(f"event type {cls.ce_type} registered twice ({existing.__name__}, {cls.__name__})")
    _REGISTRY[cls.ce_type] = cls
    return cls


def event_types() -> dict[str, type[Event]]:
    return dict(_REGISTRY)


def event_class(ce_type: str) -> type[Event]:
    try:
        return _REGISTRY[ce_type]
    except KeyError:
        raise UnknownEventType(ce_type) from None


def all_topics() -> list[str]:
    """Topics of every registered event (import the services' ``events`` modules first)."""
    return sorted({cls.topic for cls in _REGISTRY.values()})


@dataclass(frozen=True)
class Envelope:
    """One CloudEvent as carried on Kafka (binary mode)."""

    id: str
    source: str
    type: str
    time: datetime
    data: bytes
    subject: str | None = None
    traceparent: str | None = None
    # Where it was read from (consumer side only).
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    key: bytes | None = None
    extra_headers: tuple[tuple[str, bytes], ...] = field(default=())

    @classmethod
    def for_event(cls, event: Event, *, source: str, traceparent: str | None = None) -> "Envelope":
        return cls(
            id=str(uuid.uuid4()),
            source=source,
            type=event.ce_type,
            time=datetime.now(UTC),
            data=event.to_json(),
            subject=event.aggregate_id,
            traceparent=traceparent or child_traceparent(),
            topic=event.topic,
            key=event.aggregate_id.encode(),
        )

    def headers(self) -> list[tuple[str, bytes]]:
        out = [
            ("ce_specversion", SPEC_VERSION.encode()),
            ("ce_id", self.id.encode()),
            ("ce_source", self.source.encode()),
            ("ce_type", self.type.encode()),
            ("ce_time", self.time.isoformat().encode()),
            ("content-type", b"application/json"),
        ]
        if self.subject is not None:
            out.append(("ce_subject", self.subject.encode()))
        if self.traceparent:
            out.append(("traceparent", self.traceparent.encode()))
        out.extend(self.extra_headers)
        return out

    @classmethod
    def from_kafka(cls, msg: Any) -> "Envelope":
        """Read a consumed aiokafka record; raises :class:`EnvelopeError` when malformed."""
        headers: dict[str, bytes] = {}
        extra: list[tuple[str, bytes]] = []
        for k, v in msg.headers or ():
            if k.startswith("ce_") or k in ("content-type", "traceparent"):
                headers[k] = v or b""
            else:
                extra.append((k, v))
        try:
            if headers.get("ce_specversion", b"").decode() != SPEC_VERSION:
                raise EnvelopeError("ce_specversion header missing or not 1.0")
            for required in ("ce_id", "ce_source", "ce_type", "ce_time"):
                if not headers.get(required):
                    raise EnvelopeError(f"{required} header missing")
            ctype = headers.get("content-type", b"application/json").decode()
            if not ctype.startswith("application/json"):
                raise EnvelopeError(f"unsupported content-type {ctype!r}")
            time = datetime.fromisoformat(headers["ce_time"].decode())
        except UnicodeDecodeError as exc:
            raise EnvelopeError(f"header not UTF-8: {exc}") from exc
        except ValueError as exc:
            if isinstance(exc, EnvelopeError):
                raise
            raise EnvelopeError(f"ce_time not ISO 8601: {exc}") from exc
        return cls(
            id=headers["ce_id"].decode(),
            source=headers["ce_source"].decode(),
            type=headers["ce_type"].decode(),
            time=time,
            data=msg.value or b"",
            subject=headers["ce_subject"].decode() if "ce_subject" in headers else None,
            traceparent=headers["traceparent"].decode() if "traceparent" in headers else None,
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            key=msg.key,
            extra_headers=tuple(extra),
        )

    def json(self) -> Any:
        try:
            return json.loads(self.data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise EnvelopeError(f"value is not JSON: {exc}") from exc

    def event(self) -> Event:
        """Decode into the registered model; schema errors become :class:`EnvelopeError`."""
        cls = event_class(self.type)
        try:
            return cls.model_validate_json(self.data)
        except ValidationError as exc:
            raise EnvelopeError(f"{self.type} does not match its schema: {exc.errors(include_url=False)}") from exc
