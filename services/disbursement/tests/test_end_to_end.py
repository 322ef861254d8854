"""THE END-TO-END TEST of payment rounds: register → enrol → approve in the registry → the
population reaches disbursement over Kafka → round → snapshot → approval → payment through
the bank simulator (failures, retries, duplicate and out-of-order callbacks, broken
signatures) → the aid history shows in the registry.

Both services run in this process, each on its own PostgreSQL database, sharing the real
Kafka; the bank simulator is its own process. Nothing is written into either database by
hand: every step goes through the services' APIs and events.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import date, timedelta

import pytest

from disbursement.payments.signing import sign
from disbursement_testkit import (
    ADMIN,
    APPROVER,
    BANK,
    BANK_SECRET,
    KEYS,
    PREPARER,
    REGISTRY_DIR,
    assert_problem,
    migrate,
    write_jwks,
)
from pilar_kernel.nik import make_nik
from pilar_kernel.testing import assert_runs, eventually, running_app

pytestmark = pytest.mark.stack

_REG = ("registry:read", "registry:write", "registry:verify")
OFFICER_A = KEYS.headers(*_REG, region="35.15", subject="dinsos-sidoarjo", user="officer-a")
OFFICER_B = KEYS.headers(*_REG, region="35.15", subject="dinsos-sidoarjo", user="officer-b")
REG_APPROVER = KEYS.headers("registry:read", "registry:approve", subject="dinsos-jatim", user="kabid-linjamsos")
REG_ADMIN = KEYS.headers("registry:read", "registry:programme-admin", subject="dinsos-jatim", user="admin-1")
SIDOARJO_VILLAGE = "35.15.14.2001"


@pytest.fixture(scope="module")
async def registry(new_database, kafka_bootstrap, tmp_path_factory):
    """The registry in-process on its own database, with its aid-history route and consumer
    (wired here while ``registry.app`` does not include them yet)."""
    from registry.aid.events import aid
    from registry.app import create_app
    from registry.settings import Settings

    url = new_database("registry")
    migrate(url, REGISTRY_DIR)
    settings = Settings(env="test", database_url=url, kafka_bootstrap=kafka_bootstrap, jwks_file=write_jwks(tmp_path_factory.mktemp("rkeys")),
                        relay_poll_interval_s=0.2)
    app = create_app(settings)
    async with running_app(app) as client:
        assert_runs(app, aid.name)
        client.app = app
        yield client


async def _ok(response, status=200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


async def test_register_enrol_approve_round_pay_and_the_aid_history(registry, paying, banksim):
    code = f"E2E_{uuid.uuid4().hex[:8].upper()}"  # a programme of this test alone: no other test's enrolments mix in
    await _ok(await registry.post("/v1/programmes", json={"name": "Bantuan uji ujung ke ujung", "rules": {"max_decile": 4},
                                                          "amount_per_stage": 750_000, "code": code}, headers=REG_ADMIN), 201)
    await _ok(await paying.post("/v1/programmes", json={"code": code, "name": "Bantuan uji ujung ke ujung"}, headers=ADMIN), 201)
    today = date.today()
    await _ok(await paying.put(f"/v1/programmes/{code}/budgets/{today.year}", json={"amount": 100_000_000}, headers=ADMIN))

    # Registry: register six persons; propose, verify and approve each enrolment (three officers).
    people = []
    for serial in range(6):
        born = date(1948, 5, 17)
        person = await _ok(await registry.post("/v1/persons", json={
            "nik": make_nik("35.15.14", born, "M", 7000 + serial), "name": f"Warga Uji {serial}", "birth_date": born.isoformat(), "sex": "M",
            "village_code": SIDOARJO_VILLAGE, "decile": 1, "decile_date": "2026-01-01"}, headers=OFFICER_A), 201)
        enrolment = await _ok(await registry.post("/v1/enrolments", json={"person_id": person["id"], "programme_code": code},
                                                  headers=OFFICER_A), 201)
        await _ok(await registry.post(f"/v1/enrolments/{enrolment['id']}/verify", headers=OFFICER_B))
        await _ok(await registry.post(f"/v1/enrolments/{enrolment['id']}/approve", headers=REG_APPROVER))  # payable from today
        people.append(person)
    # One of them dies before the round: the registry ends the enrolment and tells everyone.
    dead = people[-1]
    await _ok(await registry.post(f"/v1/persons/{dead['id']}/death", json={"date_of_death": today.isoformat(), "version": dead["version"]},
                                  headers=OFFICER_A))

    async def population_arrived():
        r = await paying.get("/v1/population/enrolments", params={"programme_code": code}, headers=PREPARER)
        items = r.json()["items"]
        dead_known = (await paying.get(f"/v1/population/persons/{dead['id']}", headers=PREPARER)).json().get("status") == "deceased"
        return len(items) == 6 and dead_known

    await eventually(population_arrived, timeout=30)

    # Disbursement: a round for five payees; snapshot, approval by another officer, payment.
    rnd = await _ok(await paying.post("/v1/rounds", json={"programme_code": code, "year": today.year, "stage": 1, "amount": 750_000,
                                                          "ceiling": 5 * 750_000, "period_start": today.isoformat(),
                                                          "period_end": (today + timedelta(days=60)).isoformat()}, headers=PREPARER), 201)
    rnd = await _ok(await paying.post(f"/v1/rounds/{rnd['id']}/snapshot", headers=PREPARER))
    summary = await _ok(await paying.get(f"/v1/rounds/{rnd['id']}/snapshot", headers=PREPARER))
    assert (summary["payees"], summary["excluded"]) == (5, {"deceased": 1})
    await _ok(await paying.post(f"/v1/rounds/{rnd['id']}/approve", json={"sk_number": "188/450/KPTS/013/2026",
                                                                         "snapshot_version": rnd["snapshot_version"]}, headers=APPROVER))
    # A noisy bank: 40% of first attempts fail, callbacks come twice, shuffled, some first with a broken signature.
    await banksim.configure(failure_rate=0.4, duplicate_rate=0.5, out_of_order=True, bad_signature_rate=0.5, chunk_size=2, return_rate=0.0,
                            report_results=True, seed=11)
    await _ok(await paying.post(f"/v1/rounds/{rnd['id']}/disburse", headers=PREPARER))

    async def totals(**expect):
        t = await _ok(await paying.get(f"/v1/rounds/{rnd['id']}/totals", headers=PREPARER))
        return t if t["queued_count"] == t["sent_count"] == 0 and all(t[k] == v for k, v in expect.items()) else None

    first = await eventually(lambda: totals(), timeout=30)
    assert (first["paid_count"], first["failed_count"]) == (3, 2)
    # Someone forging a callback without the bank's key is turned away.
    failed_id = next(p["id"] for p in (await paying.get("/v1/payments", params={"round_id": rnd["id"], "status": "failed"}, headers=PREPARER)).json()["items"])
    forged = json.dumps({"results": [{"payment_id": failed_id, "attempt": 1, "status": "succeeded"}]}).encode()
    r = await paying.post("/v1/bank/callbacks", content=forged, headers={**BANK, **sign("not-the-bank-secret", forged), "content-type": "application/json"})
    assert assert_problem(r, 401)["type"].endswith("/bad-signature")
    assert (await banksim.stats())["callback_responses"].get("401", 0) >= 1  # the simulator's broken signatures were refused too

    # Retry the failures: the same payments, attempt 2; the bank pays them.
    await _ok(await paying.post(f"/v1/rounds/{rnd['id']}/retry-failed", headers=PREPARER))
    done = await eventually(lambda: totals(paid_count=5), timeout=30)
    assert (done["payment_count"], done["retried_count"], done["paid_amount"], done["remaining_budget"]) == (5, 2, 3_750_000, 0)
    # A late duplicate of the first failure (signed afresh by the bank) changes nothing.
    late = json.dumps({"results": [{"payment_id": failed_id, "attempt": 1, "status": "failed", "reason": "account_dormant"}]}).encode()
    r = await paying.post("/v1/bank/callbacks", content=late, headers={**BANK, **sign(BANK_SECRET, late, int(time.time()) - 3),
                                                                       "content-type": "application/json"})
    assert r.json()["stale"] == 1

    # The registry: each payee's aid history shows the payment, succeeded; the deceased has none.
    async def aid_history_complete():
        histories = {}
        for person in people:
            r = await registry.get(f"/v1/persons/{person['id']}/aid-history", headers=OFFICER_A)
            histories[person["id"]] = r.json()["items"]
        return histories if all(h and h[0]["status"] == "succeeded" for p, h in histories.items() if p != dead["id"]) else None

    histories = await eventually(aid_history_complete, timeout=30)
    assert histories[dead["id"]] == []
    for person in people[:-1]:
        (item,) = histories[person["id"]]
        assert (item["programme_code"], item["year"], item["stage"], item["amount"], item["round_id"]) == (code, today.year, 1, 750_000, rnd["id"])
    assert sorted(h[0]["attempt"] for p, h in histories.items() if h) == [1, 1, 1, 2, 2]
    # A regency office elsewhere sees none of it.
    elsewhere = KEYS.headers("registry:read", region="35.78", subject="dinsos-surabaya")
    assert (await registry.get(f"/v1/persons/{people[0]['id']}/aid-history", headers=elsewhere)).status_code == 404

    closed = await _ok(await paying.post(f"/v1/rounds/{rnd['id']}/close", headers=PREPARER))
    assert (closed["status"], closed["committed"]) == ("closed", 3_750_000)
