"""Regressions of issue 12 in the disbursement service, against real PostgreSQL and Kafka:
four-eyes ignores letter case; bad input (NUL characters, undecodable files, numbers beyond
PostgreSQL's range, cursors of another endpoint) is a 422 naming the field, never a 500;
round totals for a regency office are its region's; every state-changing request honours
Idempotency-Key; the OpenAPI document lists what the routes answer."""

from __future__ import annotations

import uuid

import pytest

from disbursement_testkit import (
    ADMIN,
    APPROVER,
    KEYS,
    PREPARER,
    SIDOARJO,
    add_payables,
    approve,
    approved_round,
    assert_problem,
    new_programme,
    new_round,
    snapshot,
)
from pilar_kernel.pagination import encode_cursor

pytestmark = pytest.mark.stack

_R = ("disbursement:read",)
# The preparer officer-a again, holding the approve scope, her id in another case.
OFFICER_A_SHOUTING = KEYS.headers(*_R, "disbursement:approve", subject="dinsos-jatim", user="OFFICER-A")
MIXED_CASE_PREPARER = KEYS.headers(*_R, "disbursement:prepare", subject="dinsos-jatim", user="QA.Prep")
QA_PREP_APPROVER = KEYS.headers(*_R, "disbursement:approve", subject="dinsos-jatim", user="qa.prep")
HUGE = 170083239536426240


def fields_of(r) -> set[str]:
    return {e["field"] for e in r.json().get("errors", [])}


# -- four eyes -----------------------------------------------------------------------------


async def test_four_eyes_on_rounds_ignores_letter_case(disbursement):
    code = await new_programme(disbursement)
    await add_payables(disbursement.app.state.session_factory, code, 2)
    rnd = await snapshot(disbursement, await new_round(disbursement, code))  # by officer-a
    assert rnd["prepared_by"] == "officer-a"
    assert_problem(await approve(disbursement, rnd, headers=OFFICER_A_SHOUTING), 403, "round.four_eyes")

    other = await new_round(disbursement, code, stage=2)
    other = await snapshot(disbursement, other, headers=MIXED_CASE_PREPARER)
    assert other["prepared_by"] == "qa.prep"  # who did it is recorded case-folded
    assert_problem(await approve(disbursement, other, headers=QA_PREP_APPROVER), 403, "round.four_eyes")
    r = await approve(disbursement, other)
    assert r.status_code == 200 and r.json()["approved_by"] == "kabid-linjamsos", r.text


# -- bad input: 422 naming the field, never 500 ----------------------------------------------


async def test_nul_characters_are_refused_naming_the_field(disbursement):
    r = await disbursement.post("/v1/programmes", json={"code": "NUL_TEST", "name": "Bantuan\u0000Sosial"}, headers=ADMIN)
    assert_problem(r, 422)
    assert "body.name" in fields_of(r)
    code = await new_programme(disbursement)
    r = await disbursement.put(f"/v1/programmes/{code}", headers=ADMIN, json={
        "name": "ok name", "provincial": False, "exclusive_with": ["A\u0000B"], "default_channel": "bank", "version": 1})
    assert_problem(r, 422)
    assert any(f.startswith("body.exclusive_with") for f in fields_of(r))
    r = await disbursement.put(f"/v1/programmes/{code}", headers=ADMIN, json={
        "name": "x\u0000yz", "provincial": False, "exclusive_with": [], "default_channel": "bank", "version": 1})
    assert "body.name" in fields_of(assert_problem(r, 422) and r)
    r = await disbursement.get("/v1/population/enrolments", params={"programme_code": "A\u0000"}, headers=PREPARER)
    assert_problem(r, 422)


