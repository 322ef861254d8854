"""Pure rules of the gateway: circuit breaker, token bucket, webhook signatures and matching,
callback URL checks, OpenAPI merging, upstream failure classification."""

from __future__ import annotations

import aiohttp
import httpx
import pytest

from gateway.breaker import CircuitBreaker
from gateway.catalogue import merge_openapi
from gateway.events import service_of
from gateway.limits import RateLimited, RateLimiter
from gateway.proxy import failure_kind
from gateway.webhooks import signing
from gateway.webhooks.api import check_callback_url
from gateway.webhooks.delivery import backoff_s, region_covers
from pilar_kernel.problems import RuleViolation


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_consecutive_failures_and_lets_one_trial_through():
    clock = Clock()
    breaker = CircuitBreaker(failures=3, open_s=10, clock=clock)
    breaker.failure()
    breaker.failure()
    breaker.success()  # a success resets the count
    for _ in range(3):
        assert breaker.allow()
        breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    assert breaker.retry_after() == pytest.approx(10)
    clock.now += 10
    assert breaker.state == "half-open"
    assert breaker.allow() and not breaker.allow(), "only one trial request while half-open"
    breaker.failure()
    assert breaker.state == "open", "a failed trial reopens the circuit"
    clock.now += 10
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow()


def test_token_bucket_refuses_past_the_burst_and_refills_at_the_rate():
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    for _ in range(5):
        limiter.check("a", rate=2, burst=5)
    with pytest.raises(RateLimited) as refused:
        limiter.check("a", rate=2, burst=5)
    assert refused.value.status == 429 and refused.value.headers["Retry-After"] == "1"
    limiter.check("b", rate=2, burst=5)  # buckets are per key
    clock.now += 0.5  # one token back at 2/s
    limiter.check("a", rate=2, burst=5)
    with pytest.raises(RateLimited):
        limiter.check("a", rate=2, burst=5)


def test_slow_rate_gives_a_longer_retry_after():
    limiter = RateLimiter(clock=Clock())
    limiter.check("slow", rate=0.1, burst=1)
    with pytest.raises(RateLimited) as refused:
        limiter.check("slow", rate=0.1, burst=1)
    assert refused.value.headers["Retry-After"] == "10"


