"""The return API against real PostgreSQL: intake with the NIK hashed and never stored,
care, verification rights, relay scheduling, the status machine (illegal moves are 409s),
repeat claimants, the departure standard with its holiday calendar, statistics, and the
events written to the outbox (ids and codes only)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select, text

from homeless_return import domain
from homeless_return_testkit import KEYS, PROVINCE, READ, SIDOARJO, SURABAYA, WRITE, ago, intake
from pilar_kernel.nik import make_nik
from pilar_kernel.pii import nik_hash
from pilar_kernel.settings import DEV_SECRET
from pilar_kernel.tables import outbox

pytestmark = pytest.mark.stack

_serial = iter(range(1, 9999))


def today() -> date:
    return domain.local_date(datetime.now(UTC))


def nik(birth=date(1988, 4, 12), sex="M", district="63.71.01") -> str:
    return make_nik(district, birth, sex, next(_serial))


async def report(client, headers=PROVINCE, **kw) -> dict:
    r = await client.post("/v1/returns", json=intake(**kw), headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def ok(response, status=200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


async def to_verified(client, case_id, destination="63.71", verifier=PROVINCE) -> dict:
    await ok(await client.post(f"/v1/returns/{case_id}/care-stays", headers=PROVINCE,
                               json={"facility_type": "upt", "facility_name": "UPT Rehabilitasi Sosial Bina Laras", "admitted_on": today().isoformat()}), 201)
    await ok(await client.put(f"/v1/returns/{case_id}/destination", headers=PROVINCE,
                              json={"destination_code": destination, "family_contact_name": "Ibu Sari", "family_contact_phone": "0812-1111-2222"}))
    return await ok(await client.post(f"/v1/returns/{case_id}/verification", headers=verifier, json={"note": "family reached by phone"}))


def leg(mode="bus", cost=150_000, **kw) -> dict:
    return {"mode": mode, "ticket_cost": cost, "escort": "Pak Hadi", "departure_at": kw.pop("departure_at", ago(hours=2)), **kw}


async def to_returned(client, case_id, destination="63.71", verifier=PROVINCE, mode="ship", cost=400_000) -> dict:
    await to_verified(client, case_id, destination, verifier)
    await ok(await client.post(f"/v1/returns/{case_id}/schedule", headers=PROVINCE, json={"legs": [leg(mode, cost)]}))
    await ok(await client.post(f"/v1/returns/{case_id}/legs/1/departure", headers=PROVINCE, json={"departed_at": ago(hours=2)}))
    return await ok(await client.post(f"/v1/returns/{case_id}/legs/1/handover", headers=PROVINCE,
                                      json={"handed_over_at": ago(hours=1), "handover_document_no": f"BAST/{case_id[:8]}", "received_by": "Dinsos officer"}))


async def events_of(client, case_id) -> list[tuple[str, dict]]:
    async with client.app.state.session_factory() as s:
        rows = (await s.execute(select(outbox.c.ce_type, outbox.c.payload).where(outbox.c.message_key == case_id).order_by(outbox.c.id))).all()
    return [(t.rsplit(".", 2)[-2], json.loads(p)) for t, p in rows]


async def test_intake_hashes_the_nik_and_keeps_only_the_hash(homeless):
    number = nik()
    case = await report(homeless, nik=number)
    assert case["status"] == "reported" and case["nik_known"] and "nik" not in case
    assert case["departure_due_on"] > today().isoformat()
    async with homeless.app.state.session_factory() as s:
        row = (await s.execute(text("SELECT row_to_json(r)::text AS j, nik_hash FROM return_case r WHERE id = CAST(:i AS uuid)").bindparams(i=case["id"]))).one()
    # The NIK is nowhere; name and health note are encrypted at rest.
    assert number not in row.j and "Budi" not in row.j and "tired" not in row.j
    assert case["name"] == "Budi Santoso" and case["health_note"] == "tired, no injuries"
    assert row.nik_hash == nik_hash(number, DEV_SECRET)
    [(kind, payload)] = await events_of(homeless, case["id"])
    assert kind == "reported"
    assert payload["nik_hash"] == row.nik_hash and payload["origin_code"] == "63.71" and payload["found_regency_code"] == "35.78"
    flat = json.dumps(payload)
    assert number not in flat and "Budi" not in flat and "Purabaya" not in flat and "tired" not in flat


async def test_intake_is_idempotent_per_key(homeless):
    body = intake(name="Agus Salim")
    first = await homeless.post("/v1/returns", json=body, headers={**PROVINCE, "Idempotency-Key": "intake-agus-1"})
    again = await homeless.post("/v1/returns", json=body, headers={**PROVINCE, "Idempotency-Key": "intake-agus-1"})
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true" and again.json()["id"] == first.json()["id"]


async def test_bad_intake_names_each_field(homeless):
    r = await homeless.post("/v1/returns", json=intake(nik=nik(sex="F"), found_place_code="35.99", origin_code="99.99"), headers=PROVINCE)
    assert r.status_code == 422, r.text
    assert {(e["field"], e["rule"]) for e in r.json()["errors"]} == {("nik", "nik.sex"), ("found_place_code", "region.jatim"), ("origin_code", "region.unknown")}
    r = await homeless.post("/v1/returns", json=intake(cause="bad_luck"), headers=PROVINCE)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.cause"
    # A regency office reports only persons found in its own region.
    assert (await homeless.post("/v1/returns", json=intake(), headers=SIDOARJO)).status_code == 403
    assert (await homeless.post("/v1/returns", json=intake(), headers=KEYS.headers(READ))).status_code == 403


async def test_trafficking_raises_the_flag(homeless):
    case = await report(homeless, cause="suspected_trafficking")
    assert case["flags"] == ["suspected_trafficking"]
    flagged = await report(homeless, cause="job_scam", suspected_trafficking=True)
    listed = (await homeless.get("/v1/returns?flag=suspected_trafficking&limit=500", headers=PROVINCE)).json()["items"]
    assert {case["id"], flagged["id"]} <= {c["id"] for c in listed}
    [(_, payload)] = await events_of(homeless, flagged["id"])
    assert payload["flags"] == ["suspected_trafficking"] and payload["cause"] == "job_scam"


async def test_illegal_transitions_are_409(homeless):
    case = await report(homeless)
    cid = case["id"]
    assert (await homeless.post(f"/v1/returns/{cid}/verification", headers=PROVINCE, json={})).status_code == 409
    assert (await homeless.post(f"/v1/returns/{cid}/schedule", headers=PROVINCE, json={"legs": [leg()]})).status_code == 409
    assert (await homeless.post(f"/v1/returns/{cid}/refusal", headers=PROVINCE, json={"refused_by": "family", "reason": "no one answers"})).status_code == 409
    assert (await homeless.post(f"/v1/returns/{cid}/counselling", headers=PROVINCE,
                                json={"held_on": today().isoformat(), "counsellor": "Bu Rina", "topic": "safe travel"})).status_code == 409
    stay = await ok(await homeless.post(f"/v1/returns/{cid}/care-stays", headers=PROVINCE,
                                        json={"facility_type": "shelter", "facility_name": "Shelter Kota", "admitted_on": today().isoformat()}), 201)
    assert stay["status"] == "in_care"
    # Optimistic concurrency: a stale version is refused.
    stale = await homeless.put(f"/v1/returns/{cid}/destination", headers={**PROVINCE, "If-Match": '"1"'}, json={"destination_code": "63.71"})
    assert stale.status_code == 409 and stale.json()["current_version"] == stay["version"]
    await ok(await homeless.put(f"/v1/returns/{cid}/destination", headers={**PROVINCE, "If-Match": f'"{stay["version"]}"'}, json={"destination_code": "63.71"}))
    assert (await homeless.post(f"/v1/returns/{cid}/schedule", headers=PROVINCE, json={"legs": [leg()]})).status_code == 409
    counselled = await ok(await homeless.post(f"/v1/returns/{cid}/counselling", headers=PROVINCE,
                                              json={"held_on": today().isoformat(), "counsellor": "Bu Rina", "topic": "safe travel"}), 201)
    assert len(counselled["counselling"]) == 1
    await ok(await homeless.post(f"/v1/returns/{cid}/verification", headers=PROVINCE, json={}))
    assert (await homeless.post(f"/v1/returns/{cid}/verification", headers=PROVINCE, json={})).status_code == 409
    assert (await homeless.put(f"/v1/returns/{cid}/destination", headers=PROVINCE, json={"destination_code": "64.72"})).status_code == 409
    # A transfer to the UPT closes the shelter stay.
    moved = await ok(await homeless.post(f"/v1/returns/{cid}/care-stays", headers=PROVINCE,
                                         json={"facility_type": "upt", "facility_name": "UPT Kediri", "admitted_on": today().isoformat()}), 201)
    assert [s["left_on"] for s in moved["care_stays"]] == [today().isoformat(), None]
    assert (await homeless.post(f"/v1/returns/{cid}/legs/1/departure", headers=PROVINCE, json={"departed_at": ago(hours=1)})).status_code == 404
    scheduled = await ok(await homeless.post(f"/v1/returns/{cid}/schedule", headers=PROVINCE, json={"legs": [leg("ship", 350_000)]}))
    assert scheduled["status"] == "scheduled" and scheduled["total_cost"] == 0
    assert (await homeless.post(f"/v1/returns/{cid}/legs/1/handover", headers=PROVINCE,
                                json={"handed_over_at": ago(minutes=5), "handover_document_no": "X/1", "received_by": "x"})).status_code == 409
    assert (await homeless.post(f"/v1/returns/{cid}/legs/1/departure", headers=PROVINCE, json={"departed_at": ago(hours=2)})).status_code == 200
    assert (await homeless.post(f"/v1/returns/{cid}/legs/1/departure", headers=PROVINCE, json={"departed_at": ago(hours=2)})).status_code == 409
    done = await ok(await homeless.post(f"/v1/returns/{cid}/legs/1/handover", headers=PROVINCE,
                                        json={"handed_over_at": ago(hours=1), "handover_document_no": "BAST/63/001", "received_by": "Dinsos Kota Banjarmasin"}))
    assert done["status"] == "returned" and done["total_cost"] == 350_000 and done["within_standard"] is True
    for path, body in [("unresolved", {"reason": "lost contact"}), ("refusal", {"refused_by": "family", "reason": "too late"}),
                       ("care-stays", {"facility_type": "upt", "facility_name": "UPT", "admitted_on": today().isoformat()})]:
        r = await homeless.post(f"/v1/returns/{cid}/{path}", headers=PROVINCE, json=body)
        assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json", (path, r.text)
    kinds = [k for k, _ in await events_of(homeless, cid)]
    assert kinds == ["reported", "verified", "departed", "leg_handed_over", "completed"]


async def test_schedule_needs_one_entry_per_leg_of_the_route(homeless):
    case = await report(homeless)
    await to_verified(homeless, case["id"], destination="64.72")  # Samarinda, via Kalimantan Selatan
    r = await homeless.post(f"/v1/returns/{case['id']}/schedule", headers=PROVINCE, json={"legs": [leg("ship")]})
    assert r.status_code == 422 and r.json()["errors"][0]["rule"] == "route.legs" and "35->63, 63->64.72" in r.json()["errors"][0]["message"]
    route = (await homeless.get("/v1/routes/64.72", headers=PROVINCE)).json()
    assert [(h["from_code"], h["to_code"], h["receiving_office"]) for h in route] == [
        ("35", "63", "Dinas Sosial Kalimantan Selatan"), ("63", "64.72", "Dinas Sosial Kalimantan Timur")]
    assert (await homeless.get("/v1/routes/35", headers=PROVINCE)).status_code == 422


async def test_a_jatim_destination_is_verified_by_its_regency_with_its_own_token(homeless):
    case = await report(homeless, origin_code="35.15")  # found in Surabaya, going home to Sidoarjo
    cid = case["id"]
    await ok(await homeless.post(f"/v1/returns/{cid}/care-stays", headers=PROVINCE,
                                 json={"facility_type": "upt", "facility_name": "UPT", "admitted_on": today().isoformat()}), 201)
    await ok(await homeless.put(f"/v1/returns/{cid}/destination", headers=PROVINCE, json={"destination_code": "35.15.14"}))
    assert (await homeless.post(f"/v1/returns/{cid}/verification", headers=PROVINCE, json={})).status_code == 403
    assert (await homeless.post(f"/v1/returns/{cid}/verification", headers=SURABAYA, json={})).status_code == 403
    no_scope = KEYS.headers(READ, WRITE, region="35.15", subject="dinsos-sidoarjo")
    assert (await homeless.post(f"/v1/returns/{cid}/verification", headers=no_scope, json={})).status_code == 403
    verified = await ok(await homeless.post(f"/v1/returns/{cid}/verification", headers=SIDOARJO, json={"note": "family at home"}))
    assert verified["status"] == "verified" and verified["verified_by"] == "dinsos-sidoarjo"
    # Elsewhere the province confirms: a regency office may not.
    other = await report(homeless)
    await ok(await homeless.post(f"/v1/returns/{other['id']}/care-stays", headers=PROVINCE,
                                 json={"facility_type": "upt", "facility_name": "UPT", "admitted_on": today().isoformat()}), 201)
    await ok(await homeless.put(f"/v1/returns/{other['id']}/destination", headers=PROVINCE, json={"destination_code": "63.71"}))
    assert (await homeless.post(f"/v1/returns/{other['id']}/verification", headers=SURABAYA, json={})).status_code == 403
    # Sidoarjo sees neither a case found elsewhere nor one going elsewhere.
    assert (await homeless.get(f"/v1/returns/{other['id']}", headers=SIDOARJO)).status_code == 404
    seen = {c["id"] for c in (await homeless.get("/v1/returns?limit=500", headers=SIDOARJO)).json()["items"]}
    assert cid in seen and other["id"] not in seen


async def test_inbound_return_is_handed_over_to_the_regency_office(homeless):
    case = await report(homeless, direction="inbound", referred_by="other_province", sending_province_code="33",
                        found_place_code="35.78", found_place_note="Stasiun Pasar Turi", destination_code="35.15")
    assert case["direction"] == "inbound" and case["sending_province_code"] == "33"
    done = await to_returned(homeless, case["id"], destination="35.15", verifier=SIDOARJO, mode="bus", cost=50_000)
    assert done["status"] == "returned" and done["legs"][0]["to_code"] == "35.15" and done["legs"][0]["receiving_office"] == "Dinas Sosial Kabupaten Sidoarjo"
    bad = await homeless.post("/v1/returns", headers=PROVINCE, json=intake(direction="inbound", referred_by="other_province",
                                                                             sending_province_code="33", destination_code="63.71"))
    assert bad.status_code == 422 and bad.json()["errors"][0]["rule"] == "inbound.destination"


async def test_repeat_claimant_is_flagged_within_the_window(homeless):
    number = nik(birth=date(1979, 9, 9))
    first = await report(homeless, nik=number, name="Slamet Riyadi", birth_date="1979-09-09")
    assert first["flags"] == []
    await to_returned(homeless, first["id"])
    again = await report(homeless, nik=number, name="Slamet", birth_date="1979-09-09", documents="ktp")
    assert again["flags"] == ["repeat_claimant"] and again["previous_return_id"] == first["id"]
    # Without a NIK, the same name and birth date give it away.
    no_nik = await report(homeless, name="  slamet   RIYADI ", birth_date="1979-09-09")
    assert no_nik["flags"] == ["repeat_claimant"]
    assert (await report(homeless, name="Slamet Riyadi", birth_date="1979-09-10"))["flags"] == []
    [(_, payload)] = await events_of(homeless, again["id"])
    assert payload["flags"] == ["repeat_claimant"]
    # Returned thirteen months ago: outside the 12-month window.
    async with homeless.app.state.session_factory() as s, s.begin():
        await s.execute(text("UPDATE return_case SET returned_at = returned_at - interval '13 months' WHERE id = CAST(:i AS uuid)").bindparams(i=first["id"]))
    assert (await report(homeless, nik=number, name="Slamet Riyadi", birth_date="1979-09-09"))["flags"] == []


async def test_refused_and_unresolved_close_the_case(homeless):
    refused = await report(homeless)
    await to_verified(homeless, refused["id"])
    out = await ok(await homeless.post(f"/v1/returns/{refused['id']}/refusal", headers=PROVINCE,
                                       json={"refused_by": "home_government", "reason": "not a resident there"}))
    assert out["status"] == "refused" and out["refused_by"] == "home_government"
    lost = await report(homeless, cause="suspected_trafficking", sex="F", name="Wati", birth_date="2001-02-03")
    out = await ok(await homeless.post(f"/v1/returns/{lost['id']}/unresolved", headers=PROVINCE, json={"reason": "left the shelter"}))
    assert out["status"] == "unresolved"
    kind, payload = (await events_of(homeless, lost["id"]))[-1]
    assert kind == "unresolved"
    assert (payload["sex"], payload["birth_date"], payload["found_regency_code"], payload["person_id"]) == ("F", "2001-02-03", "35.78", None)
    assert "Wati" not in json.dumps(payload) and "shelter" not in json.dumps(payload)


async def test_holidays_move_the_due_day_and_overdue_cases_are_listed_and_counted(homeless):
    case = await report(homeless)
    due = date.fromisoformat(case["departure_due_on"])
    assert due == domain.departure_due_on(today(), domain.HolidayCalendar.of([], ["01-01", "05-01", "06-01", "08-17", "12-25"]))
    admin_only = await homeless.put(f"/v1/holidays/{due.isoformat()}", headers=SIDOARJO, json={"name": "Cuti bersama"})
    assert admin_only.status_code == 403
    await ok(await homeless.put(f"/v1/holidays/{due.isoformat()}", headers=PROVINCE, json={"name": "Cuti bersama"}))
    moved = (await homeless.get(f"/v1/returns/{case['id']}", headers=PROVINCE)).json()["departure_due_on"]
    assert moved == domain.next_working_day(due, domain.HolidayCalendar.of([due], ["01-01", "05-01", "06-01", "08-17", "12-25"])).isoformat()
    assert [h["day"] for h in (await homeless.get(f"/v1/holidays?year={due.year}", headers=PROVINCE)).json()] == [due.isoformat()]
    assert (await homeless.delete(f"/v1/holidays/{due.isoformat()}", headers=PROVINCE)).status_code == 204
    assert (await homeless.get(f"/v1/returns/{case['id']}", headers=PROVINCE)).json()["departure_due_on"] == due.isoformat()

    # Taken in a week ago and still waiting: overdue, listed, counted in /metrics.
    async with homeless.app.state.session_factory() as s, s.begin():
        await s.execute(text("UPDATE return_case SET created_at = created_at - interval '7 days', departure_due_on = :d WHERE id = CAST(:i AS uuid)")
                        .bindparams(d=today() - timedelta(days=2), i=case["id"]))
    listing = (await homeless.get("/v1/returns/overdue", headers=PROVINCE)).json()
    assert case["id"] in {c["id"] for c in listing["items"]} and listing["count"] >= 1
    assert all(c["overdue"] for c in listing["items"])
    assert (await homeless.get(f"/v1/returns/{case['id']}", headers=PROVINCE)).json()["overdue"] is True

    async def gauge():
        for line in (await homeless.get("/metrics")).text.splitlines():
            if line.startswith("pilar_homeless_return_overdue "):
                return float(line.split()[1]) >= listing["count"]
        return False

    from pilar_kernel.testing import eventually

    await eventually(gauge, timeout=10)
    # Departing late is recorded as outside the standard.
    await to_verified(homeless, case["id"])
    await ok(await homeless.post(f"/v1/returns/{case['id']}/schedule", headers=PROVINCE, json={"legs": [leg()]}))
    late = await ok(await homeless.post(f"/v1/returns/{case['id']}/legs/1/departure", headers=PROVINCE, json={"departed_at": ago(minutes=30)}))
    assert late["within_standard"] is False and late["overdue"] is False
    departed = (await events_of(homeless, case["id"]))[-1][1]
    assert departed["within_standard"] is False and departed["leg_count"] == 1


async def test_a_first_leg_by_ship_waits_for_the_ship(homeless):
    case = await report(homeless)
    await to_verified(homeless, case["id"], destination="64.72")
    sails = datetime.now(UTC) + timedelta(days=6)
    out = await ok(await homeless.post(f"/v1/returns/{case['id']}/schedule", headers=PROVINCE, json={"legs": [
        leg("ship", 420_000, departure_at=sails.isoformat()), leg("bus", 180_000, departure_at=(sails + timedelta(days=2)).isoformat())]}))
    assert out["departure_due_on"] == domain.local_date(sails).isoformat()
    async with homeless.app.state.session_factory() as s, s.begin():  # as if today were the sailing day
        await s.execute(text("UPDATE return_case SET departure_due_on = :d WHERE id = CAST(:i AS uuid)").bindparams(d=today(), i=case["id"]))
    assert case["id"] not in {c["id"] for c in (await homeless.get("/v1/returns/overdue", headers=PROVINCE)).json()["items"]}


async def test_statistics(homeless):
    before = (await homeless.get("/v1/stats", headers=PROVINCE)).json()
    case = await report(homeless, cause="job_scam")
    await to_returned(homeless, case["id"], destination="63.71", cost=333_000)
    after = (await homeless.get("/v1/stats", headers=PROVINCE)).json()
    month = today().strftime("%Y-%m")
    assert after["returned"] == before["returned"] + 1
    assert after["returned_per_month"][month] == before["returned_per_month"].get(month, 0) + 1
    assert after["returned_per_destination_province"]["63"] == before["returned_per_destination_province"].get("63", 0) + 1
    assert after["returned_per_cause"]["job_scam"] == before["returned_per_cause"].get("job_scam", 0) + 1
    assert after["cost_per_month"][month] == before["cost_per_month"].get(month, 0) + 333_000
    assert after["departed_within_standard"] == before["departed_within_standard"] + 1
    assert 0 < after["share_within_standard"] <= 1
    assert after["departed"] >= after["departed_within_standard"]
    # A regency office sees the figures of its own region only.
    mine = (await homeless.get("/v1/stats", headers=SIDOARJO)).json()
    assert mine["returned_per_destination_province"].get("63", 0) == 0
    assert (await homeless.get("/v1/stats?from=2026-05-02&to=2026-05-01", headers=PROVINCE)).status_code == 422
