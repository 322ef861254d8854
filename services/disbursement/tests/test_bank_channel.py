"""Payments through the bank simulator (a separate process) and the post office's files,
against real PostgreSQL and Kafka: failures and retries of the same payment, duplicate and
out-of-order callbacks, refused signatures, stale timestamps and unknown payments,
re-routing to the post office, and reconciliation of the bank's statement."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from disbursement.payments.signing import sign
from disbursement_testkit import (
    BANK,
    BANK_SECRET,
    KEYS,
    PREPARER,
    add_payables,
    approved_round,
    assert_problem,
    new_programme,
    scalar,
)
from pilar_kernel.testing import eventually

pytestmark = pytest.mark.stack

D = "id.go.jatimprov.dinsos.disbursement.payment."
QUIET = {"failure_rate": 0.0, "duplicate_rate": 0.0, "out_of_order": False, "bad_signature_rate": 0.0, "return_rate": 0.0,
         "chunk_size": 500, "report_results": True, "seed": 7}


@pytest.fixture(autouse=True)
async def quiet_bank(banksim):
    await banksim.configure(**QUIET)
    yield


async def start_round(client, n: int, *, amount=900_000, channel="bank") -> tuple[dict, list[uuid.UUID]]:
    code = await new_programme(client)
    people = await add_payables(client.app.state.session_factory, code, n)
    rnd = await approved_round(client, code, amount=amount, ceiling=amount * n, channel=channel)
    r = await client.post(f"/v1/rounds/{rnd['id']}/disburse", headers=PREPARER)
    assert r.status_code == 200, r.text
    return r.json(), people


async def totals(client, rnd) -> dict:
    return (await client.get(f"/v1/rounds/{rnd['id']}/totals", headers=PREPARER)).json()


def settled(client, rnd, **expect):
    async def check():
        t = await totals(client, rnd)
        return t if t["queued_count"] == t["sent_count"] == 0 and all(t[k] == v for k, v in expect.items()) else None

    return check


async def payments_of(client, rnd) -> list[dict]:
    return (await client.get("/v1/payments", params={"round_id": rnd["id"], "limit": 1000}, headers=PREPARER)).json()["items"]


async def callback(client, results: list[dict], *, ts: int | None = None, headers=BANK, body: bytes | None = None, sig=None):
    raw = body if body is not None else json.dumps({"results": results}, default=str).encode()
    signed = sig or sign(BANK_SECRET, raw, ts)
    r = await client.post("/v1/bank/callbacks", content=raw, headers={**headers, **signed, "content-type": "application/json"})
    return r, raw, signed


async def event_counts(client, rnd) -> dict[str, int]:
    rows = await scalar(
        client.app.state.session_factory,
        """
        SELECT json_object_agg(t, n) FROM (
            SELECT replace(o.ce_type, :prefix, '') AS t, count(*) AS n
            FROM outbox o JOIN payment p ON o.message_key = p.id::text WHERE p.round_id = :r GROUP BY 1) x
        """,
        prefix=D, r=rnd["id"],
    )
    return rows or {}


async def test_a_round_is_paid_despite_failures_duplicates_disorder_and_bad_signatures(paying, banksim):
    await banksim.configure(failure_rate=0.25, duplicate_rate=0.6, out_of_order=True, bad_signature_rate=0.4, chunk_size=7)
    before = await banksim.stats()
    rnd, _ = await start_round(paying, 40)
    # One batch of 40: exactly a quarter of the first attempts fail.
    first = await eventually(settled(paying, rnd), timeout=30)
    assert (first["paid_count"], first["failed_count"]) == (30, 10)
    failed = [p for p in await payments_of(paying, rnd) if p["status"] == "failed"]
    assert {p["failure_reason"] for p in failed} <= {"account_not_found", "account_closed", "name_mismatch", "account_dormant"}

    r = await paying.post(f"/v1/rounds/{rnd['id']}/retry-failed", headers=PREPARER)
    assert r.json() == {"queued": 10}
    done = await eventually(settled(paying, rnd, paid_count=40), timeout=30)
    assert (done["failed_count"], done["retried_count"], done["payment_count"]) == (0, 10, 40)
    assert done["paid_amount"] == 40 * 900_000 and done["remaining_budget"] == 0

    # Retries reuse the payment: attempt 1 failed, attempt 2 paid, no second payment.
    retried = (await paying.get(f"/v1/payments/{failed[0]['id']}", headers=PREPARER)).json()
    assert [(a["attempt"], a["outcome"]) for a in retried["attempts"]] == [(1, "failed"), (2, "succeeded")]
    assert (retried["status"], retried["attempt"]) == ("succeeded", 2)
    # The noise reached us and changed nothing: every event once per real change.
    after = await banksim.stats()
    assert after.get("bad_signatures_sent", 0) > before.get("bad_signatures_sent", 0)
    assert after["callback_responses"].get("401", 0) >= after["bad_signatures_sent"]
    assert after.get("duplicates_sent", 0) > before.get("duplicates_sent", 0)
    assert await event_counts(paying, rnd) == {"sent.v1": 50, "succeeded.v1": 40, "failed.v1": 10}
    assert await scalar(paying.app.state.session_factory,
                        "SELECT count(*) FROM payment_attempt a JOIN payment p ON p.id = a.payment_id WHERE p.round_id = :r AND anomaly IS NOT NULL",
                        r=rnd["id"]) == 0


async def test_callbacks_are_refused_for_bad_signatures_stale_timestamps_and_unknown_payments(paying, banksim):
    await banksim.configure(report_results=False)  # the bank takes the batch and stays silent: we speak for it
    rnd, _ = await start_round(paying, 3)
    await eventually(_all_sent(paying, rnd), timeout=20)
    p1, p2, p3 = [p["id"] for p in await payments_of(paying, rnd)]
    paid = [{"payment_id": p1, "attempt": 1, "status": "succeeded", "reference": "BNI-0001"}]

    r, raw, signed = await callback(paying, paid, sig={"X-Signature": "sha256=" + "0" * 64, "X-Signature-Timestamp": str(int(time.time()))})
    assert assert_problem(r, 401)["type"].endswith("/bad-signature")
    _, raw, signed = await callback(paying, [], body=b'{"results": []}')  # any signed body, reused below
    r, _, _ = await callback(paying, paid, sig=signed)  # a signature of another body
    assert assert_problem(r, 401)["type"].endswith("/bad-signature")
    for skew in (-3600, 3600):
        r, _, _ = await callback(paying, paid, ts=int(time.time()) + skew)
        assert assert_problem(r, 401)["type"].endswith("/stale-signature")
    r, _, _ = await callback(paying, paid, headers={})
    assert_problem(r, 401)
    r, _, _ = await callback(paying, paid, headers=KEYS.headers("disbursement:read", subject="bank-jatim"))
    assert_problem(r, 403)
    # An unknown payment, or an attempt never sent, refuses the whole callback: nothing applied.
    r, _, _ = await callback(paying, paid + [{"payment_id": str(uuid.uuid4()), "attempt": 1, "status": "succeeded"}])
    assert assert_problem(r, 422, "payment.unknown")["type"].endswith("/unknown-payment")
    r, _, _ = await callback(paying, paid + [{"payment_id": p2, "attempt": 2, "status": "succeeded"}])
    assert_problem(r, 422, "payment.unknown_attempt")
    assert {p["status"] for p in await payments_of(paying, rnd)} == {"sent"}

    r, raw, signed = await callback(paying, paid)
    assert r.status_code == 200 and r.json()["applied"] == 1, r.text
    # The very same message again, and the same result signed afresh: both change nothing.
    r, _, _ = await callback(paying, [], body=raw, sig=signed)
    assert r.json()["duplicate_delivery"] is True
    r, _, _ = await callback(paying, paid, ts=int(time.time()) - 5)
    assert (r.json()["applied"], r.json()["duplicates"], r.json()["duplicate_delivery"]) == (0, 1, False)
    # Out of order: the return arrives before the success it implies; the success is then a repeat.
    returned = {"payment_id": p2, "attempt": 1, "status": "returned", "reason": "account_closed", "returned_amount": 900_000}
    assert (await callback(paying, [returned]))[0].json()["applied"] == 1
    assert (await callback(paying, [{"payment_id": p2, "attempt": 1, "status": "succeeded"}]))[0].json()["duplicates"] == 1
    # A failure reported after the success is kept for people to look at, never applied.
    r, _, _ = await callback(paying, [{"payment_id": p1, "attempt": 1, "status": "failed", "reason": "account_closed"}])
    assert r.json()["anomalies"] == 1
    p1_now = (await paying.get(f"/v1/payments/{p1}", headers=PREPARER)).json()
    assert p1_now["status"] == "succeeded" and "failure reported after" in p1_now["attempts"][0]["anomaly"]

    # A failure, a retry (attempt 2 goes out), then a late repeat of attempt 1's failure: stale.
    fail = {"payment_id": p3, "attempt": 1, "status": "failed", "reason": "account_dormant"}
    assert (await callback(paying, [fail]))[0].json()["applied"] == 1
    assert (await paying.post(f"/v1/payments/{p3}/retry", headers=PREPARER)).json()["status"] in ("created", "sent")
    await eventually(_all_sent(paying, rnd, only=p3), timeout=20)
    assert (await callback(paying, [fail], ts=int(time.time()) - 5))[0].json()["stale"] == 1
    assert (await callback(paying, [{"payment_id": p3, "attempt": 2, "status": "succeeded"}]))[0].json()["applied"] == 1

    final = {p["id"]: (p["status"], p["attempt"]) for p in await payments_of(paying, rnd)}
    assert final == {p1: ("succeeded", 1), p2: ("returned", 1), p3: ("succeeded", 2)}
    assert await event_counts(paying, rnd) == {"sent.v1": 4, "succeeded.v1": 3, "returned.v1": 1, "failed.v1": 1}


def _all_sent(client, rnd, only=None):
    async def check():
        payments = [p for p in await payments_of(client, rnd) if only is None or p["id"] == only]
        return all(p["status"] == "sent" for p in payments)

    return check


async def test_a_failed_bank_payment_is_re_routed_to_the_post_office(paying, banksim):
    await banksim.configure(failure_rate=1.0)
    rnd, _ = await start_round(paying, 2, amount=1_325_900)
    await eventually(settled(paying, rnd, failed_count=2), timeout=20)
    one, other = [p["id"] for p in await payments_of(paying, rnd)]
    r = await paying.post(f"/v1/payments/{one}/retry", json={"channel": "post"}, headers=PREPARER)
    assert (r.json()["status"], r.json()["channel"], r.json()["attempt"]) == ("created", "post", 1)
    r = await paying.post(f"/v1/payments/{one}/retry", json={"channel": "post"}, headers=PREPARER)
    assert r.json()["status"] == "created"  # a repeat changes nothing
    r = await paying.post(f"/v1/rounds/{rnd['id']}/post-exports", headers=PREPARER)
    assert r.status_code == 201, r.text
    export = r.json()
    assert (export["instruction_count"], export["total_amount"]) == (1, 1_325_900)
    file = (await paying.get(f"/v1/post-exports/{export['id']}/file", headers=PREPARER)).text
    header, line = file.strip().split("\n")
    assert header.startswith("instruction_id,payment_id,attempt") and line.startswith(f"{one}:2,{one},2,")
    assert_problem(await paying.post(f"/v1/rounds/{rnd['id']}/post-exports", headers=PREPARER), 409)

    bad = f"instruction_id,status,reason\n{other}:1,succeeded,\n{one}:2,paid,\n"
    body = assert_problem(await paying.post(f"/v1/post-exports/{export['id']}/results", content=bad, headers=PREPARER), 422)
    assert {e["field"] for e in body["errors"]} == {"line 3.status"}
    bad = f"instruction_id,status,reason\n{other}:1,succeeded,\n"
    body = assert_problem(await paying.post(f"/v1/post-exports/{export['id']}/results", content=bad, headers=PREPARER), 422)
    assert body["errors"][0]["rule"] == "result_file.instruction"
    good = f"instruction_id,status,reason,reference,reported_at\n{one}:2,succeeded,,POS-77,2026-05-02T10:00:00+07:00\n"
    r = await paying.post(f"/v1/post-exports/{export['id']}/results", content=good, headers=PREPARER)
    assert (r.json()["applied"], r.json()["lines"]) == (1, 1), r.text
    r = await paying.post(f"/v1/post-exports/{export['id']}/results", content=good, headers=PREPARER)
    assert (r.json()["applied"], r.json()["duplicates"]) == (0, 1)
    paid = (await paying.get(f"/v1/payments/{one}", headers=PREPARER)).json()
    assert (paid["status"], paid["channel"], paid["bank_reference"]) == ("succeeded", "post", "POS-77")
    assert [a["channel"] for a in paid["attempts"]] == ["bank", "post"]
    # The bank cannot report on what went to the post office.
    r, _, _ = await callback(paying, [{"payment_id": one, "attempt": 2, "status": "failed", "reason": "x"}])
    assert_problem(r, 422, "payment.unknown_attempt")
    # Give up on the other one and close the round: the budget it held comes back.
    r = await paying.post(f"/v1/payments/{other}/cancel", json={"reason": "beneficiary moved abroad"}, headers=PREPARER)
    assert r.json()["status"] == "cancelled"
    closed = (await paying.post(f"/v1/rounds/{rnd['id']}/close", headers=PREPARER)).json()
    assert (closed["status"], closed["committed"]) == ("closed", 1_325_900)


async def test_the_bank_statement_is_reconciled_line_by_line(paying, banksim):
    await banksim.configure(return_rate=0.3)
    rnd, _ = await start_round(paying, 10, amount=500_000)
    await eventually(settled(paying, rnd, paid_count=10), timeout=20)
    await eventually(lambda: _returns_settled(paying, banksim), timeout=20)
    sf = paying.app.state.session_factory
    payments = {p["id"]: p for p in await payments_of(paying, rnd)}
    returned_by_bank = {i for i, p in payments.items() if p["status"] == "returned"}
    assert returned_by_bank  # seeded: some come back

    statement = (await banksim.statement()).strip().split("\n")
    mine = [line for line in statement[1:] if line.split(",")[2].split(":")[0] in payments]
    debits = [line for line in mine if line.split(",")[3]]
    # Tamper: one debit with the wrong amount, an unknown line, a repeated line, and a return the bank never called back about.
    wrong = debits[0].split(",")
    wrong[3] = str(int(wrong[3]) + 1000)
    quiet_return = next(i for i in payments if i not in returned_by_bank and i != wrong[2].split(":")[0])
    extra = [",".join(wrong), f"2026-05-03,BSIM-X,{uuid.uuid4()}:1,500000,,stray", debits[1],
             f"2026-05-04,,{quiet_return}:1,,500000,RETUR"]
    content = "\n".join([statement[0]] + [line for line in mine if line != debits[0]] + extra) + "\n"
    r = await paying.post("/v1/statements", params={"account": "RKUD 0011-01-000123-30-5"}, content=content, headers=PREPARER)
    assert r.status_code == 201, r.text
    report = r.json()
    assert (report["amount_mismatch"], report["unmatched"], report["duplicate"], report["status_mismatch"]) == (1, 1, 1, 0)
    assert report["matched"] == 9 + len(returned_by_bank) + 1  # debits, the bank's returns, the quiet return
    lines = (await paying.get(f"/v1/statements/{report['id']}/lines", params={"outcome": "amount_mismatch"}, headers=PREPARER)).json()
    assert lines["items"][0]["expected_amount"] == 500_000 and "501,000" in lines["items"][0]["note"].replace("Rp", "")
    # The same file again is the same statement.
    again = await paying.post("/v1/statements", params={"account": "RKUD 0011-01-000123-30-5"}, content=content, headers=PREPARER)
    assert again.json()["id"] == report["id"]
    t = await totals(paying, rnd)
    assert (t["paid_count"], t["returned_count"], t["reconciled_count"]) == (10, len(returned_by_bank) + 1, 9)
    assert t["net_paid_amount"] == t["paid_amount"] - t["returned_amount"]
    assert (await paying.get(f"/v1/payments/{quiet_return}", headers=PREPARER)).json()["return_reason"] == "returned per bank statement"
    assert await scalar(sf, "SELECT count(*) FROM outbox WHERE message_key = :p AND ce_type LIKE '%returned.v1'", p=quiet_return) == 1
    bad = "value_date,bank_reference,instruction_id,debit,credit\n2026-13-01,x,y,100,\n,,z,100,100\n"
    body = assert_problem(await paying.post("/v1/statements", content=bad, headers=PREPARER), 422)
    assert {e["field"] for e in body["errors"]} == {"line 2.value_date", "line 3.debit"}


async def _returns_settled(client, banksim) -> bool:
    return (await banksim.stats())["busy_tasks"] == 0
