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
