"""The kernel's guards against input the database cannot hold, and the OpenAPI document that
says what every operation answers: a test app on the real PostgreSQL.

Each case here was a server error (500) somewhere in the platform before the guard existed.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import pytest
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from kernelkit import metadata, things
from pilar_kernel.auth import Principal, require_scopes
from pilar_kernel.db import SessionDep
from pilar_kernel.pagination import decode_cursor, encode_cursor
from pilar_kernel.problems import problem_responses
from pilar_kernel.service import ServiceSpec, create_service_app
from pilar_kernel.settings import ServiceSettings
from pilar_kernel.testing import TestKeys, create_schema, running_app
from pilar_kernel.types import Int32

KEYS = TestKeys()
HEADERS = KEYS.headers("things:write")


class NoteIn(BaseModel):
    text: str = Field(max_length=100)
    tags: list[str] = []


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.post("/notes", status_code=201)
    async def create_note(body: NoteIn, session: SessionDep, principal=require_scopes("things:write")):
        await session.execute(things.insert().values(id=body.text[:40] or "empty", seq=len(body.tags)))
        return {"ok": True}

    @router.get("/things")
    async def list_things(session: SessionDep, principal=require_scopes("things:write"),
                          name: str | None = None, cursor: str | None = None):
        after = decode_cursor(cursor, datetime, uuid.UUID)
        query = select(things)
        if name is not None:
            query = query.where(things.c.id == name)
        rows = (await session.execute(query)).all()
        return {"items": [r.id for r in rows], "after": [str(v) for v in after or []]}

    @router.get("/unbounded/{n}")
    async def unbounded(n: int, session: SessionDep, principal=require_scopes("things:write")):
        # No bound in the schema: the database refuses the value; the kernel's net answers 422.
        rows = (await session.execute(select(things).where(things.c.seq == n))).all()
        return {"n": n, "found": len(rows)}

    @router.get("/bounded/{n}", responses=problem_responses(503))
    async def bounded(n: Int32, principal=require_scopes("things:write")):
        return {"n": n}

    @router.get("/open")
    async def public():
        return {"open": True}

    return router


@pytest.fixture(scope="module")
async def client(new_database, kafka_bootstrap, tmp_path_factory):
    url = new_database("guards")
    await create_schema(url, metadata)
    jwks = tmp_path_factory.mktemp("keys") / "jwks.json"
    jwks.write_text(json.dumps(KEYS.jwks))
    settings = ServiceSettings(service_name="guardtest", env="test", database_url=url, kafka_bootstrap=kafka_bootstrap,
                               jwks_file=str(jwks), relay_enabled=False)
    app = create_service_app(ServiceSpec(name="guardtest", title="guard test", routers=[build_router()], run_relay=False), settings)
    async with running_app(app) as c:
        c.app = app
        yield c


def _field(response) -> str:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return response.json()["errors"][0]["field"]


@pytest.mark.stack
async def test_nul_in_a_json_body_is_422_naming_the_field(client):
    r = await client.post("/v1/notes", json={"text": "a\x00b"}, headers=HEADERS)
    assert r.status_code == 422 and _field(r) == "body.text"
    r = await client.post("/v1/notes", json={"text": "ok", "tags": ["x", "y\u0000"]}, headers=HEADERS)
    assert r.status_code == 422 and _field(r) == "body.tags.1"
    # The same body without the NUL goes through: the guard hands the body on unchanged.
    r = await client.post("/v1/notes", json={"text": "fine", "tags": ["x"]}, headers=HEADERS)
    assert r.status_code == 201, r.text


@pytest.mark.stack
async def test_nul_in_query_or_path_is_422(client):
    r = await client.get("/v1/things", params={"name": "a\x00"}, headers=HEADERS)
    assert r.status_code == 422 and _field(r) == "query.name"
    r = await client.get("/v1/unbounded/1%00", headers=HEADERS)
    assert r.status_code == 422 and _field(r) == "path"


@pytest.mark.stack
async def test_a_number_the_database_cannot_hold_is_422_not_500(client):
    r = await client.get(f"/v1/unbounded/{10**15}", headers=HEADERS)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    r = await client.get(f"/v1/bounded/{2**31}", headers=HEADERS)
    assert r.status_code == 422 and _field(r) == "path.n"
    assert (await client.get(f"/v1/bounded/{2**31 - 1}", headers=HEADERS)).status_code == 200


@pytest.mark.stack
async def test_a_cursor_of_another_endpoint_is_422(client):
    good = encode_cursor([datetime(2026, 1, 2).isoformat(), str(uuid.uuid4())])
    assert (await client.get("/v1/things", params={"cursor": good}, headers=HEADERS)).status_code == 200
    for other in (encode_cursor(["PKH", 3]), encode_cursor([1, 2]), encode_cursor(["x"]), "bm90LWpzb24", "%%%"):
        r = await client.get("/v1/things", params={"cursor": other}, headers=HEADERS)
        assert r.status_code == 422 and _field(r) == "query.cursor", (other, r.text)


def test_decode_cursor_converts_typed_values():
    when, ident = datetime(2026, 3, 4, 5, 6), uuid.uuid4()
    assert decode_cursor(encode_cursor([when.isoformat(), str(ident), 7]), datetime, uuid.UUID, int) == [when, ident, 7]
    assert decode_cursor(None, datetime) is None


def test_actor_is_case_folded_user_or_subject():
    assert Principal("app", frozenset(), claims={"user": "QA.Prep"}).actor == "qa.prep"
    assert Principal("app", frozenset(), claims={}).actor == "app"
    assert Principal("App", frozenset(), claims={"user": "qa.prep"}).actor == Principal("x", frozenset(), claims={"user": "QA.PREP"}).actor


@pytest.mark.stack
async def test_openapi_documents_problems_security_and_scopes(client):
    doc = (await client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in json.dumps(doc)
    post = doc["paths"]["/v1/notes"]["post"]
    assert post["security"] == [{"bearer": ["things:write"]}]
    for code in ("400", "401", "403", "409", "422", "500"):
        assert list(post["responses"][code]["content"]) == ["application/problem+json"], code
    assert "404" not in post["responses"]  # no path parameter, no 404 unless declared
    bounded = doc["paths"]["/v1/bounded/{n}"]["get"]
    assert {"404", "503"} <= set(bounded["responses"])
    assert bounded["parameters"][0]["schema"]["maximum"] == 2**31 - 1
    public = doc["paths"]["/v1/open"]["get"]
    assert "security" not in public and "401" not in public["responses"]