async def test_statement_and_result_files_with_nul_or_undecodable_bytes_are_422_naming_the_line(disbursement):
    header = b"value_date,bank_reference,instruction_id,debit,credit,description\n"
    good = f"2026-05-01,REF1,{uuid.uuid4()}:1,100,,x\n".encode()
    r = await disbursement.post("/v1/statements", content=header + good + b"2026-05-01,RE\x00F,x:1,100,,y\n", headers=PREPARER)
    assert [e["field"] for e in assert_problem(r, 422)["errors"]] == ["line 3"]
    r = await disbursement.post("/v1/statements", content=header + good + b"2026-05-01,RE\xffF,x:1,100,,y\n", headers=PREPARER)
    body = assert_problem(r, 422)
    assert body["errors"][0]["field"] == "line 3" and "UTF-8" in body["errors"][0]["message"]
    # Amounts beyond what a bank line can be, attempts beyond an integer, too long references.
    lines = (f"2026-05-01,R,{uuid.uuid4()}:1,{10**20},,big\n"
             f"2026-05-01,R,{uuid.uuid4()}:1,,-5,neg\n"
             f"2026-05-01,{'R' * 101},{uuid.uuid4()}:1,100,,long\n"
             f"2026-05-01,R,{uuid.uuid4()}:1,,,what,paid-ish\n")
    content = "value_date,bank_reference,instruction_id,debit,credit,description,status\n" + lines
    r = await disbursement.post("/v1/statements", content=content, headers=PREPARER)
    assert fields_of(assert_problem(r, 422) and r) == {"line 2.debit", "line 3.credit", "line 4.bank_reference", "line 5.status"}
    r = await disbursement.post("/v1/statements", content=header.decode() + f"2026-05-01,R,{uuid.uuid4()}:{HUGE},100,,x\n",
                                headers=PREPARER)
    assert r.status_code == 201 and r.json()["unmatched"] == 1, r.text  # an instruction id of no payment of ours
    r = await disbursement.post("/v1/statements", params={"account": "RKUD\u0000"}, content=header + good, headers=PREPARER)
    assert_problem(r, 422)
    r = await disbursement.post(f"/v1/post-exports/{uuid.uuid4()}/results", content=b"instruction_id,status\nx\x00,failed\n",
                                headers=PREPARER)
    assert [e["field"] for e in assert_problem(r, 422)["errors"]] == ["line 2"]


async def test_numbers_beyond_postgresql_range_are_422(disbursement):
    r = await disbursement.get("/v1/rounds", params={"year": HUGE}, headers=PREPARER)
    assert "query.year" in fields_of(assert_problem(r, 422) and r)
    r = await disbursement.get("/v1/rounds", params={"year": 1999}, headers=PREPARER)
    assert_problem(r, 422)
    code = await new_programme(disbursement)
    r = await disbursement.post("/v1/rounds", headers=PREPARER, json={
        "programme_code": code, "year": HUGE, "stage": 1, "amount": 1000, "ceiling": 1000,
        "period_start": "2026-01-01", "period_end": "2026-02-01"})
    assert "body.year" in fields_of(assert_problem(r, 422) and r)
    r = await disbursement.put(f"/v1/programmes/{code}/budgets/2026", json={"amount": 10**33}, headers=ADMIN)
    assert "body.amount" in fields_of(assert_problem(r, 422) and r)
    r = await disbursement.put(f"/v1/programmes/{code}/budgets/2026", json={"amount": 10, "version": 2**40}, headers=ADMIN)
    assert "body.version" in fields_of(assert_problem(r, 422) and r)
    r = await disbursement.put(f"/v1/programmes/{code}/budgets/{HUGE}", json={"amount": 10}, headers=ADMIN)
    assert_problem(r, 422)
    rnd = await new_round(disbursement, code)
    r = await disbursement.patch(f"/v1/rounds/{rnd['id']}", json={"version": HUGE, "name": "x"}, headers=PREPARER)
    assert "body.version" in fields_of(assert_problem(r, 422) and r)
    r = await disbursement.post(f"/v1/rounds/{rnd['id']}/approve", json={"sk_number": "SK 1", "snapshot_version": HUGE}, headers=APPROVER)
    assert "body.snapshot_version" in fields_of(assert_problem(r, 422) and r)
    r = await disbursement.post("/v1/relief-programmes", headers=ADMIN, json={
        "name": "Santunan", "round_id": rnd["id"], "amount_heavy": 10**33})
    assert "body.amount_heavy" in fields_of(assert_problem(r, 422) and r)
    r = await disbursement.get("/v1/relief-grants", params={"status": "x\u0000"}, headers=PREPARER)
    assert_problem(r, 422)


async def test_a_cursor_of_another_endpoint_is_422(disbursement):
    foreign = encode_cursor([7])  # a statement-lines cursor
    for url in ("/v1/payments", "/v1/rounds", "/v1/population/enrolments"):
        r = await disbursement.get(url, params={"cursor": foreign}, headers=PREPARER)
        assert fields_of(assert_problem(r, 422) and r) == {"query.cursor"}, url
    r = await disbursement.get("/v1/payments", params={"cursor": encode_cursor(["not a date", "x"])}, headers=PREPARER)
    assert_problem(r, 422)


# -- round totals for a regency office --------------------------------------------------------


