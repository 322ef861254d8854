"""Persons and households through the registry API, against real PostgreSQL and Kafka:
NIK rules, privacy (masking, encryption at rest, audited reveals), exact deduplication under
concurrency, provisional records and merges, region rules, households, events."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest
from sqlalchemy import select, text

from registry_testkit import KEYS
from pilar_kernel.nik import make_nik
from pilar_kernel.tables import outbox

pytestmark = pytest.mark.stack

SIDOARJO_VILLAGE = "35.15.14.2001"  # Wilayut, Sukodono, Kabupaten Sidoarjo
SURABAYA_VILLAGE = "35.78.01.1001"  # Karang Pilang, Kota Surabaya
PROVINCE = KEYS.headers("registry:read", "registry:write", "registry:verify", subject="dinsos-jatim")
SIDOARJO = KEYS.headers("registry:read", "registry:write", region="35.15", subject="dinsos-sidoarjo")
SURABAYA = KEYS.headers("registry:read", "registry:write", region="35.78", subject="dinsos-surabaya")
PII = KEYS.headers("registry:read", "registry:pii", "registry:audit", subject="dinsos-jatim-pii")

_serial = iter(range(1, 9999))


def person(**overrides) -> dict:
    born = overrides.pop("birth_date", date(1950, 3, 14))
    sex = overrides.pop("sex", "F")
    body = {
        "nik": overrides.pop("nik", None) or make_nik("35.15.14", born, sex, next(_serial)),
        "name": "Siti Aminah",
        "birth_place": "Sidoarjo",
        "birth_date": born.isoformat(),
        "sex": sex,
        "village_code": SIDOARJO_VILLAGE,
        "rt": "3",
        "rw": "1",
        "street": "Jl. Raya Wilayut 12",
        "phone": "0812-3456-7890",
        "decile": 2,
        "decile_date": "2026-07-01",
        "ppks": ["lansia_telantar"],
    }
    body.update(overrides)
    return body


async def register(client, headers=SIDOARJO, **overrides):
    r = await client.post("/v1/persons", json=person(**overrides), headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def test_register_masks_nik_and_phone_and_encrypts_them_at_rest(registry):
    body = person()
    r = await registry.post("/v1/persons", json=body, headers=SIDOARJO)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["nik"] == body["nik"][:4] + "*" * 8 + body["nik"][-4:] and out["nik_masked"]
    assert "3456" not in out["phone"]
    assert (out["regency_code"], out["district_code"]) == ("35.15", "35.15.14")
    async with registry.app.state.session_factory() as s:
        raw = (await s.execute(text("SELECT nik_enc, phone_enc, nik_hash FROM person WHERE id = CAST(:i AS uuid)").bindparams(i=out["id"]))).one()
    assert body["nik"].encode() not in raw.nik_enc and b"3456" not in raw.phone_enc
    assert len(raw.nik_hash) == 64


@pytest.mark.parametrize(
    "change, rule",
    [
        ({"nik": "35151441019"}, "nik.length"),
        ({"nik": "3599144101500001"}, "nik.region"),
        ({"nik": "3515143213500001"}, "nik.birth_date"),
        ({"nik": make_nik("35.15.14", date(1950, 3, 14), "F", 77), "sex": "M"}, "nik.sex"),
        ({"nik": make_nik("35.15.14", date(1950, 3, 14), "F", 78), "birth_date": date(1951, 3, 14)}, "nik.birth_date_mismatch"),
        ({"nik": make_nik("35.15.14", date(1950, 3, 14), "F", 1)[:12] + "0000"}, "nik.serial"),
    ],
)
async def test_each_nik_rule_is_a_422_naming_it(registry, change, rule):
    r = await registry.post("/v1/persons", json=person(**change), headers=SIDOARJO)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert rule in {e["rule"] for e in r.json()["errors"] if e["field"] == "nik"}


async def test_a_nik_without_a_birth_date_gives_the_birth_date(registry):
    """Issue 12: the birth date stayed empty although the NIK encodes it (women +40 on the day)."""
    for born, sex in ((date(1950, 3, 14), "F"), (date(1988, 11, 30), "M"), (date(2004, 1, 1), "F")):
        body = person(birth_date=born, sex=sex)
        del body["birth_date"]
        r = await registry.post("/v1/persons", json=body, headers=SIDOARJO)
        assert r.status_code == 201, r.text
        assert r.json()["birth_date"] == born.isoformat()
        async with registry.app.state.session_factory() as s:
            payload = (await s.execute(select(outbox.c.payload).where(
                outbox.c.message_key == r.json()["id"], outbox.c.ce_type.like("%person.registered.v1")))).scalar_one()
        assert f'"birth_date":"{born.isoformat()}"' in payload.decode()
    # A null birth date is the same as none.
    body = person(birth_date=date(1966, 6, 6), sex="M")
    body["birth_date"] = None
    r = await registry.post("/v1/persons", json=body, headers=SIDOARJO)
    assert r.status_code == 201 and r.json()["birth_date"] == "1966-06-06"
    # A given birth date that contradicts the NIK is still refused, naming the rule.
    body = person(birth_date=date(1950, 3, 14))
    body["birth_date"] = "1950-03-15"
    r = await registry.post("/v1/persons", json=body, headers=SIDOARJO)
    assert r.status_code == 422 and "nik.birth_date_mismatch" in {e["rule"] for e in r.json()["errors"]}
    # A NIK whose digits are no date still fails its own rule, not a missing birth date.
    body = person()
    body["nik"], body["birth_date"] = "3515143213500001", None
    r = await registry.post("/v1/persons", json=body, headers=SIDOARJO)
    assert r.status_code == 422 and {e["rule"] for e in r.json()["errors"]} == {"nik.birth_date"}
    # Clearing the birth date of a person with a NIK gives the NIK's date back.
    kept = await register(registry, birth_date=date(1971, 8, 17), sex="M")
    r = await registry.patch(f"/v1/persons/{kept['id']}", json={"version": kept["version"], "birth_date": None}, headers=SIDOARJO)
    assert r.status_code == 200 and r.json()["birth_date"] == "1971-08-17"


async def test_bad_fields_are_named(registry):
    r = await registry.post(
        "/v1/persons",
        json=person(village_code="35.15.14.9999", ppks=["not_a_category"], decile=3, decile_date=None, rt="abcd"),
        headers=SIDOARJO,
    )
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert "body.rt" in fields  # schema errors come first, before domain rules run
    r = await registry.post("/v1/persons", json=person(village_code="35.15.14.9999", ppks=["not_a_category"], decile_date=None), headers=SIDOARJO)
    assert {e["field"] for e in r.json()["errors"]} == {"village_code", "ppks", "decile_date"}


async def test_concurrent_registrations_of_one_nik_one_wins_other_409(registry):
    body = person()
    results = await asyncio.gather(*(registry.post("/v1/persons", json=body, headers=SIDOARJO) for _ in range(4)))
    assert sorted(r.status_code for r in results) == [201, 409, 409, 409]
    loser = next(r for r in results if r.status_code == 409).json()
    assert loser["errors"][0]["rule"] == "nik.unique"


async def test_regency_office_sees_only_its_region(registry):
    mine = await register(registry)
    assert (await registry.get(f"/v1/persons/{mine['id']}", headers=SURABAYA)).status_code == 404
    r = await registry.post("/v1/persons", json=person(village_code=SURABAYA_VILLAGE), headers=SIDOARJO)
    assert r.status_code == 403
    listed = (await registry.get("/v1/persons?limit=500", headers=SURABAYA)).json()["items"]
    assert mine["id"] not in {p["id"] for p in listed}
    assert (await registry.get(f"/v1/persons/{mine['id']}", headers=PROVINCE)).status_code == 200
    patched = await registry.patch(f"/v1/persons/{mine['id']}", json={"version": 1, "decile": 1}, headers=SURABAYA)
    assert patched.status_code == 404


async def test_reveal_needs_scope_and_reason_and_is_audited(registry):
    created = await register(registry)
    nik = None
    r = await registry.get(f"/v1/persons/{created['id']}", headers={**SIDOARJO, "X-Access-Reason": "home visit"})
    assert r.status_code == 403
    r = await registry.get(f"/v1/persons/{created['id']}", headers={**PII, "X-Access-Reason": "no"})
    assert r.status_code == 422
    r = await registry.get(f"/v1/persons/{created['id']}", headers={**PII, "X-Access-Reason": "verifying bank account holder"})
    assert r.status_code == 200 and not r.json()["nik_masked"]
    nik = r.json()["nik"]
    assert len(nik) == 16 and r.json()["phone"] == "0812-3456-7890"
    log = (await registry.get(f"/v1/persons/{created['id']}/pii-access", headers=PII)).json()
    assert [(e["subject"], e["reason"]) for e in log] == [("dinsos-jatim-pii", "verifying bank account holder")]
    async with registry.app.state.session_factory() as s:
        with pytest.raises(Exception, match="append-only"):
            await s.execute(text("DELETE FROM pii_access"))


async def test_lookup_by_nik_uses_the_blind_index(registry):
    body = person()
    created = (await registry.post("/v1/persons", json=body, headers=SIDOARJO)).json()
    found = await registry.post("/v1/persons/lookup", json={"nik": body["nik"][:8] + " " + body["nik"][8:]}, headers=SIDOARJO)
    assert found.status_code == 200 and found.json()["id"] == created["id"]
    assert (await registry.post("/v1/persons/lookup", json={"nik": body["nik"]}, headers=SURABAYA)).status_code == 404


async def test_provisional_record_then_merge_into_the_real_one(registry):
    prov = await registry.post("/v1/persons", json={"provisional": True, "name": "Tanpa Identitas", "sex": "M", "ppks": ["gelandangan"]}, headers=PROVINCE)
    assert prov.status_code == 201, prov.text
    prov = prov.json()
    assert prov["provisional_id"].startswith("PRV-") and prov["nik"] is None
    real = await register(registry, headers=PROVINCE, sex="M", name="Budi Santoso", ppks=["fakir_miskin"], birth_date=date(1980, 5, 2))
    merged = await registry.post(f"/v1/persons/{prov['id']}/merge", json={"into_person_id": real["id"], "reason": "identified by KTP"}, headers=PROVINCE)
    assert merged.status_code == 200, merged.text
    assert set(merged.json()["ppks"]) == {"gelandangan", "fakir_miskin"}
    old = (await registry.get(f"/v1/persons/{prov['id']}", headers=PROVINCE)).json()
    assert old["status"] == "merged" and old["merged_into"] == real["id"]
    again = await registry.post(f"/v1/persons/{prov['id']}/merge", json={"into_person_id": real["id"], "reason": "again"}, headers=PROVINCE)
    assert again.status_code == 409
    reverse = await registry.post(f"/v1/persons/{real['id']}/merge", json={"into_person_id": prov['id'], "reason": "wrong way"}, headers=PROVINCE)
    assert reverse.status_code == 409


async def test_household_membership_and_moves_keep_history(registry):
    head = await register(registry, kk_number="3515140101200001", relationship="head", sex="M", birth_date=date(1970, 1, 1), name="Slamet")
    wife = await register(registry, kk_number="3515140101200001", relationship="wife", name="Sri")
    assert head["household"]["household_id"] == wife["household"]["household_id"]
    household = (await registry.get(f"/v1/households/{head['household']['household_id']}", headers=SIDOARJO)).json()
    assert [m["relationship"] for m in household["members"]] == ["head", "wife"]
    moved = await registry.patch(f"/v1/persons/{wife['id']}", json={"version": wife["version"], "kk_number": "3515140202200002", "relationship": "head"}, headers=SIDOARJO)
    assert moved.status_code == 200, moved.text
    history = (await registry.get(f"/v1/persons/{wife['id']}/households", headers=SIDOARJO)).json()
    assert [(h["kk_number"], h["valid_to"] is None) for h in history] == [("3515140101200001", False), ("3515140202200002", True)]
    household = (await registry.get(f"/v1/households/{head['household']['household_id']}", headers=SIDOARJO)).json()
    assert [m["relationship"] for m in household["members"]] == ["head"]


async def test_stale_version_is_a_409_and_update_emits_event(registry):
    created = await register(registry)
    ok = await registry.patch(f"/v1/persons/{created['id']}", json={"version": 1, "decile": 1, "decile_date": "2026-10-01"}, headers=SIDOARJO)
    assert ok.status_code == 200 and ok.json()["version"] == 2
    stale = await registry.patch(f"/v1/persons/{created['id']}", json={"version": 1, "decile": 3}, headers=SIDOARJO)
    assert stale.status_code == 409
    async with registry.app.state.session_factory() as s:
        types = (await s.execute(select(outbox.c.ce_type).where(outbox.c.message_key == created["id"]).order_by(outbox.c.id))).scalars().all()
    assert [t.split(".")[-2] for t in types] == ["registered", "updated"]


async def test_death_is_recorded_once_and_events_carry_no_raw_nik(registry):
    body = person()
    created = (await registry.post("/v1/persons", json=body, headers=SIDOARJO)).json()
    dead = await registry.post(f"/v1/persons/{created['id']}/death", json={"date_of_death": "2026-11-01", "version": 1}, headers=SIDOARJO)
    assert dead.status_code == 200 and dead.json()["status"] == "deceased"
    again = await registry.post(f"/v1/persons/{created['id']}/death", json={"date_of_death": "2026-11-01", "version": 2}, headers=SIDOARJO)
    assert again.status_code == 409
    async with registry.app.state.session_factory() as s:
        payloads = (await s.execute(select(outbox.c.payload).where(outbox.c.message_key == created["id"]))).scalars().all()
    assert payloads and all(body["nik"].encode() not in p and b"Siti" not in p for p in payloads)


async def test_fuzzy_name_search_and_stats(registry):
    await register(registry, name="Mochammad Ridwan", sex="M", birth_date=date(1960, 2, 2))
    found = (await registry.get("/v1/persons?name=Mohammad Ridwan", headers=SIDOARJO)).json()["items"]
    assert any(p["name"] == "Mochammad Ridwan" for p in found)
    stats = (await registry.get("/v1/stats/persons", headers=SIDOARJO)).json()
    assert set(stats["by_regency"]) == {"35.15"}
    assert stats["by_ppks"]["lansia_telantar"] >= 1


async def test_pagination_is_stable(registry):
    for _ in range(5):
        await register(registry, headers=SURABAYA, village_code=SURABAYA_VILLAGE, nik=make_nik("35.78.01", date(1990, 1, 1), "M", next(_serial)), sex="M", birth_date=date(1990, 1, 1))
    first = (await registry.get("/v1/persons?limit=3", headers=SURABAYA)).json()
    second = (await registry.get(f"/v1/persons?limit=3&cursor={first['next_cursor']}", headers=SURABAYA)).json()
    ids = [p["id"] for p in first["items"] + second["items"]]
    assert len(ids) == len(set(ids)) == 5 and second["next_cursor"] is None
    assert (await registry.get("/v1/persons?cursor=garbage", headers=SURABAYA)).status_code == 422


async def test_retried_status_changes_with_an_idempotency_key_get_the_first_answer(registry):
    """Issue 12: a retried death, move-out, merge or update got a 409 instead of the first answer."""
    async def twice(method: str, path: str, body: dict, key: str, headers=SIDOARJO):
        headers = {**headers, "Idempotency-Key": key}
        first = await registry.request(method, path, json=body, headers=headers)
        again = await registry.request(method, path, json=body, headers=headers)
        assert (first.status_code, again.status_code) == (200, 200), (first.text, again.text)
        assert again.json() == first.json() and again.headers.get("Idempotent-Replayed") == "true"
        return first.json()

    p = await register(registry)
    updated = await twice("PATCH", f"/v1/persons/{p['id']}", {"version": p["version"], "occupation": "buruh tani"}, f"patch-{p['id']}")
    assert updated["occupation"] == "buruh tani" and updated["version"] == p["version"] + 1
    dead = await twice("POST", f"/v1/persons/{p['id']}/death", {"date_of_death": "2026-01-05", "version": updated["version"]},
                       f"death-{p['id']}")
    assert dead["status"] == "deceased"
    moved = await register(registry)
    out = await twice("POST", f"/v1/persons/{moved['id']}/move-out", {"moved_on": "2026-02-01", "destination": "73.71",
                                                                      "version": moved["version"]}, f"move-{moved['id']}")
    assert out["status"] == "moved_out"
    provisional = (await registry.post("/v1/persons", json={"name": "Tanpa Identitas", "sex": "M", "provisional": True,
                                                             "village_code": SIDOARJO_VILLAGE}, headers=SIDOARJO)).json()
    real = await register(registry)
    survivor = await twice("POST", f"/v1/persons/{provisional['id']}/merge", {"into_person_id": real["id"], "reason": "KTP checked"},
                           f"merge-{provisional['id']}", headers=PROVINCE)
    assert survivor["id"] == real["id"]
    async with registry.app.state.session_factory() as s:
        kinds = (await s.execute(select(outbox.c.ce_type).where(outbox.c.message_key.in_([p["id"], moved["id"], provisional["id"]]))
                                 )).scalars().all()
    assert sorted(k.rsplit(".", 2)[-2] for k in kinds if "registered" not in k) == ["deceased", "merged", "moved", "updated"]


async def test_bad_input_is_a_422_naming_the_field_never_a_server_error(registry):
    """Issue 12: integers beyond PostgreSQL's range, cursors of another shape and unbounded
    strings reached the database; every one must be a 422 naming the field."""
    from pilar_kernel.pagination import encode_cursor

    p = await register(registry)

    def fields(r) -> set[str]:
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        return {e["field"] for e in r.json()["errors"]}

    for version in (2**31, 0, -1):
        assert "body.version" in fields(await registry.patch(f"/v1/persons/{p['id']}", json={"version": version, "rt": "1"}, headers=SIDOARJO))
        assert "body.version" in fields(await registry.post(f"/v1/persons/{p['id']}/death", json={"version": version, "date_of_death": "2026-01-01"},
                                                            headers=SIDOARJO))
    approver = KEYS.headers("registry:read", "registry:approve", subject="dinsos-jatim", user="kabid")
    assert "body.version" in fields(await registry.post(f"/v1/enrolments/{p['id']}/approve", json={"version": 2**40}, headers=approver))
    assert "body.village_code" in fields(await registry.post("/v1/persons", json=person(village_code="x" * 5000), headers=SIDOARJO))
    assert "body.nik" in fields(await registry.post("/v1/persons", json=person(nik="1" * 500 + "x"), headers=SIDOARJO))
    assert "body.ppks.0" in fields(await registry.post("/v1/persons", json=person(ppks=["Not A Slug!"]), headers=SIDOARJO))
    assert "body.destination" in fields(await registry.post(f"/v1/persons/{p['id']}/move-out", headers=SIDOARJO,
                                                            json={"version": 1, "moved_on": "2026-01-01", "destination": "anywhere"}))
    assert "body.provisional_id" in fields(await registry.post("/v1/persons/lookup", json={"provisional_id": "x" * 300}, headers=SIDOARJO))
    for query in ({"regency_code": "abc"}, {"district_code": "35"}, {"ppks": "DROP TABLE"}, {"name": "x" * 1000}, {"cursor": "c" * 2000}):
        assert f"query.{next(iter(query))}" in fields(await registry.get("/v1/persons", params=query, headers=SIDOARJO))
    # A cursor that decodes but has another shape (another endpoint's, a forged one).
    for forged in ([1, 2], ["not a time", "x"], ["2026-01-01T00:00:00+00:00"], ["2026-01-01T00:00:00+00:00", "not-a-uuid"], [[], {}]):
        cursor = encode_cursor(forged)
        assert fields(await registry.get("/v1/persons", params={"cursor": cursor}, headers=SIDOARJO)) == {"query.cursor"}
        assert fields(await registry.get("/v1/enrolments", params={"cursor": cursor}, headers=PROVINCE)) == {"query.cursor"}
        assert fields(await registry.get(f"/v1/persons/{p['id']}/aid-history", params={"cursor": cursor}, headers=SIDOARJO)) == {"query.cursor"}
    admin = KEYS.headers("registry:read", "registry:programme-admin", subject="dinsos-jatim", user="admin-1")
    r = await registry.post("/v1/programmes", headers=admin, json={"code": "HUGE_AMOUNT", "name": "Huge", "amount_per_stage": 10**20})
    assert "body.amount_per_stage" in fields(r)


async def test_the_openapi_document_states_the_bounds(registry):
    doc = (await registry.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    version = schemas["PersonPatch"]["properties"]["version"]
    assert (version["minimum"], version["maximum"]) == (1, 2**31 - 1)
    assert schemas["PersonIn"]["properties"]["village_code"]["anyOf"][0]["pattern"]
    lookup = doc["paths"]["/v1/persons/lookup"]["post"]["responses"]
    assert "application/problem+json" in lookup["404"]["content"]
    upload = doc["paths"]["/v1/imports"]["post"]["responses"]
    assert {"413", "415"} <= set(upload)