def test_signature_round_trip_and_tampering():
    body = b'{"id":"1"}'
    header = signing.signature("whsec_x", body, 1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert signing.verify("whsec_x", body, header, now=1_700_000_010)
    assert not signing.verify("whsec_x", body + b" ", header, now=1_700_000_010)
    assert not signing.verify("whsec_y", body, header, now=1_700_000_010)
    assert not signing.verify("whsec_x", body, header, now=1_700_001_000), "an old timestamp is a replay"
    assert not signing.verify("whsec_x", body, "v1=abc", now=1_700_000_000)


def test_region_filter_and_backoff():
    assert region_covers(None, None) and region_covers(None, "35.15")
    assert region_covers("35.15", "35.15") and region_covers("35.15", "35.15.01")
    assert not region_covers("35.15", "35.16") and not region_covers("35.15", None)
    assert not region_covers("35.1", "35.15"), "a prefix match needs the dot"
    delays = [backoff_s(n, 2, 60) for n in (1, 2, 3, 10)]
    assert 1.6 <= delays[0] <= 2.4 and 3.2 <= delays[1] <= 4.8 and 6.4 <= delays[2] <= 9.6 and delays[3] <= 72


@pytest.mark.parametrize(
    ("url", "local", "ok"),
    [
        ("https://siks.example.go.id/hook", False, True),
        ("http://siks.example.go.id/hook", False, False),
        ("http://127.0.0.1:9000/hook", True, True),
        ("http://127.0.0.1:9000/hook", False, False),
        ("https://10.1.2.3/hook", False, False),
        ("https://user:pw@siks.example.go.id/hook", False, False),
        ("ftp://siks.example.go.id/hook", True, False),
        ("not a url", True, False),
    ],
)
def test_callback_urls(url, local, ok):
    if ok:
        check_callback_url(url, allow_local_http=local)
    else:
        with pytest.raises(RuleViolation):
            check_callback_url(url, allow_local_http=local)


def test_service_of_ce_type():
    assert service_of("id.go.jatimprov.dinsos.registry.person.registered.v1") == "registry"
    assert service_of("id.go.jatimprov.dinsos.homeless_return.case.closed.v1") == "homeless-return"
    assert service_of("org.example.other.v1") is None


def test_merge_openapi_prefixes_paths_and_components():
    own = {"openapi": "3.1.0", "info": {"version": "0.1.0"}, "paths": {"/oauth/token": {"post": {"responses": {}}}},
           "components": {"schemas": {"ClientOut": {"type": "object"}}}}
    registry = {
        "info": {"description": "persons"},
        "paths": {
            "/v1/persons/{id}": {"get": {"operationId": "get_person", "tags": ["persons"], "responses": {
                "200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/PersonOut"}}}}}}},
            "/health": {"get": {"responses": {}}},
        },
        "components": {"schemas": {"PersonOut": {"properties": {"household": {"$ref": "#/components/schemas/Household"}}},
                                   "Household": {"type": "object"}}},
    }
    doc = merge_openapi(own, {"registry": registry, "shelter": None})
    assert set(doc["paths"]) == {"/oauth/token", "/v1/registry/persons/{id}"}
    op = doc["paths"]["/v1/registry/persons/{id}"]["get"]
    assert op["operationId"] == "registry__get_person" and op["tags"] == ["registry: persons"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/registry__PersonOut"
    schemas = doc["components"]["schemas"]
    assert schemas["registry__PersonOut"]["properties"]["household"]["$ref"] == "#/components/schemas/registry__Household"
    assert "ClientOut" in schemas
    assert doc["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"]["tokenUrl"] == "/oauth/token"
    assert doc["paths"]["/oauth/token"]["post"]["security"] == [], "the token endpoint needs no token"
    assert doc["x-pilar-services"] == {"registry": "ok", "shelter": "unavailable"}


def _wrapped(cause: BaseException, as_: type[Exception]) -> Exception:
    try:
        try:
            raise cause
        except BaseException as exc:
            raise as_("mapped") from exc
    except Exception as exc:
        return exc


def test_failure_kinds_look_through_the_aiohttp_mapping():
    refused = aiohttp.ClientConnectorError(None, OSError(111, "refused"))
    assert failure_kind(_wrapped(refused, httpx.ConnectTimeout)) == "connect"
    assert failure_kind(_wrapped(aiohttp.ServerDisconnectedError(), httpx.ConnectTimeout)) == "protocol"
    assert failure_kind(_wrapped(aiohttp.SocketTimeoutError(), httpx.ReadTimeout)) == "timeout"
    assert failure_kind(httpx.ConnectError("x")) == "connect"
    assert failure_kind(httpx.ReadTimeout("x")) == "timeout"
    assert failure_kind(TimeoutError()) == "timeout"
    assert failure_kind(httpx.RemoteProtocolError("x")) == "protocol"


# --------------------------------------------------------------------------- webhook regions of the real contracts


def _contract_events():
    import typing

    import pilar_contracts
    from gateway.events import platform_events
    from gateway.settings import PLATFORM_SERVICES

    pilar_contracts.load_all()
    return [(cls, typing.get_type_hints(cls)) for cls in platform_events(PLATFORM_SERVICES)]


def _is_list(annotation) -> bool:
    import typing

    args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    return any(typing.get_origin(a) is list for a in args)


def test_every_code_field_of_every_contract_is_classified():
    """A new event (or field) naming a place must be marked ``region()`` in its contract, or
    regional agencies never receive it: every ``*_code``/``*_codes`` field is marked (as a
    region, or as registry-only data that no subscriber gets), but for codes that are not places."""
    from pilar_contracts.marks import region_fields, registry_only_fields

    not_places = {"programme_code", "item_code"}
    unmarked = [
        f"{cls.__name__}.{name}"
        for cls, _ in _contract_events()
        for name in cls.model_fields
        if (name.endswith("_code") or name.endswith("_codes")) and name not in not_places and name not in region_fields(cls) + registry_only_fields(cls)
    ]
    assert not unmarked, unmarked


def test_each_region_field_of_each_contract_routes_to_its_region():
    """For every real event type and each of its region fields alone: an event naming 35.15.01
    there reaches a 35.15 subscription (regional client or filter) and not a 35.16 one."""
    from gateway.webhooks.delivery import delivered_to
    from pilar_contracts.marks import province_public, region_fields, regions_of

    checked = 0
    for cls, hints in _contract_events():
        fields = region_fields(cls)
        if not fields:
            continue
        for field in fields:
            values = {f: ([] if _is_list(hints[f]) else None) for f in fields}
            values[field] = ["35.15.01"] if _is_list(hints[field]) else "35.15.01"
            event = cls.model_construct(**values)
            codes = regions_of(event)
            public = province_public(cls)
            assert delivered_to("35.15", None, codes, public) and delivered_to(None, "35.15", codes, public), (cls, field)
            assert not delivered_to("35.16", None, codes, public) and not delivered_to(None, "35.16", codes, public), (cls, field)
            checked += 1
        nothing = cls.model_construct(**{f: ([] if _is_list(hints[f]) else None) for f in fields})
        assert not delivered_to("35.15", None, regions_of(nothing), False) and delivered_to(None, None, [], False)
    assert checked >= 40


def test_events_without_region_are_province_public_or_province_only():
    from pilar_contracts.disaster import StockShipped
    from pilar_contracts.disbursement import RoundApproved, RoundClosed
    from pilar_contracts.marks import province_public, region_fields

    without = {cls for cls, _ in _contract_events() if not region_fields(cls)}
    assert without == {StockShipped, RoundApproved, RoundClosed}
    assert province_public(RoundApproved) and province_public(RoundClosed) and not province_public(StockShipped)


def test_registry_only_fields_are_never_in_a_webhook_body():
    import json
    import uuid
    from datetime import date

    from gateway.webhooks.delivery import cloudevent_body
    from pilar_contracts.disaster import PersonAffected
    from pilar_contracts.marks import registry_only_fields
    from pilar_kernel.events import Envelope

    event = PersonAffected(affected_person_id=uuid.uuid4(), incident_id=uuid.uuid4(), incident_category="natural", hazard="flood",
                           household_id=None, person_id=None, nik_hash=None, regency_code="35.15", district_code="35.15.01",
                           damage_level=None, condition="unharmed", displaced=False, flags=[], sex="M", name="Budi",
                           birth_date=date(1990, 5, 6), village_code="35.15.01.2001")
    assert registry_only_fields(PersonAffected) == ("name", "birth_date", "village_code")
    env = Envelope.for_event(event, source="/pilar/disaster")
    data = json.loads(cloudevent_body(env, registry_only_fields(PersonAffected)))["data"]
    assert "name" not in data and "birth_date" not in data and "village_code" not in data
    assert data["regency_code"] == "35.15" and data["sex"] == "M"