async def test_round_totals_for_a_regency_office_are_its_regions(disbursement):
    sf = disbursement.app.state.session_factory
    code = await new_programme(disbursement)
    await add_payables(sf, code, 2, regency="35.15")
    await add_payables(sf, code, 3, regency="35.78")
    rnd = await approved_round(disbursement, code, amount=100_000, ceiling=1_000_000, channel="post")
    assert (await disbursement.post(f"/v1/rounds/{rnd['id']}/disburse", headers=PREPARER)).status_code == 200
    province = (await disbursement.get(f"/v1/rounds/{rnd['id']}/totals", headers=PREPARER)).json()
    assert (province["budget_scope"], province["ceiling"], province["committed"], province["remaining_budget"]) == (
        "round", 1_000_000, 500_000, 500_000)
    sidoarjo = (await disbursement.get(f"/v1/rounds/{rnd['id']}/totals", headers=SIDOARJO)).json()
    assert (sidoarjo["region"], sidoarjo["budget_scope"], sidoarjo["committed"], sidoarjo["payment_count"]) == ("35.15", "region", 200_000, 2)
    assert sidoarjo["ceiling"] is None and sidoarjo["remaining_budget"] is None


# -- retries are safe: Idempotency-Key on every state-changing request ------------------------


async def _twice(client, method: str, url: str, headers: dict, **kw):
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    first = await client.request(method, url, headers={**headers, **key}, **kw)
    again = await client.request(method, url, headers={**headers, **key}, **kw)
    assert first.status_code < 300, first.text
    assert (again.status_code, again.json(), again.headers.get("Idempotent-Replayed")) == (first.status_code, first.json(), "true"), again.text
    return first.json()


async def test_retried_writes_get_the_first_answer(disbursement):
    code = await new_programme(disbursement)
    await _twice(disbursement, "PUT", f"/v1/programmes/{code}", ADMIN,
                 json={"name": "Renamed programme", "provincial": True, "exclusive_with": [], "default_channel": "post", "version": 1})
    budget = await _twice(disbursement, "PUT", f"/v1/programmes/{code}/budgets/2027", ADMIN, json={"amount": 5_000_000})
    await _twice(disbursement, "PUT", f"/v1/programmes/{code}/budgets/2027", ADMIN, json={"amount": 6_000_000, "version": budget["version"]})
    rnd = await new_round(disbursement, code)
    patched = await _twice(disbursement, "PATCH", f"/v1/rounds/{rnd['id']}", PREPARER, json={"version": rnd["version"], "name": "Tahap satu"})
    assert patched["version"] == rnd["version"] + 1
    relief = await _twice(disbursement, "POST", "/v1/relief-programmes", ADMIN,
                          json={"name": "Santunan banjir", "round_id": rnd["id"], "amount_heavy": 1_000_000})
    stopped = await _twice(disbursement, "PATCH", f"/v1/relief-programmes/{relief['id']}", ADMIN, json={"version": 1, "active": False})
    assert (stopped["active"], stopped["version"]) == (False, 2)
    assert len([p for p in (await disbursement.get("/v1/relief-programmes", headers=PREPARER)).json() if p["id"] == relief["id"]]) == 1


# -- the OpenAPI document -------------------------------------------------------------------


async def test_the_openapi_document_lists_what_routes_answer(disbursement):
    doc = (await disbursement.get("/openapi.json")).json()
    paths = doc["paths"]
    assert "404" in paths["/v1/rounds"]["post"]["responses"]
    assert set(paths["/v1/post-exports/{export_id}/file"]["get"]["responses"]["200"]["content"]) == {"text/csv"}
    settle = paths["/v1/payments/{payment_id}/settlements/{settlement_id}/approve"]["post"]
    assert {"403", "404", "409", "422"} <= set(settle["responses"])
    year = next(p for p in paths["/v1/rounds"]["get"]["parameters"] if p["name"] == "year")
    assert year["schema"]["anyOf"][0]["maximum"] == 2100


async def test_a_regency_office_lists_its_own_relief_grants_whatever_the_limit(disbursement):
    from sqlalchemy import text

    code = await new_programme(disbursement)
    rnd = await new_round(disbursement, code)
    r = await disbursement.post("/v1/relief-programmes", headers=ADMIN, json={"name": "Santunan", "round_id": rnd["id"], "amount_heavy": 500_000})
    relief_id = r.json()["id"]
    incident = uuid.uuid4()
    async with disbursement.app.state.session_factory() as s, s.begin():
        for i, regency in enumerate(["35.78", "35.78", "35.78", "35.15"]):
            await s.execute(text(
                """
                INSERT INTO relief_grant (id, incident_id, household_id, relief_programme_id, regency_code, damage_level, amount, status,
                                          reason, household_version, created_at)
                VALUES (gen_random_uuid(), :i, gen_random_uuid(), :p, :g, 'heavy', 500000, 'held', 'recipient_unknown', 1,
                        now() - make_interval(mins => :age))
                """), {"i": incident, "p": relief_id, "g": regency, "age": 10 - i})
    mine = (await disbursement.get("/v1/relief-grants", params={"incident_id": str(incident), "limit": 1}, headers=SIDOARJO)).json()
    assert [g["regency_code"] for g in mine] == ["35.15"]
