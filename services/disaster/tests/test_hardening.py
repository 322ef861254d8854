"""Regressions of issue 12 in the disaster service, against real PostgreSQL and Kafka:
a regency office never reads a neighbour's warehouses, requests, devices or deployments;
bad input (out-of-range numbers, foreign cursors, filters) is a 422 naming the field, never a
500; retried transitions and stock steps with the same ``Idempotency-Key`` get the first
answer; four eyes hold whatever the case of the user name; the OpenAPI document states the
constraints and the statuses the routes answer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from disaster_testkit import (
    APPROVER,
    KEYS,
    LUMAJANG,
    LUMAJANG_ADMIN,
    PROVINCE,
    READER,
    SURABAYA,
    TODAY,
    approved_request,
    declare,
    ok,
    problem,
    receive,
    scalar,
    warehouse,
)
from pilar_kernel.pagination import encode_cursor

pytestmark = pytest.mark.stack

_RW = ("disaster:read", "disaster:write")
SURABAYA_ADMIN = KEYS.headers(*_RW, "disaster:admin", "disaster:approve", region="35.78", subject="dinsos-surabaya", user="gudang.sby")


def _key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


def _fields(body: dict) -> set[str]:
    return {e["field"] for e in body.get("errors", [])}


async def _two_regency_incident(client) -> dict:
    started = TODAY - timedelta(days=5)
    return ok(await client.post("/v1/incidents", headers=PROVINCE, json={
        "name": f"Banjir lintas kabupaten {uuid.uuid4().hex[:6]}", "category": "natural", "hazard": "flood",
        "regency_codes": ["35.08", "35.78"], "started_on": started.isoformat(), "status": "emergency_response",
        "decree_number": "SK 360/2026", "authority": "governor"}), 201)


# -- 1. region -------------------------------------------------------------------------------


async def test_a_regency_office_reads_its_own_and_the_province_warehouses_not_a_neighbours(disaster):
    province = await warehouse(disaster)
    lumajang = await warehouse(disaster, "regency", "35.08", headers=LUMAJANG_ADMIN)
    surabaya = await warehouse(disaster, "regency", "35.78", headers=SURABAYA_ADMIN)
    for w in (province, lumajang, surabaya):
        await receive(disaster, w["id"], [{"item_code": "blanket", "quantity": 10}])
    ok(await disaster.put(f"/v1/warehouses/{surabaya['id']}/minimums/blanket", json={"minimum": 50}, headers=PROVINCE))

    for path in ("stock", "lots"):
        problem(await disaster.get(f"/v1/warehouses/{surabaya['id']}/{path}", headers=LUMAJANG), 404)
        assert ok(await disaster.get(f"/v1/warehouses/{lumajang['id']}/{path}", headers=LUMAJANG))
        assert ok(await disaster.get(f"/v1/warehouses/{province['id']}/{path}", headers=LUMAJANG))
        assert ok(await disaster.get(f"/v1/warehouses/{surabaya['id']}/{path}", headers=SURABAYA))
    # Writes to a neighbour's warehouse: it does not exist for the caller.
    problem(await disaster.put(f"/v1/warehouses/{surabaya['id']}/minimums/blanket", json={"minimum": 1}, headers=LUMAJANG_ADMIN), 404)
    problem(await disaster.post(f"/v1/warehouses/{surabaya['id']}/receipts", headers=LUMAJANG, json={
        "received_on": TODAY.isoformat(), "source": "donation", "lines": [{"item_code": "blanket", "quantity": 1}]}), 404)
    # The province's warehouse is read, not kept, by a regency office.
    problem(await disaster.put(f"/v1/warehouses/{province['id']}/minimums/blanket", json={"minimum": 1}, headers=LUMAJANG_ADMIN), 403)

    listed = ok(await disaster.get("/v1/warehouses", headers=LUMAJANG))
    ids = {w["id"] for w in listed}
    assert {province["id"], lumajang["id"]} <= ids and surabaya["id"] not in ids
    assert all(w["level"] == "province" or w["regency_code"] == "35.08" for w in listed)
    assert ok(await disaster.get("/v1/warehouses", params={"regency_code": "35.78"}, headers=LUMAJANG)) == []
    assert surabaya["id"] in {w["id"] for w in ok(await disaster.get("/v1/warehouses", headers=PROVINCE))}

    alerts = {a["warehouse_id"] for a in ok(await disaster.get("/v1/stock-alerts", headers=LUMAJANG))}
    assert surabaya["id"] not in alerts
    assert surabaya["id"] in {a["warehouse_id"] for a in ok(await disaster.get("/v1/stock-alerts", headers=SURABAYA))}


async def test_a_regency_office_sees_only_the_stock_requests_it_keeps_an_end_of(disaster):
    inc = await _two_regency_incident(disaster)
    province = await warehouse(disaster)
    lumajang = await warehouse(disaster, "regency", "35.08", headers=LUMAJANG_ADMIN)
    surabaya = await warehouse(disaster, "regency", "35.78", headers=SURABAYA_ADMIN)
    await receive(disaster, province["id"], [{"item_code": "tent", "quantity": 20}])
    theirs = ok(await disaster.post(f"/v1/incidents/{inc['id']}/stock-requests", headers=SURABAYA_ADMIN, json={
        "from_warehouse_id": province["id"], "to_warehouse_id": surabaya["id"], "lines": [{"item_code": "tent", "quantity": 5}]}), 201)
    ours = ok(await disaster.post(f"/v1/incidents/{inc['id']}/stock-requests", headers=LUMAJANG, json={
        "from_warehouse_id": province["id"], "to_warehouse_id": lumajang["id"], "lines": [{"item_code": "tent", "quantity": 5}]}), 201)

    problem(await disaster.get(f"/v1/stock-requests/{theirs['id']}", headers=LUMAJANG), 404)
    problem(await disaster.post(f"/v1/stock-requests/{theirs['id']}/approve", json={"version": 1}, headers=LUMAJANG), 404)
    problem(await disaster.post(f"/v1/stock-requests/{theirs['id']}/cancel", json={"version": 1, "reason": "bukan milik kami"},
                                headers=LUMAJANG), 404)
    assert [r["id"] for r in ok(await disaster.get(f"/v1/incidents/{inc['id']}/stock-requests", headers=LUMAJANG))] == [ours["id"]]
    assert [r["id"] for r in ok(await disaster.get(f"/v1/incidents/{inc['id']}/stock-requests", headers=SURABAYA))] == [theirs["id"]]
    assert {r["id"] for r in ok(await disaster.get(f"/v1/incidents/{inc['id']}/stock-requests", headers=READER))} == {ours["id"], theirs["id"]}
    # Asking a neighbour's warehouse for goods: no such warehouse for the caller.
    r = await disaster.post(f"/v1/incidents/{inc['id']}/stock-requests", headers=LUMAJANG, json={
        "from_warehouse_id": surabaya["id"], "to_warehouse_id": lumajang["id"], "lines": [{"item_code": "tent", "quantity": 1}]})
    problem(r, 404)


async def _registry_person(client, regency: str) -> str:
    person_id = uuid.uuid4()
    async with client.app.state.session_factory() as s:
        await s.execute(text("INSERT INTO registry_person (person_id, regency_code, status, is_head, updated_at) "
                             "VALUES (:p, :r, 'active', false, now())"), {"p": person_id, "r": regency})
        await s.commit()
    return str(person_id)


async def test_assistive_devices_are_seen_where_they_were_handed_out_or_where_the_person_lives(disaster):
    inc = await declare(disaster)
    lumajang = await warehouse(disaster, "regency", "35.08", headers=LUMAJANG_ADMIN)
    await receive(disaster, lumajang["id"], [{"item_code": "crutches", "quantity": 3}])
    person = ok(await disaster.post(f"/v1/incidents/{inc['id']}/persons", headers=LUMAJANG, json={
        "name": "Pak Darmo", "sex": "M", "village_code": "35.08.01.2001", "condition": "injured"}), 201)
    registry_person = await _registry_person(disaster, "35.08")
    ok(await disaster.post(f"/v1/incidents/{inc['id']}/distributions", headers=LUMAJANG, json={
        "warehouse_id": lumajang["id"], "affected_person_id": person["id"], "person_id": registry_person,
        "distributed_on": TODAY.isoformat(), "lines": [{"item_code": "crutches", "quantity": 1}]}), 201)

    def items(r):
        return [(d["item_code"], d["quantity"]) for d in ok(r)]

    params = {"person_id": registry_person}
    assert items(await disaster.get("/v1/assistive-devices", params=params, headers=LUMAJANG)) == [("crutches", 1)]
    assert items(await disaster.get("/v1/assistive-devices", params=params, headers=READER)) == [("crutches", 1)]
    assert items(await disaster.get("/v1/assistive-devices", params=params, headers=SURABAYA)) == []
    # The person moves to Surabaya: the office that looks after them now sees their devices.
    async with disaster.app.state.session_factory() as s:
        await s.execute(text("UPDATE registry_person SET regency_code = '35.78' WHERE person_id = :p"), {"p": registry_person})
        await s.commit()
    assert items(await disaster.get("/v1/assistive-devices", params=params, headers=SURABAYA)) == [("crutches", 1)]
    assert items(await disaster.get("/v1/assistive-devices", params=params, headers=LUMAJANG)) == [("crutches", 1)]


async def test_a_regency_office_lists_only_its_own_volunteers_deployments_in_a_shared_incident(disaster):
    inc = await _two_regency_incident(disaster)
    ids = {}
    for regency in ("35.08", "35.78"):
        v = ok(await disaster.post("/v1/volunteers", headers=PROVINCE, json={
            "member_number": f"TGN-{regency}-{uuid.uuid4().hex[:8]}", "name": f"Relawan {regency}", "rank": "muda",
            "regency_code": regency}), 201)
        d = ok(await disaster.post(f"/v1/incidents/{inc['id']}/deployments", headers=PROVINCE, json={
            "volunteer_id": v["id"], "role": "logistics", "started_on": TODAY.isoformat()}), 201)
        ids[regency] = d["id"]
    assert [d["id"] for d in ok(await disaster.get(f"/v1/incidents/{inc['id']}/deployments", headers=LUMAJANG))] == [ids["35.08"]]
    assert [d["id"] for d in ok(await disaster.get(f"/v1/incidents/{inc['id']}/deployments", headers=SURABAYA))] == [ids["35.78"]]
    assert {d["id"] for d in ok(await disaster.get(f"/v1/incidents/{inc['id']}/deployments", headers=READER))} == set(ids.values())
    problem(await disaster.patch(f"/v1/deployments/{ids['35.78']}", json={"version": 1, "hours": 4}, headers=LUMAJANG), 404)


async def test_a_neighbours_recipient_is_unknown_to_a_regency_office(disaster):
    inc = await _two_regency_incident(disaster)
    lumajang = await warehouse(disaster, "regency", "35.08", headers=LUMAJANG_ADMIN)
    await receive(disaster, lumajang["id"], [{"item_code": "blanket", "quantity": 5}])
    theirs = ok(await disaster.post(f"/v1/incidents/{inc['id']}/households", headers=SURABAYA, json={
        "village_code": "35.78.01.1001", "damage_level": "moderate", "members": [{"name": "Bu Tini", "sex": "F"}]}), 201)
    point = ok(await disaster.post(f"/v1/incidents/{inc['id']}/evacuation-points", headers=SURABAYA, json={
        "name": "GOR Surabaya", "village_code": "35.78.01.1001", "capacity": 200, "opened_on": TODAY.isoformat()}), 201)
    base = {"warehouse_id": lumajang["id"], "distributed_on": TODAY.isoformat(), "lines": [{"item_code": "blanket", "quantity": 1}]}
    for field, value in (("household_id", theirs["id"]), ("affected_person_id", theirs["members"][0]["id"]),
                         ("evacuation_point_id", point["id"])):
        r = await disaster.post(f"/v1/incidents/{inc['id']}/distributions", headers=LUMAJANG, json={**base, field: value})
        assert _fields(problem(r, 422, "distribution.recipient")) == {field}


# -- 2. bad input ----------------------------------------------------------------------------


async def test_volunteers_are_found_by_skill(disaster):
    tag = uuid.uuid4().hex[:8]
    made = {}
    for n, skills in enumerate((["first_aid", "driving"], ["public_kitchen"], [])):
        made[n] = ok(await disaster.post("/v1/volunteers", headers=PROVINCE, json={
            "member_number": f"SKL-{tag}-{n}", "name": f"Relawan {n}", "rank": "madya", "regency_code": "35.09", "skills": skills}), 201)

    async def by_skill(skill: str) -> set[str]:
        r = await disaster.get("/v1/volunteers", params={"skill": skill, "regency_code": "35.09", "limit": 500}, headers=READER)
        return {v["member_number"] for v in ok(r)["items"] if v["member_number"].startswith(f"SKL-{tag}")}

    assert await by_skill("first_aid") == {made[0]["member_number"]}
    assert await by_skill("public_kitchen") == {made[1]["member_number"]}
    assert await by_skill("psychosocial") == set()
    assert _fields(problem(await disaster.get("/v1/volunteers", params={"skill": "juggling"}, headers=READER), 422)) == {"query.skill"}


@pytest.mark.parametrize(("method", "path", "body", "field"), [
    ("put", "/v1/warehouses/{w}/minimums/blanket", {"minimum": 10**33}, "body.minimum"),
    ("put", "/v1/warehouses/{w}/minimums/blanket", {"minimum": 2**63}, "body.minimum"),
    ("post", "/v1/warehouses/{w}/receipts", {"received_on": TODAY.isoformat(), "source": "donation",
                                             "lines": [{"item_code": "blanket", "quantity": 10**20}]}, "body.lines.0.quantity"),
    ("post", "/v1/incidents/{i}/status", {"version": 2**40, "status": "closed", "effective_from": TODAY.isoformat()}, "body.version"),
    ("post", "/v1/evacuation-points/{p}/headcounts", {"reported_at": datetime.now(UTC).isoformat(), "total": 10**12}, "body.total"),
    ("post", "/v1/evacuation-points/{p}/headcounts", {"reported_at": "2026-01-05T08:00:00", "total": 3}, "body.reported_at"),
    ("patch", "/v1/evacuation-points/{p}", {"version": -1}, "body.version"),
    ("post", "/v1/incidents/{i}/deployments", {"volunteer_id": str(uuid.uuid4()), "role": "other", "started_on": TODAY.isoformat(),
                                               "hours": 2**31}, "body.hours"),
    ("post", "/v1/volunteers", {"member_number": "TGN-0001", "name": "X", "rank": "muda", "regency_code": "35.08'--"}, "body.regency_code"),
    ("post", "/v1/incidents/{i}/persons", {"name": "X", "sex": "M", "village_code": "x" * 5000}, "body.village_code"),
    ("post", "/v1/incidents", {"name": "Banjir", "category": "natural", "hazard": "meteor", "regency_codes": ["35.08"],
                               "started_on": TODAY.isoformat()}, "body.hazard"),
    ("put", "/v1/warehouses/{w}/minimums/" + "x" * 300, {"minimum": 1}, "path.item_code"),
    ("get", "/v1/incidents?regency_code=35.08%25", None, "query.regency_code"),
    ("get", "/v1/incidents?status=burning", None, "query.status"),
    ("get", "/v1/warehouses?level=cellar", None, "query.level"),
    ("get", "/v1/incidents/{i}/households?damage_level=total", None, "query.damage_level"),
    ("get", "/v1/warehouses?regency_code=35.08%00", None, "query.regency_code"),  # a NUL in a list filter
    ("post", "/v1/incidents/{i}/persons", {"name": "Pak\u0000Min", "sex": "M", "village_code": "35.08.01.2001"}, "body.name"),
])
async def test_bad_input_is_a_422_naming_the_field(disaster, method, path, body, field):
    inc = await declare(disaster)
    w = await warehouse(disaster)
    point = ok(await disaster.post(f"/v1/incidents/{inc['id']}/evacuation-points", headers=PROVINCE, json={
        "name": "Balai Desa", "village_code": "35.08.01.2001", "capacity": 10, "opened_on": TODAY.isoformat()}), 201)
    url = path.format(w=w["id"], i=inc["id"], p=point["id"])
    kwargs = {"headers": PROVINCE} if body is None else {"headers": PROVINCE, "json": body}
    r = await getattr(disaster, method)(url, **kwargs)
    assert field in _fields(problem(r, 422)), r.text


async def test_a_cursor_of_another_list_is_a_422_not_a_server_error(disaster):
    inc = await declare(disaster)
    await declare(disaster)
    first = ok(await disaster.get("/v1/incidents", params={"limit": 1}, headers=READER))
    second = ok(await disaster.get("/v1/incidents", params={"limit": 1, "cursor": first["next_cursor"]}, headers=READER))
    assert first["items"][0]["id"] != second["items"][0]["id"]  # a cursor this list issued still pages
    foreign = {
        "/v1/incidents": [encode_cursor(["TGN-0001"]), encode_cursor(["not a date", str(uuid.uuid4())]),
                          encode_cursor([TODAY.isoformat(), 12]), encode_cursor([1, 2])],
        f"/v1/incidents/{inc['id']}/households": [encode_cursor(["x"]), first["next_cursor"], encode_cursor([{"a": 1}])],
        f"/v1/incidents/{inc['id']}/persons": [encode_cursor([str(uuid.uuid4()), 1]), encode_cursor([])],
        "/v1/volunteers": [encode_cursor([5]), first["next_cursor"], encode_cursor(["a\u0000b"])],
    }
    for path, cursors in foreign.items():
        for cursor in cursors:
            r = await disaster.get(path, params={"cursor": cursor}, headers=READER)
            assert _fields(problem(r, 422)) == {"query.cursor"}, (path, cursor, r.text)


# -- 3. retries ------------------------------------------------------------------------------


async def _replayed(client, method: str, path: str, body: dict, headers: dict, status: int = 200, *, other: dict | None = None) -> dict:
    """Send twice with one key: the second answer is the first, replayed. The key with another
    (valid) body: 422. ``other`` defaults to the body with the next version."""
    key = _key()
    first = await client.request(method, path, json=body, headers={**headers, **key})
    assert first.status_code == status, first.text
    again = await client.request(method, path, json=body, headers={**headers, **key})
    assert (again.status_code, again.json(), again.headers.get("Idempotent-Replayed")) == (status, first.json(), "true"), again.text
    other = other or {**body, "version": body["version"] + 1}
    reused = problem(await client.request(method, path, json=other, headers={**headers, **key}), 422)
    assert reused["type"].endswith("idempotency-key-reused"), reused
    return first.json()


async def test_retried_incident_status_changes_get_the_first_answer(disaster):
    inc = await declare(disaster, status="alert")
    body = {"version": 1, "status": "emergency_response", "decree_number": "SK 12", "authority": "regent",
            "effective_from": TODAY.isoformat()}
    out = await _replayed(disaster, "POST", f"/v1/incidents/{inc['id']}/status", body, PROVINCE)
    assert (out["status"], out["version"]) == ("emergency_response", 2)
    history = ok(await disaster.get(f"/v1/incidents/{inc['id']}/status-history", headers=READER))
    assert [h["to_status"] for h in history] == ["alert", "emergency_response"]
    # Without a key a repeat is what it always was: a stale version.
    problem(await disaster.post(f"/v1/incidents/{inc['id']}/status", json=body, headers=PROVINCE), 409)


async def test_retried_stock_steps_move_the_stock_once(disaster):
    inc = await declare(disaster)
    province = await warehouse(disaster)
    lumajang = await warehouse(disaster, "regency", "35.08", headers=LUMAJANG_ADMIN)
    receipt = {"received_on": TODAY.isoformat(), "source": "APBD", "lines": [{"item_code": "mat", "quantity": 40}]}
    await _replayed(disaster, "POST", f"/v1/warehouses/{province['id']}/receipts", receipt, PROVINCE, 201,
                    other={**receipt, "source": "APBD perubahan"})

    async def on_hand(w: str) -> int:
        rows = ok(await disaster.get(f"/v1/warehouses/{w}/stock", headers=READER))
        return next((r["on_hand"] for r in rows if r["item_code"] == "mat"), 0)

    assert await on_hand(province["id"]) == 40
    rq = ok(await disaster.post(f"/v1/incidents/{inc['id']}/stock-requests", headers=LUMAJANG, json={
        "from_warehouse_id": province["id"], "to_warehouse_id": lumajang["id"], "lines": [{"item_code": "mat", "quantity": 15}]}), 201)
    rq = await _replayed(disaster, "POST", f"/v1/stock-requests/{rq['id']}/approve", {"version": rq["version"]}, APPROVER)
    rq = await _replayed(disaster, "POST", f"/v1/stock-requests/{rq['id']}/ship", {"version": rq["version"]}, PROVINCE)
    assert rq["status"] == "shipped" and await on_hand(province["id"]) == 25
    rq = await _replayed(disaster, "POST", f"/v1/stock-requests/{rq['id']}/receive", {"version": rq["version"]}, LUMAJANG)
    assert rq["status"] == "received" and await on_hand(lumajang["id"]) == 15
    hand_out = {"warehouse_id": lumajang["id"], "evacuation_point_id": None, "household_id": None,
                "affected_person_id": ok(await disaster.post(f"/v1/incidents/{inc['id']}/persons", headers=LUMAJANG, json={
                    "name": "Bu Sri", "sex": "F", "village_code": "35.08.01.2001"}), 201)["id"],
                "distributed_on": TODAY.isoformat(), "lines": [{"item_code": "mat", "quantity": 2}]}
    await _replayed(disaster, "POST", f"/v1/incidents/{inc['id']}/distributions", hand_out, LUMAJANG, 201,
                    other={**hand_out, "lines": [{"item_code": "mat", "quantity": 3}]})
    assert await on_hand(lumajang["id"]) == 13
    assert await scalar(disaster, "SELECT count(*) FROM stock_movement WHERE warehouse_id = :w AND item_code = 'mat'",
                        w=uuid.UUID(province["id"])) == 2  # one receipt, one shipment
    draft = ok(await disaster.post(f"/v1/incidents/{inc['id']}/stock-requests", headers=LUMAJANG, json={
        "from_warehouse_id": province["id"], "to_warehouse_id": lumajang["id"], "lines": [{"item_code": "mat", "quantity": 1}]}), 201)
    out = await _replayed(disaster, "POST", f"/v1/stock-requests/{draft['id']}/cancel", {"version": 1, "reason": "tidak jadi"}, LUMAJANG)
    assert out["status"] == "cancelled"


async def test_retried_assessment_evacuation_and_tagana_updates_get_the_first_answer(disaster):
    inc = await declare(disaster)
    household = ok(await disaster.post(f"/v1/incidents/{inc['id']}/households", headers=LUMAJANG, json={
        "village_code": "35.08.01.2001", "damage_level": "light", "members": [{"name": "Pak Karto", "sex": "M", "relationship": "head"}]}), 201)
    out = await _replayed(disaster, "PATCH", f"/v1/households/{household['id']}", {"version": 1, "damage_level": "heavy"}, LUMAJANG)
    assert (out["damage_level"], out["version"]) == ("heavy", 2)
    person = household["members"][0]
    await _replayed(disaster, "PATCH", f"/v1/persons/{person['id']}", {"version": 1, "condition": "injured"}, LUMAJANG)
    point = ok(await disaster.post(f"/v1/incidents/{inc['id']}/evacuation-points", headers=LUMAJANG, json={
        "name": "Masjid Al-Ikhlas", "village_code": "35.08.01.2001", "capacity": 80, "opened_on": TODAY.isoformat()}), 201)
    await _replayed(disaster, "PATCH", f"/v1/evacuation-points/{point['id']}", {"version": 1, "capacity": 120}, LUMAJANG)
    count = {"reported_at": datetime.now(UTC).isoformat(), "total": 40, "children": 7}
    await _replayed(disaster, "POST", f"/v1/evacuation-points/{point['id']}/headcounts", count, LUMAJANG, 201, other={**count, "total": 41})
    assert len(ok(await disaster.get(f"/v1/evacuation-points/{point['id']}/headcounts", headers=READER))) == 1
    v = ok(await disaster.post("/v1/volunteers", headers=LUMAJANG_ADMIN, json={
        "member_number": f"TGN-R-{uuid.uuid4().hex[:8]}", "name": "Relawan", "rank": "muda", "regency_code": "35.08"}), 201)
    await _replayed(disaster, "PATCH", f"/v1/volunteers/{v['id']}", {"version": 1, "rank": "madya"}, LUMAJANG)
    d = ok(await disaster.post(f"/v1/incidents/{inc['id']}/deployments", headers=LUMAJANG, json={
        "volunteer_id": v["id"], "role": "evacuation", "started_on": TODAY.isoformat()}), 201)
    await _replayed(disaster, "PATCH", f"/v1/deployments/{d['id']}", {"version": 1, "ended_on": TODAY.isoformat(), "hours": 6}, LUMAJANG)
    item = {"code": f"it_{uuid.uuid4().hex[:8]}", "name": "Hygiene kit", "unit": "pack"}
    await _replayed(disaster, "POST", "/v1/items", item, PROVINCE, 201, other={**item, "unit": "box"})


# -- 4. four eyes ----------------------------------------------------------------------------


async def test_four_eyes_hold_whatever_the_case_of_the_user_name(disaster):
    inc = await declare(disaster)
    province = await warehouse(disaster)
    lumajang = await warehouse(disaster, "regency", "35.08", headers=LUMAJANG_ADMIN)
    asker = KEYS.headers(*_RW, "disaster:approve", subject="dinsos-jatim", user="Gudang.Jatim")
    shouter = KEYS.headers(*_RW, "disaster:approve", subject="dinsos-jatim", user="GUDANG.JATIM")
    rq = ok(await disaster.post(f"/v1/incidents/{inc['id']}/stock-requests", headers=asker, json={
        "from_warehouse_id": province["id"], "to_warehouse_id": lumajang["id"], "lines": [{"item_code": "tent", "quantity": 1}]}), 201)
    assert rq["requested_by"] == "gudang.jatim"
    problem(await disaster.post(f"/v1/stock-requests/{rq['id']}/approve", json={"version": 1}, headers=shouter), 403)
    # A request written before names were folded is still compared without regard to case.
    async with disaster.app.state.session_factory() as s:
        await s.execute(text("UPDATE stock_request SET requested_by = 'Kabid-Linjamsos' WHERE id = :i"), {"i": uuid.UUID(rq["id"])})
        await s.commit()
    problem(await disaster.post(f"/v1/stock-requests/{rq['id']}/approve", json={"version": 1}, headers=APPROVER), 403)
    async with disaster.app.state.session_factory() as s:
        with pytest.raises(IntegrityError):  # and the database refuses it too
            await s.execute(text("UPDATE stock_request SET status = 'approved', approved_by = 'KABID-LINJAMSOS', approved_at = now() "
                                 "WHERE id = :i"), {"i": uuid.UUID(rq["id"])})
    other = await approved_request(disaster, inc["id"], province["id"], lumajang["id"], [{"item_code": "tent", "quantity": 1}], requester=asker)
    assert other["approved_by"] == "kabid-linjamsos"


# -- 5. the document -------------------------------------------------------------------------


async def test_the_openapi_document_states_constraints_and_extra_statuses(disaster):
    doc = ok(await disaster.get("/openapi.json"))
    schemas = doc["components"]["schemas"]
    assert schemas["MinimumIn"]["properties"]["minimum"]["maximum"] <= 2**63 - 1
    assert schemas["StatusChangeIn"]["properties"]["version"]["maximum"] == 2**31 - 1
    assert schemas["HeadcountIn"]["properties"]["total"]["maximum"] <= 2**31 - 1
    assert "pattern" in schemas["VolunteerIn"]["properties"]["regency_code"]
    params = {p["name"]: p for p in doc["paths"]["/v1/volunteers"]["get"]["parameters"]}
    skill = params["skill"]["schema"]["anyOf"][0]
    assert "first_aid" in skill["enum"]
    assert "application/problem+json" in doc["paths"]["/v1/warehouses"]["post"]["responses"]["404"]["content"]
    for path, op in (("/v1/incidents/{incident_id}/status", "post"), ("/v1/stock-requests/{request_id}/ship", "post"),
                     ("/v1/households/{household_id}", "patch"), ("/v1/evacuation-points/{point_id}/headcounts", "post")):
        assert "200" in doc["paths"][path][op]["responses"] or "201" in doc["paths"][path][op]["responses"]
        assert "Idempotency-Key" in {p["name"] for p in doc["paths"][path][op]["parameters"] if p["in"] == "header"}, path
    # Texts are stripped before their length is checked; the pattern says so.
    assert schemas["IncidentIn"]["properties"]["name"]["pattern"] and {"decree_number", "authority"} <= set(schemas["IncidentIn"]["required"])


async def test_texts_and_keys_the_document_refuses_are_refused_with_the_field_named(disaster):
    inc = await declare(disaster)
    r = await disaster.post(f"/v1/incidents/{inc['id']}/persons", headers={**LUMAJANG, "Idempotency-Key": "k" * 201},
                            json={"name": "Pak Slamet", "sex": "M", "village_code": "35.08.01.2001"})
    assert _fields(problem(r, 422)) == {"header.Idempotency-Key"}
    r = await disaster.post(f"/v1/incidents/{inc['id']}/persons", headers=LUMAJANG, json={"name": "   ", "sex": "M", "village_code": "3508012001"})
    assert _fields(problem(r, 422)) == {"body.name"}
    r = await disaster.post("/v1/incidents", headers=PROVINCE, json={
        "name": "  Banjir  ", "category": "natural", "hazard": "flood", "regency_codes": ["3508"], "started_on": TODAY.isoformat()})
    assert _fields(problem(r, 422)) == {"body.decree_number", "body.authority"}
    # The bare-digit region codes the document allows are accepted.
    person = ok(await disaster.post(f"/v1/incidents/{inc['id']}/persons", headers=LUMAJANG,
                                    json={"name": " Pak Slamet ", "sex": "M", "village_code": "3508012001"}), 201)
    assert (person["name"], person["village_code"]) == ("Pak Slamet", "35.08.01.2001")
