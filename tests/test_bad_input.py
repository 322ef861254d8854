"""Bad input through the gateway: each class of input that once reached PostgreSQL and came
back as a server error (issue 12, item 3) is a 4xx problem+json whose ``errors`` name the field.

* a plain bug: ``GET /v1/disaster/volunteers?skill=...`` (it answered 500 for any value);
* a NUL character (``\\u0000``) in list filters (persons, warehouses), in programmes created
  or replaced in the registry and in disbursement, in a bank statement, in a webhook
  subscription;
* integers beyond PostgreSQL's range: a return's leg number, a stock minimum of 10^33, a
  round's year of 170083239536426240 (query, body and path);
* text PostgreSQL cannot store (a lone UTF-16 surrogate) as the reason a return is closed;
* a list cursor that decodes but was issued by another endpoint (every pair of the platform's
  paged lists: a 200 or a 422 naming ``query.cursor``, never a server error).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from platform_testkit import Platform

pytestmark = pytest.mark.stack

CLIENT, USER = "dinsos-jatim", "officer.badinput"
BEYOND_BIGINT = 10**33
BEYOND_INT = 3650491404072
HUGE_YEAR = 170083239536426240


async def _headers(platform: Platform) -> dict[str, str]:
    return await platform.headers(CLIENT, user=USER)


def _names(field: str, wanted: str) -> bool:
    """Whether an error's ``field`` (``query.skill``, ``body.members.0.name``, ``line 2.debit``)
    names ``wanted`` (one or more dotted parts)."""
    parts, want = field.split("."), wanted.split(".")
    return any(parts[i:i + len(want)] == want for i in range(len(parts)))


def assert_refused(response: httpx.Response, field: str, *alternatives: str) -> None:
    """A 400 or 422 problem+json whose ``errors`` name ``field`` (or one of ``alternatives``)."""
    where = f"{response.request.method} {response.request.url}"
    assert response.status_code in (400, 422), f"{where}: {response.status_code} {response.text[:500]}"
    assert response.headers.get("content-type", "").startswith("application/problem+json"), f"{where}: {response.headers}"
    errors = response.json().get("errors") or []
    wanted = (field, *alternatives)
    assert any(_names(str(e.get("field", "")), w) for e in errors for w in wanted), \
        f"{where}: no error names {' or '.join(wanted)}: {response.text[:500]}"


async def _send(platform: Platform, method: str, path: str, headers: dict, **kwargs) -> httpx.Response:
    """One request, the rate limit waited out; no status expected (the caller checks)."""
    return await platform.call(method, path, headers=headers, expect=tuple(range(200, 600)), **kwargs)


def _raw_json(body: dict) -> dict:
    """A JSON body as ASCII with escapes, so that it can carry what UTF-8 cannot (lone surrogates)."""
    return {"content": json.dumps(body, ensure_ascii=True).encode(), "headers_extra": {"Content-Type": "application/json"}}


async def _send_json(platform: Platform, method: str, path: str, headers: dict, body: dict) -> httpx.Response:
    raw = _raw_json(body)
    return await _send(platform, method, path, {**headers, **raw["headers_extra"]}, content=raw["content"])


# -- a plain bug ----------------------------------------------------------------------------


async def test_volunteer_skill_filter(platform: Platform):
    headers = await _headers(platform)
    assert_refused(await _send(platform, "GET", "/v1/disaster/volunteers", headers, params={"skill": "x"}), "skill")
    found = await _send(platform, "GET", "/v1/disaster/volunteers", headers, params={"skill": "psychosocial", "limit": 500})
    assert found.status_code == 200, found.text[:500]
    items = found.json()["items"]
    assert items and all("psychosocial" in v["skills"] for v in items), "the demo volunteers include psychosocial support"


# -- NUL characters -------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "param", "value"), [
    ("/v1/registry/persons", "name", "Sit\x00i"),
    ("/v1/registry/persons", "ppks", "lansia\x00"),
    ("/v1/disaster/warehouses", "level", "regency\x00"),
    ("/v1/disaster/warehouses", "regency_code", "35.22\x00"),
])
async def test_nul_in_a_list_filter(platform: Platform, path: str, param: str, value: str):
    response = await _send(platform, "GET", path, await _headers(platform), params={param: value})
    assert_refused(response, param)


async def test_nul_in_registry_programmes(platform: Platform):
    headers = await _headers(platform)
    code = f"NUL_{uuid.uuid4().hex[:6].upper()}"
    created = await _send_json(platform, "POST", "/v1/registry/programmes", headers,
                               {"code": code, "name": "Program \x00 uji", "description": "uji"})
    assert_refused(created, "name")
    existing = (await platform.json("GET", "/v1/registry/programmes", headers=headers))[0]
    replaced = await _send_json(platform, "PUT", f"/v1/registry/programmes/{existing['code']}", headers, {
        "name": existing["name"], "description": "uji \x00", "rules": existing["rules"],
        "amount_per_stage": existing.get("amount_per_stage"), "provincial": existing.get("provincial", False),
        "active": existing.get("active", True), "version": existing["version"]})
    assert_refused(replaced, "description")
    rules = await _send_json(platform, "POST", "/v1/registry/programmes", headers,
                             {"code": code, "name": "Program uji", "rules": {"ppks_any": ["lansia\x00telantar"]}})
    assert_refused(rules, "ppks_any")
    assert (await _send(platform, "GET", f"/v1/registry/programmes/{code}", headers)).status_code == 404, "nothing was created"


async def test_nul_in_disbursement_programmes(platform: Platform):
    headers = await _headers(platform)
    code = f"NUL_{uuid.uuid4().hex[:6].upper()}"
    created = await _send_json(platform, "POST", "/v1/disbursement/programmes", headers, {
        "code": code, "name": "Program \x00 uji", "provincial": False, "exclusive_with": [], "default_channel": "bank"})
    assert_refused(created, "name")
    exclusive = await _send_json(platform, "POST", "/v1/disbursement/programmes", headers, {
        "code": code, "name": "Program uji", "provincial": False, "exclusive_with": ["PKH\x00"], "default_channel": "bank"})
    assert_refused(exclusive, "exclusive_with")
    existing = (await platform.json("GET", "/v1/disbursement/programmes", headers=headers))[0]
    replaced = await _send_json(platform, "PUT", f"/v1/disbursement/programmes/{existing['code']}", headers, {
        "name": existing["name"] + "\x00", "provincial": existing["provincial"], "exclusive_with": existing["exclusive_with"],
        "default_channel": existing["default_channel"], "version": existing["version"]})
    assert_refused(replaced, "name")
    assert (await _send(platform, "GET", f"/v1/disbursement/programmes/{code}", headers)).status_code == 404, "nothing was created"


async def test_nul_in_a_bank_statement(platform: Platform):
    csv = ("value_date,bank_reference,instruction_id,debit,credit,description\n"
           f"{datetime.now(UTC).date().isoformat()},REF-\x00-1,,1000,0,uji\n")
    response = await _send(platform, "POST", "/v1/disbursement/statements", {**await _headers(platform), "Content-Type": "text/csv"},
                           content=csv.encode())
    # The file's field is its line: the service names the line (and the column where it can).
    assert_refused(response, "line 2.bank_reference", "line 2")


async def test_a_bare_carriage_return_in_a_bank_statement(platform: Platform):
    """The CSV reader refuses a lone CR inside an unquoted field (found by the fuzz: a 500)."""
    headers = {**await _headers(platform), "Content-Type": "text/csv"}
    in_header = await _send(platform, "POST", "/v1/disbursement/statements", headers,
                            content=b"value_date,bank_\rreference,instruction_id,debit,credit,description\n")
    assert_refused(in_header, "header", "file", "line 1")
    in_line = await _send(platform, "POST", "/v1/disbursement/statements", headers, content=(
        "value_date,bank_reference,instruction_id,debit,credit,description\n"
        f"{datetime.now(UTC).date().isoformat()},REF-1,,1000,0,uji\rlagi\n").encode())
    assert_refused(in_line, "line 2", "file")


async def test_nul_in_a_webhook_subscription(platform: Platform):
    headers = await _headers(platform)
    types = [t["type"] for t in await platform.json("GET", "/v1/webhooks/event-types", headers=headers)]
    response = await _send_json(platform, "POST", "/v1/webhooks/subscriptions", headers,
                                {"callback_url": "https://siks.example.go.id/pilar/events", "event_types": [types[0] + "\x00"]})
    assert_refused(response, "event_types")
    response = await _send_json(platform, "POST", "/v1/webhooks/subscriptions", headers,
                                {"callback_url": "https://siks.example.go.id/pilar/\x00events", "event_types": types[:1]})
    assert_refused(response, "callback_url")
    response = await _send(platform, "GET", "/v1/webhooks/subscriptions", headers, params={"status": "active\x00"})
    if response.status_code != 200:  # the list's filters, where it has any
        assert_refused(response, "status")


# -- integers beyond PostgreSQL's range -----------------------------------------------------


async def _a_return(platform: Platform, headers: dict, *statuses: str) -> dict:
    returns = (await platform.json("GET", "/v1/homeless-return/returns", headers=headers, params={"limit": 200}))["items"]
    chosen = [r for r in returns if r["status"] in statuses]
    assert chosen, f"the demo data has a return in {statuses}: {[r['status'] for r in returns]}"
    return chosen[0]


async def test_leg_number_beyond_integer(platform: Platform):
    headers = await _headers(platform)
    case = await _a_return(platform, headers, "scheduled", "in_transit", "verified", "in_care", "reported")
    now = datetime.now(UTC).isoformat()
    departure = await _send(platform, "POST", f"/v1/homeless-return/returns/{case['id']}/legs/{BEYOND_INT}/departure",
                            headers, json={"departed_at": now})
    assert_refused(departure, "seq")
    handover = await _send(platform, "POST", f"/v1/homeless-return/returns/{case['id']}/legs/{BEYOND_INT}/handover", headers,
                           json={"handed_over_at": now, "handover_document_no": "BA/001", "received_by": "Petugas"})
    assert_refused(handover, "seq")


async def test_stock_minimum_beyond_bigint(platform: Platform):
    headers = await _headers(platform)
    warehouses = [w for w in await platform.json("GET", "/v1/disaster/warehouses", headers=headers) if w["level"] == "province"]
    warehouse = next((w for w in warehouses if w["code"] == "GDG-PROV-JATIM"), warehouses[0])  # the demo data's
    line = (await platform.json("GET", f"/v1/disaster/warehouses/{warehouse['id']}/stock", headers=headers))[0]
    response = await _send(platform, "PUT", f"/v1/disaster/warehouses/{warehouse['id']}/minimums/{line['item_code']}", headers,
                           json={"minimum": BEYOND_BIGINT})
    assert_refused(response, "minimum")


async def test_round_year_beyond_bigint(platform: Platform):
    headers = await _headers(platform)
    assert_refused(await _send(platform, "GET", "/v1/disbursement/rounds", headers, params={"year": HUGE_YEAR}), "year")
    programme = (await platform.json("GET", "/v1/disbursement/programmes", headers=headers))[0]
    created = await _send(platform, "POST", "/v1/disbursement/rounds", headers, json={
        "programme_code": programme["code"], "year": HUGE_YEAR, "stage": 1, "amount": 100_000, "ceiling": 1_000_000,
        "period_start": "2026-01-01", "period_end": "2026-03-31"})
    assert_refused(created, "year")
    budget = await _send(platform, "PUT", f"/v1/disbursement/programmes/{programme['code']}/budgets/{HUGE_YEAR}", headers,
                         json={"amount": 1_000_000})
    assert_refused(budget, "year")


# -- text PostgreSQL cannot store -------------------------------------------------------------


async def test_lone_surrogate_in_an_unresolved_reason(platform: Platform):
    headers = await _headers(platform)
    case = await _a_return(platform, headers, "reported", "in_care", "verified", "scheduled")
    response = await _send_json(platform, "POST", f"/v1/homeless-return/returns/{case['id']}/unresolved", headers,
                                {"reason": "keluarga tidak ditemukan \ud800 lagi"})
    assert_refused(response, "reason")
    again = await platform.json("GET", f"/v1/homeless-return/returns/{case['id']}", headers=headers)
    assert again["status"] == case["status"], "the return is as it was"


# -- cursors --------------------------------------------------------------------------------


async def test_a_cursor_from_another_list(platform: Platform):
    """Every paged list (an operation with a ``cursor`` parameter), given the cursor another
    list issued: a 200 (the cursor has the same shape) or a 422 naming ``query.cursor``."""
    headers = await _headers(platform)
    doc = (await platform.call("GET", "/v1/openapi.json")).json()
    paged = [path for path, item in doc["paths"].items() if "get" in item and "{" not in path
             and any(p.get("name") == "cursor" and p.get("in") == "query" for p in item["get"].get("parameters", []))
             and not any(p.get("required") for p in item["get"].get("parameters", []))]
    assert len(paged) >= 5, paged
    cursors: dict[str, str] = {}
    readable = []
    for path in paged:
        response = await _send(platform, "GET", path, headers, params={"limit": 1})
        if response.status_code == 200:
            readable.append(path)  # (the shelter's cases are for its staff only)
            if response.json().get("next_cursor"):
                cursors[path] = response.json()["next_cursor"]
    assert len(cursors) >= 3, f"too few lists with a second page to take cursors from: {sorted(cursors)}"
    failures = []
    for path in readable:
        for source, cursor in cursors.items():
            if source == path:
                continue
            response = await _send(platform, "GET", path, headers, params={"cursor": cursor, "limit": 5})
            if response.status_code == 200:
                continue
            try:
                assert_refused(response, "cursor")
            except AssertionError as exc:
                failures.append(f"cursor of {source} on {path}: {exc}")
    assert not failures, "\n".join(failures)
