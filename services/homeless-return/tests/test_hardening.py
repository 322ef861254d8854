"""Issue 12 on the return API, against real PostgreSQL: bad input is a 422 (or 404) naming
the field and never a server error; the list answers what its OpenAPI document says; every
step that changes something answers a retried request (same ``Idempotency-Key``) with its
first answer instead of a 409."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from homeless_return.schemas import ReturnPage
from homeless_return_testkit import KEYS, PROVINCE, READ, SERVICE_DIR, VERIFY, WRITE, ago, intake, migrate, response_schema, schema_violations
from test_returns_api import leg, ok, report, to_verified, today

pytestmark = pytest.mark.stack


def fields(response) -> set[str]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return {e["field"] for e in response.json().get("errors", [])}


def cursor_of(values) -> str:
    raw = values if isinstance(values, str) else json.dumps(values)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


async def scheduled(client) -> str:
    case = await report(client)
    await to_verified(client, case["id"])
    await ok(await client.post(f"/v1/returns/{case['id']}/schedule", headers=PROVINCE, json={"legs": [leg()]}))
    return case["id"]


# -- bad input: 4xx naming the field, never 500 ---------------------------------------------


@pytest.mark.parametrize("step", ["departure", "handover"])
async def test_a_leg_number_beyond_the_route_is_a_422_or_a_404(homeless, step):
    cid = await scheduled(homeless)
    body = {"departed_at": ago(hours=1)} if step == "departure" else {
        "handed_over_at": ago(minutes=10), "handover_document_no": "BAST/1", "received_by": "officer"}
    for seq in (3650491404072, 2**31, 0, -1):
        r = await homeless.post(f"/v1/returns/{cid}/legs/{seq}/{step}", headers=PROVINCE, json=body)
        assert r.status_code == 422 and fields(r) == {"path.seq"}, (seq, r.text)
    # Within the range a route can have, a leg the route does not have is not found.
    r = await homeless.post(f"/v1/returns/{cid}/legs/3/{step}", headers=PROVINCE, json=body)
    assert r.status_code == 404, r.text


@pytest.mark.parametrize(
    "reason",
    ["ditinggal keluarga\u0301\u0301", "\u202bالعائلة لم ترد\u202c\u200f", "kabur 😀🏳️‍🌈", "\ufeffbom di awal", "x" * 1000, "\U0010fffd jauh", "a\u2028b\u0085c"],
    ids=["combining", "rtl", "emoji", "bom", "long", "plane16", "separators"],
)
async def test_unusual_unicode_in_a_reason_is_kept(homeless, reason):
    case = await report(homeless)
    out = await ok(await homeless.post(f"/v1/returns/{case['id']}/unresolved", headers=PROVINCE, json={"reason": reason}))
    assert out["close_reason"] == reason.strip()


@pytest.mark.parametrize(
    "raw, field",
    [
        ('{"reason": "pergi\\u0000 tanpa pamit"}', "body.reason"),  # NUL: PostgreSQL's text cannot hold it (was a 500)
        ('{"reason": "pergi \\ud800 tanpa pamit"}', "body.reason"),  # a lone surrogate is not a character
        ('{"reason": "  "}', "body.reason"),
        ('{"reason": "' + "x" * 1001 + '"}', "body.reason"),
    ],
    ids=["nul", "surrogate", "blank", "too-long"],
)
async def test_a_reason_that_cannot_be_stored_is_a_422(homeless, raw, field):
    case = await report(homeless)
    r = await homeless.post(f"/v1/returns/{case['id']}/unresolved", headers={**PROVINCE, "content-type": "application/json"}, content=raw)
    assert r.status_code == 422 and fields(r) == {field}, r.text
    assert (await homeless.get(f"/v1/returns/{case['id']}", headers=PROVINCE)).json()["status"] == "reported"


@pytest.mark.parametrize(
    "found_at",
    ["0001-01-01T00:00:00Z", "0001-01-01T05:00:00+07:00", "1899-12-31T23:00:00Z", "9999-12-31T23:59:59-23:00", "9999-12-31T23:59:59.999999Z"],
)
async def test_a_found_at_outside_the_years_of_a_case_is_a_422(homeless, found_at):
    # 0001-01-01T00:00:00Z was stored as -infinity and listed as a naive 0001-01-01T00:00:00.
    for extra in ({}, {"birth_date": None}):
        r = await homeless.post("/v1/returns", headers=PROVINCE, json=intake(found_at=found_at, **extra))
        assert r.status_code == 422 and fields(r) == {"body.found_at"}, r.text


@pytest.mark.parametrize(
    "override, field",
    [
        ({"name": "Budi\u0000"}, "body.name"),
        ({"name": " "}, "body.name"),
        ({"found_place_code": "35.78\u0000"}, "body.found_place_code"),
        ({"found_place_code": "33.74"}, "body.found_place_code"),
        ({"origin_code": "6371x"}, "body.origin_code"),
        ({"nik": "35780112345678"}, "body.nik"),
        ({"nik": "３５７８０１１２３４５６７８９０"}, "body.nik"),
        ({"sending_province_code": "3"}, "body.sending_province_code"),
        ({"birth_date": "0001-01-01"}, "body.birth_date"),
        ({"birth_date": "9999-12-31"}, "body.birth_date"),
        ({"photo_ref": "p" * 301}, "body.photo_ref"),
    ],
)
async def test_intake_fields_have_real_bounds(homeless, override, field):
    r = await homeless.post("/v1/returns", headers=PROVINCE, json=intake(**override))
    assert r.status_code == 422 and fields(r) == {field}, r.text


async def test_step_fields_have_real_bounds(homeless):
    case = await report(homeless)
    cid = case["id"]
    for body, field in [
        ({"facility_type": "upt", "facility_name": "UPT", "admitted_on": "0001-01-01"}, "body.admitted_on"),
        ({"facility_type": "upt", "facility_name": "UPT", "admitted_on": "9999-12-31"}, "body.admitted_on"),
        ({"facility_type": "upt", "facility_name": "", "admitted_on": today().isoformat()}, "body.facility_name"),
    ]:
        r = await homeless.post(f"/v1/returns/{cid}/care-stays", headers=PROVINCE, json=body)
        assert r.status_code == 422 and fields(r) == {field}, r.text
    await to_verified(homeless, cid)
    for plan, field in [
        (leg(cost=10**33), "body.legs.0.ticket_cost"),
        (leg(cost=2**31), "body.legs.0.ticket_cost"),
        (leg(departure_at="0001-01-01T00:00:00Z"), "body.legs.0.departure_at"),
        (leg(departure_at="9999-12-31T23:59:59.999999Z"), "body.legs.0.departure_at"),
    ]:
        r = await homeless.post(f"/v1/returns/{cid}/schedule", headers=PROVINCE, json={"legs": [plan]})
        assert r.status_code == 422 and fields(r) == {field}, r.text
    r = await homeless.put(f"/v1/returns/{cid}/destination", headers=PROVINCE, json={"destination_code": "63.71", "family_contact_phone": "٠٨١٢٣٤٥٦٧٨٩"})
    assert r.status_code == 422, r.text


@pytest.mark.parametrize(
    "values",
    [
        [1, 2],
        ["x"],
        ["2026-01-01T00:00:00+00:00", {"a": 1}],
        ["2026-01-01T00:00:00", str(uuid.uuid4())],  # no offset
        ["0001-01-01T00:00:00+05:00", str(uuid.uuid4())],  # before year 1 in UTC
        [str(uuid.uuid4()), "2026-01-01T00:00:00+00:00"],  # another endpoint's order
        "[" * 3000,
    ],
    ids=["ints", "short", "dict", "naive", "year-zero", "swapped", "deep"],
)
async def test_a_cursor_of_another_shape_is_a_422(homeless, values):
    r = await homeless.get("/v1/returns", headers=PROVINCE, params={"cursor": cursor_of(values)})
    assert r.status_code == 422 and fields(r) == {"query.cursor"}, r.text


async def test_days_in_queries_and_paths_have_real_bounds(homeless):
    for params, field in [({"from": "0001-01-01"}, "query.from"), ({"to": "9999-12-31"}, "query.to")]:
        r = await homeless.get("/v1/stats", headers=PROVINCE, params=params)
        assert r.status_code == 422 and fields(r) == {field}, r.text
    for day in ("9999-12-31", "0001-01-01"):
        r = await homeless.put(f"/v1/holidays/{day}", headers=PROVINCE, json={"name": "Kiamat"})
        assert r.status_code == 422 and fields(r) == {"path.day"}, r.text
    r = await homeless.get("/v1/routes/not-a-code", headers=PROVINCE)
    assert r.status_code == 422 and fields(r) == {"path.destination_code"}, r.text


# -- the list answers what its document says ------------------------------------------------------


async def test_the_list_of_returns_validates_against_its_openapi_schema(homeless):
    found = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2, hours=3)
    mine = await report(homeless, found_at=found.isoformat(), birth_date=None)
    await report(homeless, direction="inbound", referred_by="other_province", sending_province_code="33", destination_code="35.15")
    document = (await homeless.get("/openapi.json")).json()
    schema = response_schema(document, "/v1/returns", "get", 200)
    cursor, seen = None, {}
    while True:
        r = await homeless.get("/v1/returns", headers=PROVINCE, params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        page = await ok(r)
        assert schema_violations(page, schema, document) == []
        ReturnPage.model_validate(page)
        seen.update({item["id"]: item for item in page["items"]})
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert datetime.fromisoformat(seen[mine["id"]]["found_at"]) == found
    assert all(datetime.fromisoformat(item["found_at"]).tzinfo is not None for item in seen.values())


async def test_every_read_validates_against_its_openapi_schema(homeless):
    document = (await homeless.get("/openapi.json")).json()
    done = await report(homeless)
    cid = done["id"]
    await to_verified(homeless, cid)
    await ok(await homeless.put("/v1/holidays/2097-05-05", headers=PROVINCE, json={"name": "Waisak"}))
    for path, url in [
        ("/v1/returns/{return_id}", f"/v1/returns/{cid}"),
        ("/v1/returns/overdue", "/v1/returns/overdue"),
        ("/v1/routes/{destination_code}", "/v1/routes/64.72"),
        ("/v1/stats", "/v1/stats"),
        ("/v1/holidays", "/v1/holidays?year=2097"),
    ]:
        body = await ok(await homeless.get(url, headers=PROVINCE))
        assert schema_violations(body, response_schema(document, path, "get", 200), document) == [], path


async def test_who_verified_is_the_acting_officer_case_folded(homeless):
    case = await report(homeless)
    officer = KEYS.headers(READ, WRITE, VERIFY, subject="dinsos-jatim", user="Pak.BUDI")
    out = await to_verified(homeless, case["id"], verifier=officer)
    assert out["verified_by"] == "pak.budi"


async def test_a_found_at_kept_as_infinity_is_repaired_by_the_migration(new_database):
    url = new_database("homeless_moments")
    env = {**os.environ, "PILAR_DATABASE_URL": url}
    done = subprocess.run([sys.executable, "-m", "alembic", "upgrade", "0002"], cwd=SERVICE_DIR, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    engine = create_async_engine(url)
    case_id = uuid.uuid4()
    try:
        async with engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO return_case (id, direction, found_at, found_place_code, referred_by, documents, cause, name_enc, sex, intake_by, departure_due_on, created_at) "
                "VALUES (:i, 'outbound', '-infinity', '35.78', 'police', 'none', 'other', '\\x00', 'M', 'x', '2026-01-02', '2026-01-01T08:00:00Z')"
            ).bindparams(i=case_id))
        migrate(url)
        async with engine.connect() as conn:
            found_at = (await conn.execute(text("SELECT found_at FROM return_case WHERE id = :i").bindparams(i=case_id))).scalar_one()
            assert found_at == datetime(2026, 1, 1, 8, tzinfo=UTC)
            with pytest.raises(Exception, match="return_case_found_at"):
                await conn.execute(text("UPDATE return_case SET found_at = '-infinity' WHERE id = :i").bindparams(i=case_id))
    finally:
        await engine.dispose()


# -- retries: the first answer again ------------------------------------------------------------


async def _reported(client):
    return (await report(client))["id"]


async def _in_care(client):
    cid = await _reported(client)
    stay = await ok(await client.post(f"/v1/returns/{cid}/care-stays", headers=PROVINCE,
                                      json={"facility_type": "upt", "facility_name": "UPT Bina Laras", "admitted_on": today().isoformat()}), 201)
    return cid, stay["care_stays"][0]["id"]


async def _with_destination(client):
    cid, _ = await _in_care(client)
    await ok(await client.put(f"/v1/returns/{cid}/destination", headers=PROVINCE, json={"destination_code": "63.71"}))
    return cid


async def _verified(client):
    cid = await _reported(client)
    await to_verified(client, cid)
    return cid


async def _departed(client):
    cid = await scheduled(client)
    await ok(await client.post(f"/v1/returns/{cid}/legs/1/departure", headers=PROVINCE, json={"departed_at": ago(hours=2)}))
    return cid


async def step_intake(client):
    return "POST", "/v1/returns", intake(name="Retry Intake"), 201


async def step_care_stay(client):
    return "POST", f"/v1/returns/{await _reported(client)}/care-stays", {"facility_type": "shelter", "facility_name": "Shelter", "admitted_on": today().isoformat()}, 201


async def step_end_stay(client):
    cid, stay = await _in_care(client)
    return "PATCH", f"/v1/returns/{cid}/care-stays/{stay}", {"left_on": today().isoformat()}, 200


async def step_counselling(client):
    cid, _ = await _in_care(client)
    return "POST", f"/v1/returns/{cid}/counselling", {"held_on": today().isoformat(), "counsellor": "Bu Rina", "topic": "safe travel"}, 201


async def step_destination(client):
    cid, _ = await _in_care(client)
    return "PUT", f"/v1/returns/{cid}/destination", {"destination_code": "63.71", "family_contact_phone": "0812-1111-2222"}, 200


async def step_verification(client):
    return "POST", f"/v1/returns/{await _with_destination(client)}/verification", {"note": "family reached"}, 200


async def step_schedule(client):
    return "POST", f"/v1/returns/{await _verified(client)}/schedule", {"legs": [leg()]}, 200


async def step_departure(client):
    return "POST", f"/v1/returns/{await scheduled(client)}/legs/1/departure", {"departed_at": ago(hours=2)}, 200


async def step_handover(client):
    return "POST", f"/v1/returns/{await _departed(client)}/legs/1/handover", {
        "handed_over_at": ago(hours=1), "handover_document_no": "BAST/9", "received_by": "Dinsos Banjarmasin"}, 200


async def step_refusal(client):
    return "POST", f"/v1/returns/{await _verified(client)}/refusal", {"refused_by": "family", "reason": "not welcome"}, 200


async def step_unresolved(client):
    return "POST", f"/v1/returns/{await _reported(client)}/unresolved", {"reason": "left the shelter"}, 200


async def step_put_holiday(client):
    return "PUT", "/v1/holidays/2098-03-02", {"name": "Cuti bersama"}, 200


async def step_delete_holiday(client):
    await ok(await client.put("/v1/holidays/2098-03-03", headers=PROVINCE, json={"name": "Nyepi"}))
    return "DELETE", "/v1/holidays/2098-03-03", None, 204


STEPS = [step_intake, step_care_stay, step_end_stay, step_counselling, step_destination, step_verification, step_schedule,
         step_departure, step_handover, step_refusal, step_unresolved, step_put_holiday, step_delete_holiday]


@pytest.mark.parametrize("step", STEPS, ids=[s.__name__.removeprefix("step_") for s in STEPS])
async def test_every_step_answers_a_retry_with_its_first_answer(homeless, step):
    method, url, body, status = await step(homeless)
    key = {**PROVINCE, "Idempotency-Key": f"retry-{uuid.uuid4()}"}
    first = await homeless.request(method, url, headers=key, json=body)
    again = await homeless.request(method, url, headers=key, json=body)
    assert first.status_code == status, first.text
    assert again.status_code == status and again.headers.get("Idempotent-Replayed") == "true", again.text
    assert again.content == first.content or again.json() == first.json()
    if method != "PUT":
        # Without a key a repeat is a new request: the status machine (or the store) refuses it.
        assert (await homeless.request(method, url, headers=PROVINCE, json=body)).status_code in (201, 404, 409)
