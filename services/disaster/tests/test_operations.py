"""The disaster service against real PostgreSQL and Kafka: incident status with its history,
region rules, the assessment's handling of NIKs, evacuation, Tagana deployments that never
overlap (even when they race), and buffer stock that never goes negative when shipments race."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from disaster_testkit import (
    APPROVER,
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
from pilar_kernel.nik import make_nik
from pilar_kernel.testing import eventually

pytestmark = pytest.mark.stack


async def test_incident_status_moves_by_decree_and_keeps_its_history(disaster):
    started = TODAY - timedelta(days=20)
    inc = await declare(disaster, status="alert", started=started, headers=LUMAJANG)
    assert (inc["status"], inc["version"], inc["regency_codes"]) == ("alert", 1, ["35.08"])
    steps = [("emergency_response", 18), ("emergency_response", 11), ("transition", 4), ("recovery", 1)]
    version = 1
    for status, days_ago in steps:
        r = await disaster.post(f"/v1/incidents/{inc['id']}/status", headers=LUMAJANG, json={
            "version": version, "status": status, "decree_number": f"SK {status} {days_ago}", "authority": "regent",
            "effective_from": (TODAY - timedelta(days=days_ago)).isoformat()})
        version = ok(r)["version"]
    history = ok(await disaster.get(f"/v1/incidents/{inc['id']}/status-history", headers=READER))
    assert [(h["from_status"], h["to_status"]) for h in history] == [
        (None, "alert"), ("alert", "emergency_response"), ("emergency_response", "emergency_response"),
        ("emergency_response", "transition"), ("transition", "recovery")]
    assert history[2]["decree_number"] == "SK emergency_response 11" and history[-1]["recorded_by"] == "bpbd-officer"
    # Backwards, stale, or a declared status without its decree: refused.
    base = {"effective_from": TODAY.isoformat(), "authority": "regent", "decree_number": "SK x"}
    problem(await disaster.post(f"/v1/incidents/{inc['id']}/status", json={**base, "version": version, "status": "emergency_response"},
                                headers=LUMAJANG), 409, "status.transition")
    problem(await disaster.post(f"/v1/incidents/{inc['id']}/status", json={**base, "version": 1, "status": "closed"}, headers=LUMAJANG), 409)
    fresh = await declare(disaster, status="alert")
    problem(await disaster.post(f"/v1/incidents/{fresh['id']}/status", json={"version": 1, "status": "emergency_response",
                                "effective_from": TODAY.isoformat()}, headers=PROVINCE), 422, "status.decree")
    # Each change is an event on disaster.incident, in order.
    types = await eventually(lambda: _published_types(disaster, inc["id"]))
    assert types == ["incident.declared.v1"] + ["incident.status_changed.v1"] * 4


async def _published_types(client, key: str):
    async with client.app.state.session_factory() as s:
        rows = (await s.execute(text("SELECT ce_type, published_at FROM outbox WHERE message_key = :k ORDER BY id"), {"k": key})).all()
    if rows and all(r.published_at is not None for r in rows):
        return [r.ce_type.removeprefix("id.go.jatimprov.dinsos.disaster.") for r in rows]
    return None


async def test_a_regency_office_works_only_in_its_region(disaster):
    problem(await disaster.post("/v1/incidents", headers=LUMAJANG, json={
        "name": "Banjir Surabaya", "category": "natural", "hazard": "flood", "regency_codes": ["35.78"], "started_on": TODAY.isoformat(),
        "decree_number": "SK 1", "authority": "mayor"}), 403)
    problem(await disaster.post("/v1/incidents", headers=PROVINCE, json={
        "name": "Banjir", "category": "social", "hazard": "flood", "regency_codes": ["35.08"], "started_on": TODAY.isoformat(),
        "decree_number": "SK 1", "authority": "regent"}), 422, "incident.hazard")
    inc = await declare(disaster)
    problem(await disaster.get(f"/v1/incidents/{inc['id']}", headers=SURABAYA), 404)
    assert all(i["id"] != inc["id"] for i in ok(await disaster.get("/v1/incidents", headers=SURABAYA))["items"])
    assert ok(await disaster.get(f"/v1/incidents/{inc['id']}", headers=LUMAJANG))["id"] == inc["id"]
    # The province filters by regency: the incident is listed under its own, not under another.
    in_lumajang = ok(await disaster.get("/v1/incidents", params={"regency_code": inc["regency_codes"][0], "limit": 500}, headers=PROVINCE))
    assert inc["id"] in {i["id"] for i in in_lumajang["items"]}
    elsewhere = ok(await disaster.get("/v1/incidents", params={"regency_code": "35.78", "limit": 500}, headers=PROVINCE))
    assert inc["id"] not in {i["id"] for i in elsewhere["items"]}
    problem(await disaster.post(f"/v1/incidents/{inc['id']}/status", json={"version": 1, "status": "closed",
                                "effective_from": TODAY.isoformat()}, headers=READER), 403)


async def test_the_assessment_hashes_niks_and_refuses_bad_or_repeated_ones(disaster):
    inc = await declare(disaster)
    nik = make_nik("35.08.01", date(1975, 5, 6), "M", 7001)
    member = {"nik": nik, "name": "Sutrisno", "sex": "M", "birth_date": "1975-05-06", "relationship": "head"}
    body = {"kk_number": "3508017777000001", "village_code": "35.08.01.2001", "damage_level": "heavy", "displaced": True, "members": [member]}
    bad = {**body, "members": [{**member, "nik": nik[:-4] + "0000"}]}
    problem(await disaster.post(f"/v1/incidents/{inc['id']}/households", json=bad, headers=LUMAJANG), 422, "nik.serial")
    elsewhere = {**body, "village_code": "35.78.01.1001"}
    problem(await disaster.post(f"/v1/incidents/{inc['id']}/households", json=elsewhere, headers=PROVINCE), 422, "incident.area")
    household = ok(await disaster.post(f"/v1/incidents/{inc['id']}/households", json=body, headers=LUMAJANG), 201)
    assert household["kk_known"] and household["members"][0]["nik_known"] and household["members"][0]["person_id"] is None
    again = {**body, "kk_number": "3508017777000002"}
    problem(await disaster.post(f"/v1/incidents/{inc['id']}/households", json=again, headers=LUMAJANG), 409)
    problem(await disaster.post(f"/v1/incidents/{inc['id']}/households", json=body, headers=LUMAJANG), 409)
    # Neither the NIK nor the KK number is stored or published anywhere.
    await eventually(lambda: _published_types(disaster, household["members"][0]["id"]))
    async with disaster.app.state.session_factory() as s:
        for table in ("affected_person", "affected_household", "outbox", "idempotency_keys"):
            dump = (await s.execute(text(f"SELECT coalesce(string_agg(t::text, ' '), '') FROM {table} t"))).scalar_one()
            assert nik not in dump and "3508017777000001" not in dump, table
        payload = json.loads((await s.execute(text("SELECT payload FROM outbox WHERE message_key = :k"),
                                              {"k": household["members"][0]["id"]})).scalar_one())
    # Unmatched in the registry: the name goes along (the registry opens a provisional record).
    assert payload["name"] == "Sutrisno" and payload["nik_hash"] and payload["person_id"] is None


async def test_evacuation_points_count_heads_over_time(disaster):
    inc = await declare(disaster)
    point = ok(await disaster.post(f"/v1/incidents/{inc['id']}/evacuation-points", headers=LUMAJANG, json={
        "name": "Balai Desa Sumberwuluh", "village_code": "35.08.01.2001", "capacity": 50, "opened_on": (TODAY - timedelta(days=5)).isoformat(),
        "latitude": -8.13, "longitude": 112.92}), 201)
    now = datetime.now(UTC)
    for hours_ago, total in ((30, 20), (6, 62)):
        ok(await disaster.post(f"/v1/evacuation-points/{point['id']}/headcounts", headers=LUMAJANG, json={
            "reported_at": (now - timedelta(hours=hours_ago)).isoformat(), "total": total, "elderly": 4, "children": 9, "pregnant": 1}), 201)
    problem(await disaster.post(f"/v1/evacuation-points/{point['id']}/headcounts", headers=LUMAJANG,
                                json={"reported_at": now.isoformat(), "total": 3, "children": 9}), 422, "headcount.group")
    ok(await disaster.put(f"/v1/evacuation-points/{point['id']}/kitchen/{TODAY.isoformat()}", json={"portions": 150}, headers=LUMAJANG))
    ok(await disaster.put(f"/v1/evacuation-points/{point['id']}/kitchen/{TODAY.isoformat()}", json={"portions": 180}, headers=LUMAJANG))
    listed = ok(await disaster.get(f"/v1/incidents/{inc['id']}/evacuation-points", headers=READER))
    assert listed[0]["latest"]["total"] == 62 and listed[0]["latest"]["over_capacity"] is True
    assert len(ok(await disaster.get(f"/v1/evacuation-points/{point['id']}/headcounts", headers=READER))) == 2
    stats = ok(await disaster.get(f"/v1/incidents/{inc['id']}/statistics", headers=READER))["evacuation"]
    assert (stats["headcount"], stats["kitchen_portions"], stats["children"], stats["open_capacity"]) == (62, 180, 9, 50)


async def test_a_volunteer_is_never_deployed_twice_at_once_even_when_deployments_race(disaster):
    inc, other = await declare(disaster), await declare(disaster, regency="35.09", district="35.09.01")
    volunteer = ok(await disaster.post("/v1/volunteers", headers=PROVINCE, json={
        "member_number": f"TGN-3508-{inc['id'][:6]}", "name": "Agus Salim", "rank": "madya", "regency_code": "35.08",
        "skills": ["evacuation", "public_kitchen"]}), 201)
    problem(await disaster.post("/v1/volunteers", headers=PROVINCE, json={
        "member_number": volunteer["member_number"], "name": "X", "rank": "muda", "regency_code": "35.08"}), 409, "volunteer.unique")
    start = TODAY - timedelta(days=8)
    first = ok(await disaster.post(f"/v1/incidents/{inc['id']}/deployments", headers=LUMAJANG, json={
        "volunteer_id": volunteer["id"], "role": "evacuation", "started_on": start.isoformat()}), 201)
    problem(await disaster.post(f"/v1/incidents/{other['id']}/deployments", headers=PROVINCE, json={
        "volunteer_id": volunteer["id"], "role": "logistics", "started_on": TODAY.isoformat()}), 409, "deployment.overlap")
    problem(await disaster.patch(f"/v1/deployments/{first['id']}", json={"version": 1, "ended_on": (start + timedelta(days=1)).isoformat(),
                                 "hours": 60}, headers=LUMAJANG), 422, "deployment.hours")
    ended = ok(await disaster.patch(f"/v1/deployments/{first['id']}", headers=LUMAJANG, json={
        "version": 1, "ended_on": (start + timedelta(days=2)).isoformat(), "hours": 30}))
    assert ended["hours"] == 30
    # Two deployments of the same days race: the exclusion constraint lets exactly one in.
    day = (start + timedelta(days=4)).isoformat()
    results = await asyncio.gather(*[
        disaster.post(f"/v1/incidents/{i}/deployments", headers=PROVINCE,
                      json={"volunteer_id": volunteer["id"], "role": "public_kitchen", "started_on": day, "ended_on": day, "hours": 8})
        for i in (inc["id"], other["id"], inc["id"])])
    assert sorted(r.status_code for r in results) == [201, 409, 409], [r.text for r in results]
    async with disaster.app.state.session_factory() as s:
        with pytest.raises(IntegrityError):  # the database refuses an overlap written past the service
            await s.execute(text("INSERT INTO deployment (id, volunteer_id, incident_id, role, started_on, hours, recorded_by, version) "
                                 "VALUES (gen_random_uuid(), :v, :i, 'other', :d, 0, 'sql', 1)"), {"v": volunteer["id"], "i": inc["id"], "d": start})
    stats = [ok(await disaster.get(f"/v1/incidents/{i}/statistics", headers=READER))["volunteers"] for i in (inc["id"], other["id"])]
    assert stats[0]["volunteers"] == 1 and stats[0]["hours"] + stats[1]["hours"] == 38  # 30, and the race winner's 8


async def test_racing_shipments_never_take_more_than_the_stock_and_issue_first_expiring_first(disaster):
    inc = await declare(disaster)
    province = await warehouse(disaster)
    lumajang = await warehouse(disaster, "regency", "35.08", headers=LUMAJANG_ADMIN)
    soon, later = (TODAY + timedelta(days=20)).isoformat(), (TODAY + timedelta(days=200)).isoformat()
    await receive(disaster, province["id"], [{"item_code": "family_kit", "quantity": 100}])
    await receive(disaster, province["id"], [{"item_code": "ready_meal", "quantity": 30, "expires_on": later}])
    await receive(disaster, province["id"], [{"item_code": "ready_meal", "quantity": 30, "expires_on": soon}])
    problem(await disaster.post(f"/v1/warehouses/{province['id']}/receipts", headers=PROVINCE, json={
        "received_on": TODAY.isoformat(), "source": "donation", "lines": [{"item_code": "rice", "quantity": 10}]}), 422, "lot.expiry")
    ok(await disaster.put(f"/v1/warehouses/{province['id']}/minimums/family_kit", json={"minimum": 40}, headers=PROVINCE))
    requests = [await approved_request(disaster, inc["id"], province["id"], lumajang["id"], [{"item_code": "family_kit", "quantity": 70}])
                for _ in range(3)]
    # The requester cannot approve their own request.
    own = ok(await disaster.post(f"/v1/incidents/{inc['id']}/stock-requests", headers=APPROVER, json={
        "from_warehouse_id": province["id"], "to_warehouse_id": lumajang["id"], "lines": [{"item_code": "blanket", "quantity": 1}]}), 201)
    problem(await disaster.post(f"/v1/stock-requests/{own['id']}/approve", json={"version": 1}, headers=APPROVER), 403)
    results = await asyncio.gather(*[
        disaster.post(f"/v1/stock-requests/{rq['id']}/ship", json={"version": rq["version"]}, headers=PROVINCE) for rq in requests])
    assert sorted(r.status_code for r in results) == [200, 409, 409], [r.text for r in results]
    refused = next(r for r in results if r.status_code == 409).json()
    assert refused["errors"][0]["rule"] == "stock.insufficient" and refused["errors"][0]["available"] == 30
    stock = {s["item_code"]: s for s in ok(await disaster.get(f"/v1/warehouses/{province['id']}/stock", headers=READER))}
    assert stock["family_kit"]["on_hand"] == 30 and stock["family_kit"]["below_minimum"]
    assert await scalar(disaster, "SELECT min(quantity) FROM stock_lot") >= 0
    alerts = ok(await disaster.get("/v1/stock-alerts", headers=READER))
    assert [(a["item_code"], a["on_hand"], a["minimum"]) for a in alerts if a["warehouse_id"] == province["id"]] == [("family_kit", 30, 40)]
    # Ready meals: the lot expiring first leaves first.
    meals = await approved_request(disaster, inc["id"], province["id"], lumajang["id"], [{"item_code": "ready_meal", "quantity": 40}])
    shipped = ok(await disaster.post(f"/v1/stock-requests/{meals['id']}/ship", json={"version": meals["version"]}, headers=PROVINCE))
    assert [(s["expires_on"], s["quantity"]) for s in shipped["shipment"]] == [(soon, 30), (later, 10)]
    received = ok(await disaster.post(f"/v1/stock-requests/{meals['id']}/receive", json={"version": shipped["version"]}, headers=LUMAJANG))
    assert received["status"] == "received"
    # A receipt lifts the stock back over the minimum and resolves the alert.
    await receive(disaster, province["id"], [{"item_code": "family_kit", "quantity": 20}])
    assert not [a for a in ok(await disaster.get("/v1/stock-alerts", headers=READER)) if a["warehouse_id"] == province["id"]]
    async with disaster.app.state.session_factory() as s:
        with pytest.raises(IntegrityError):  # the CHECK constraint is the last line of defence
            await s.execute(text("UPDATE stock_lot SET quantity = quantity - 1000 WHERE warehouse_id = :w"), {"w": province["id"]})
