"""AsyncAPI 3.0 document generated from the registered event models."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from .events import Event, event_types

CLOUDEVENT_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "CloudEvents 1.0 attributes in Kafka binary mode, plus W3C trace context",
    "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type"],
    "properties": {
        "ce_specversion": {"type": "string", "const": "1.0"},
        "ce_id": {"type": "string", "description": "unique per event; consumers deduplicate on (ce_source, ce_id)"},
        "ce_source": {"type": "string", "description": "publishing service, e.g. /pilar/registry"},
        "ce_type": {"type": "string"},
        "ce_time": {"type": "string", "format": "date-time"},
        "ce_subject": {"type": "string", "description": "aggregate id (also the Kafka key)"},
        "content-type": {"type": "string", "const": "application/json"},
        "traceparent": {"type": "string", "description": "W3C trace context"},
    },
}


def _message_name(cls: type[Event]) -> str:
    # ce_type without the common prefix: registry.person.registered.v1
    return cls.ce_type.split("dinsos.", 1)[-1]


def asyncapi_document(
    *, title: str = "Pilar events", version: str = "0.1.0", events: list[type[Event]] | None = None, servers: dict | None = None
) -> dict[str, Any]:
    classes = sorted(events if events is not None else event_types().values(), key=lambda c: c.ce_type)
    schemas: dict[str, Any] = {"CloudEventHeaders": CLOUDEVENT_HEADERS}
    messages: dict[str, Any] = {}
    by_topic: dict[str, list[str]] = defaultdict(list)
    for cls in classes:
        schema = cls.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            schemas.setdefault(name, sub)
        schema_name = _message_name(cls).replace(".", "_")
        schemas[schema_name] = schema
        name = _message_name(cls)
        messages[name.replace(".", "_")] = {
            "name": cls.ce_type,
            "title": cls.__name__,
            "summary": (cls.__doc__ or "").strip().split("\n")[0],
            "contentType": "application/json",
            "headers": {"$ref": "#/components/schemas/CloudEventHeaders"},
            "payload": {"$ref": f"#/components/schemas/{schema_name}"},
            "bindings": {"kafka": {"key": {"type": "string", "description": f"aggregate id ({cls.key_field})"}}},
        }
        by_topic[cls.topic].append(name.replace(".", "_"))
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic, names in sorted(by_topic.items()):
        channel_id = topic.replace(".", "_")
        channels[channel_id] = {
            "address": topic,
            "description": f"Kafka topic {topic}, keyed by aggregate id",
            "messages": {n: {"$ref": f"#/components/messages/{n}"} for n in names},
        }
        operations[f"publish_{channel_id}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{n}"} for n in names],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": title, "version": version, "description": "Integration events of the Pilar platform (CloudEvents over Kafka)."},
        "defaultContentType": "application/json",
        "servers": servers or {"local": {"host": "127.0.0.1:9092", "protocol": "kafka", "description": "local stack"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }
