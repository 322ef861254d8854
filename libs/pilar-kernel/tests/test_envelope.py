"""CloudEvents binary-mode envelope: round trip and refusal of malformed messages."""

from types import SimpleNamespace
from typing import ClassVar

import pytest

from pilar_kernel.asyncapi import asyncapi_document
from pilar_kernel.events import Envelope, EnvelopeError, Event, all_topics, event_class
from pilar_kernel.tracecontext import parse_trace_id


class ParcelShipped(Event):
    """A parcel left the warehouse (test event)."""

    ce_type: ClassVar[str] = "id.go.jatimprov.dinsos.kerneltest.parcel.shipped.v1"
    topic: ClassVar[str] = "kerneltest.parcel"
    key_field: ClassVar[str] = "parcel_id"

    parcel_id: str
    items: int


def as_record(env: Envelope, *, headers=None, value=None):
    return SimpleNamespace(
        topic=env.topic, partition=0, offset=7, key=env.key,
        value=env.data if value is None else value,
        headers=env.headers() if headers is None else headers,
    )


def test_round_trip_keeps_attributes_and_data():
    env = Envelope.for_event(ParcelShipped(parcel_id="p-1", items=3), source="/pilar/test")
    names = [k for k, _ in env.headers()]
    assert {"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject", "content-type", "traceparent"} <= set(names)
    back = Envelope.from_kafka(as_record(env))
    assert (back.id, back.source, back.type, back.subject) == (env.id, "/pilar/test", ParcelShipped.ce_type, "p-1")
    assert back.event() == ParcelShipped(parcel_id="p-1", items=3)
    assert back.key == b"p-1" and back.offset == 7
    assert parse_trace_id(back.traceparent) is not None


def test_registry_knows_the_event_and_its_topic():
    assert event_class(ParcelShipped.ce_type) is ParcelShipped
    assert "kerneltest.parcel" in all_topics()


@pytest.mark.parametrize("drop", ["ce_id", "ce_type", "ce_specversion", "ce_time"])
def test_missing_required_header_is_refused(drop):
    env = Envelope.for_event(ParcelShipped(parcel_id="p-1", items=3), source="/pilar/test")
    headers = [(k, v) for k, v in env.headers() if k != drop]
    with pytest.raises(EnvelopeError, match=drop.split("_")[-1]):
        Envelope.from_kafka(as_record(env, headers=headers))


def test_schema_mismatch_is_an_envelope_error():
    env = Envelope.for_event(ParcelShipped(parcel_id="p-1", items=3), source="/pilar/test")
    broken = Envelope.from_kafka(as_record(env, value=b'{"parcel_id": "p-1"}'))
    with pytest.raises(EnvelopeError, match="items"):
        broken.event()
    not_json = Envelope.from_kafka(as_record(env, value=b"\xff\x00"))
    with pytest.raises(EnvelopeError):
        not_json.event()


def test_event_classes_must_follow_the_naming_contract():
    with pytest.raises(TypeError, match="ce_type"):

        class Bad(Event):
            ce_type: ClassVar[str] = "parcel.shipped"
            topic: ClassVar[str] = "kerneltest.parcel"
            key_field: ClassVar[str] = "parcel_id"
            parcel_id: str


def test_asyncapi_document_lists_channel_message_and_payload():
    doc = asyncapi_document(events=[ParcelShipped])
    assert doc["asyncapi"] == "3.0.0"
    channel = doc["channels"]["kerneltest_parcel"]
    assert channel["address"] == "kerneltest.parcel"
    (msg_name,) = channel["messages"]
    message = doc["components"]["messages"][msg_name]
    assert message["name"] == ParcelShipped.ce_type
    payload = doc["components"]["schemas"][message["payload"]["$ref"].rsplit("/", 1)[-1]]
    assert set(payload["required"]) == {"parcel_id", "items"}
    op = doc["operations"]["publish_kerneltest_parcel"]
    assert op["action"] == "send" and op["channel"]["$ref"] == "#/channels/kerneltest_parcel"
