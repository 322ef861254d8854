"""The catalogue (merged OpenAPI, AsyncAPI, their HTML pages) and the platform views
(upstream health, statistics overview), with one upstream up, one without statistics and
one down."""

from __future__ import annotations

import uuid

import pytest
from fastapi import FastAPI, Request
from pydantic import BaseModel

from .conftest import free_port

pytestmark = pytest.mark.stack


class Thing(BaseModel):
    id: int
    label: str


def alpha_app() -> FastAPI:
    app = FastAPI(title="alpha", description="things")

    @app.get("/v1/things/{thing_id}", response_model=Thing, tags=["things"], summary="One thing")
    async def thing(thing_id: int) -> Thing:
        return Thing(id=thing_id, label="x")

    @app.post("/v1/things", response_model=Thing, status_code=201, tags=["things"], summary="Make a thing",
              responses={503: {"description": "alpha's own 503: the thing factory is closed"}})
    async def make(thing: Thing) -> Thing:
        return thing

    @app.get("/v1/stats")
    async def stats(request: Request) -> dict:
        return {"things": 2, "asked_with_token": request.headers.get("authorization", "").startswith("Bearer ")}

    @app.get("/ready")
    async def ready() -> dict:
        return {"status": "ready", "checks": {"database": "ok", "kafka": "ok"}}

    return app


def gamma_app() -> FastAPI:
    app = FastAPI(title="gamma")

    @app.get("/v1/nothing")
    async def nothing() -> dict:
        return {}

    @app.get("/ready")
    async def ready() -> dict:
        return {"status": "ready"}

    return app


@pytest.fixture(scope="module")
def upstreams(serve):
    return {"alpha": serve(alpha_app()).url, "gamma": serve(gamma_app()).url, "beta": f"http://127.0.0.1:{free_port()}"}


async def test_merged_openapi_and_its_page(run_gateway, upstreams):
    async with run_gateway(service_urls=upstreams) as gw:
        response = await gw.http.get("/v1/openapi.json")
        assert response.status_code == 200
        doc = response.json()
        op = doc["paths"]["/v1/alpha/things/{thing_id}"]["get"]
        assert op["tags"] == ["alpha: things"] and op["summary"] == "One thing"
        schema = op["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema["$ref"] == "#/components/schemas/alpha__Thing"
        assert "alpha__Thing" in doc["components"]["schemas"]
        assert "/v1/gamma/nothing" in doc["paths"]
        assert "/oauth/token" in doc["paths"] and "/v1/admin/clients" in doc["paths"] and "/v1/webhooks/subscriptions" in doc["paths"]
        assert not any(p.startswith("/v1/alpha/") and "ready" in p for p in doc["paths"])
        assert doc["x-pilar-services"] == {"alpha": "ok", "gamma": "ok", "beta": "unavailable"}
        assert doc["security"] == [{"oauth2": []}]
        assert doc["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"]["tokenUrl"] == "/oauth/token"

        page = await gw.http.get("/docs/platform")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "/v1/alpha/things/{thing_id}" in page.text and "Not reachable now" in page.text and "beta" in page.text
        assert "<script" not in page.text and "http" not in page.text.split("<body>", 1)[1].replace("http://GATEWAY", "")


async def test_asyncapi_catalogue_lists_the_services_events(run_gateway, upstreams):
    async with run_gateway(service_urls=upstreams) as gw:
        doc = (await gw.http.get("/v1/asyncapi.json")).json()
        assert doc["asyncapi"] == "3.0.0"
        assert doc["channels"]["registry_person"]["address"] == "registry.person"
        names = {m["name"] for m in doc["components"]["messages"].values()}
        assert "id.go.jatimprov.dinsos.registry.person.registered.v1" in names
        assert all(n.startswith("id.go.jatimprov.dinsos.") and ".kerneltest" not in n for n in names)
        page = await gw.http.get("/docs/events")
        assert page.status_code == 200
        assert "registry.person" in page.text and "nik_hash" in page.text and "<script" not in page.text


async def test_platform_health_and_statistics_overview(run_gateway, upstreams):
    async with run_gateway(service_urls=upstreams) as gw:
        health = (await gw.http.get("/v1/platform/health")).json()
        assert health["status"] == "degraded" and health["unavailable"] == ["beta"]
        assert health["services"]["alpha"]["status"] == "up" and health["services"]["alpha"]["checks"]["kafka"] == "ok"
        assert health["services"]["beta"]["status"] == "down"
        assert (await gw.http.get("/health")).json() == {"status": "ok", "service": "gateway"}

        user = await gw.bearer("province", ["alpha:read", "beta:read", "gamma:read"])
        overview = await gw.http.get("/v1/stats/overview", headers=user)
        assert overview.status_code == 200, overview.text
        body = overview.json()
        assert body["statistics"] == {"alpha": {"things": 2, "asked_with_token": True}}
        assert body["without_statistics"] == ["gamma"]
        assert body["missing"] == {"beta": "unreachable"} and body["complete"] is False

        narrow = await gw.bearer("only-gamma", ["gamma:read"])
        body = (await gw.http.get("/v1/stats/overview", headers=narrow)).json()
        assert body["not_in_scope"] == ["alpha", "beta"] and body["complete"] is True
        assert (await gw.http.get("/v1/stats/overview")).status_code == 401


async def test_merged_openapi_declares_what_the_gateway_itself_answers(run_gateway, upstreams):
    """Issue 12 item 4: every proxied operation lists the gateway's own answers (401, 403, 429,
    502, 503, 504, and 413 where there is a body) as problem+json; the service's are kept."""
    async with run_gateway(service_urls=upstreams) as gw:
        doc = (await gw.http.get("/v1/openapi.json")).json()
        assert "Problem" in doc["components"]["schemas"]
        get = doc["paths"]["/v1/alpha/things/{thing_id}"]["get"]["responses"]
        post = doc["paths"]["/v1/alpha/things"]["post"]["responses"]
        for responses in (get, post):
            for code in ("401", "403", "429", "502", "503", "504"):
                content = responses[code]["content"]
                assert "application/problem+json" in content, (code, content)
                ref = content["application/problem+json"]["schema"]["$ref"]
                assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"]
            assert "Retry-After" in responses["429"]["headers"]
        assert "200" in get and get["200"]["content"]["application/json"]["schema"]["$ref"].endswith("alpha__Thing")
        assert post["503"]["description"] == "alpha's own 503: the thing factory is closed", "the service's own kept"
        assert "413" in post and "413" not in get
        # The gateway's own routes: every route taking a token may be rate-limited.
        token = doc["paths"]["/oauth/token"]["post"]["responses"]
        assert {"400", "401", "429"} <= set(token) and "application/problem+json" in token["401"]["content"]
        subs = doc["paths"]["/v1/webhooks/subscriptions"]["post"]["responses"]
        assert {"401", "403", "422", "429"} <= set(subs)
        assert doc["paths"]["/v1/webhooks/subscriptions"]["post"]["requestBody"]


async def test_undeclared_methods_are_405_with_the_right_allow_header(run_gateway, upstreams, eventually):
    """Issue 12 item 4: DELETE on a GET-only path is a 405 problem+json naming every method
    of the path, on the gateway's own routes and on proxied ones (from the service's OpenAPI)."""
    async with run_gateway(service_urls=upstreams) as gw:
        user = await gw.bearer("allow-test", ["alpha:read", "gateway:webhooks"])

        async def routes_loaded():
            return gw.gateway.upstreams.get("alpha").routes.methods_of("/v1/things/1")

        await eventually(routes_loaded, timeout=15)
        cases = [
            ("DELETE", "/v1/alpha/things/1", "GET"),
            ("POST", "/v1/alpha/things/1", "GET"),
            ("HEAD", "/v1/alpha/things/1", "GET"),
            ("PUT", "/v1/alpha/things", "POST"),
            ("DELETE", "/v1/webhooks/event-types", "GET"),
            ("PUT", "/v1/webhooks/subscriptions", "GET, POST"),
            ("POST", f"/v1/webhooks/subscriptions/{uuid.uuid4()}", "GET, DELETE"),
            ("DELETE", "/v1/openapi.json", "GET"),
            ("PATCH", "/oauth/token", "POST"),
            ("PUT", "/v1/admin/clients/someone", "GET, PATCH"),
        ]
        for method, path, allow in cases:
            for headers in ({}, user):  # routing comes before the token, as in the services
                response = await gw.http.request(method, path, headers=headers)
                assert response.status_code == 405, (method, path, response.status_code, response.text)
                assert response.headers["allow"] == allow, (method, path, response.headers["allow"])
                if method != "HEAD":
                    assert response.headers["content-type"].startswith("application/problem+json")
                    assert response.json()["status"] == 405
        assert (await gw.http.get("/v1/alpha/things/1", headers=user)).status_code == 200
        assert (await gw.http.get("/v1/alpha/things/1")).status_code == 401
        assert (await gw.http.get("/v1/alpha/not/declared", headers=user)).status_code == 404, "the service's own 404"
        assert (await gw.http.delete("/v1/nosuch/thing", headers=user)).status_code == 404


async def test_every_own_operation_answers_only_what_it_documents(run_gateway, upstreams):
    """The gateway's own operations called without a token, with a token lacking the scope,
    with an admin token and odd path values: every status answered is documented for the
    operation, and every error is problem+json as documented."""
    async with run_gateway(service_urls=upstreams) as gw:
        doc = (await gw.http.get("/v1/openapi.json")).json()
        admin = await gw.bearer("truth-admin", ["gateway:admin", "gateway:webhooks", "alpha:read"])
        nobody = await gw.bearer("truth-nobody", ["alpha:read"])
        values = ["x", str(uuid.uuid4()), "9" * 30, "a%00b", "%20"]
        seen = 0
        for path, item in doc["paths"].items():
            if path.startswith(("/v1/alpha/", "/v1/gamma/", "/v1/beta/")):
                continue  # proxied: the services' own documents
            for method, op in item.items():
                documented = op["responses"]
                for value in values:
                    url = path
                    for name in [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]:
                        url = url.replace("{" + name + "}", value)
                    body = {} if method in ("post", "patch", "put") and "requestBody" in op else None
                    for headers in ({}, nobody, admin):
                        if path == "/v1/admin/keys/rotate" and headers is admin:
                            continue  # would really rotate the key
                        response = await gw.http.request(method.upper(), url, headers=headers, json=body)
                        code = str(response.status_code)
                        assert code in documented, (method, url, code, response.text[:200])
                        if response.status_code >= 400:
                            assert response.headers["content-type"].startswith("application/problem+json"), (method, url)
                            assert "application/problem+json" in documented[code].get("content", {}), (method, path, code)
                        seen += 1
        assert seen > 100
