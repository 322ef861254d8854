"""Payments whose outcome is unknown (issue 12, item 8): the bank paid or failed them, but its
callbacks never arrived (this service was down longer than the bank's retries). Each path
that resolves them, against real PostgreSQL and Kafka and the bank simulator as a process:
the status checker asks the bank; the bank's statement settles them; officers settle them by
hand under four eyes. Then the round closes with the books equal to the bank's, and a late
callback racing any of them counts nothing twice."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from disbursement_testkit import (
    APPROVER,
    BANK_SECRET,
    KEYS,
    PREPARER,
    assert_problem,
    free_port,
    migrate,
    serve,
    write_jwks,
)
from pilar_kernel.testing import eventually
from test_bank_channel import QUIET, callback, event_counts, payments_of, start_round, totals

pytestmark = pytest.mark.stack

# The proposer again, with the approve scope and her id in capitals: still the same officer.
PROPOSER_SHOUTING = KEYS.headers("disbursement:read", "disbursement:approve", subject="dinsos-jatim", user="OFFICER-A")


@pytest.fixture(autouse=True)
async def quiet_bank(banksim):
    await banksim.configure(**QUIET, deliver_callbacks=True, statement_failures=True)
    yield
    await banksim.configure(deliver_callbacks=True, callback_attempts=8, latency_ms_min=5, latency_ms_max=30)


def _settings(url: str, kafka_bootstrap: str, jwks: str, banksim, port: int, **overrides):
    from disbursement.settings import Settings

    return Settings(env="test", database_url=url, kafka_bootstrap=kafka_bootstrap, jwks_file=jwks, relay_poll_interval_s=0.2,
                    bank_hmac_secret=BANK_SECRET, bank_url=banksim.url, bank_callback_url=f"http://127.0.0.1:{port}/v1/bank/callbacks",
                    bank_batch_size=50, bank_idle_poll_s=0.1, **overrides)


CHECK_SOON = {"bank_status_after_s": 1.0, "bank_status_interval_s": 0.5, "bank_status_poll_s": 0.2}


@pytest.fixture(scope="module")
async def checking(new_database, kafka_bootstrap, tmp_path_factory, banksim):
    """A disbursement service whose status checker asks the bank after one second."""
    from disbursement.app import create_app

    url = new_database("disbursement")
    migrate(url)
    port = free_port()
    app = create_app(_settings(url, kafka_bootstrap, write_jwks(tmp_path_factory.mktemp("keys")), banksim, port, **CHECK_SOON))
    async with serve(app, port) as client:
        client.app = app
        yield client


async def _bank_done(banksim, lost_before: int, batches: int = 1):
    async def check():
        stats = await banksim.stats()
        return stats if stats.get("callbacks_lost", 0) >= lost_before + batches and stats["busy_tasks"] == 0 else None

    return await eventually(check, timeout=30)


async def _lost_round(client, banksim, n: int, failure_rate: float):
    """A round paid by a bank whose callbacks never arrive: every payment stays sent."""
    lost = (await banksim.stats()).get("callbacks_lost", 0)
    await banksim.configure(deliver_callbacks=False, failure_rate=failure_rate)
    rnd, _ = await start_round(client, n)
    await _bank_done(banksim, lost)
    return rnd


def _mine(statement: str, payments: list[dict]) -> list[str]:
    ids = {p["id"] for p in payments}
    header, *lines = statement.strip().split("\n")
    return [header] + [line for line in lines if line.split(",")[2].split(":")[0] in ids]


def _bank_debits(statement_lines: list[str]) -> int:
    return sum(1 for line in statement_lines[1:] if line.split(",")[3])


async def test_the_status_checker_settles_what_the_bank_did_and_the_round_closes(checking, banksim):
    # Ten payments, seven paid and three failed by the bank, no callback ever arrives.
    rnd = await _lost_round(checking, banksim, 10, failure_rate=0.3)
    before = await banksim.stats()
    # The checker asks the bank after its timeout and applies the answers.
    t = await eventually(lambda: _settled(checking, rnd, paid_count=7, failed_count=3), timeout=30)
    assert t["sent_count"] == 0
    assert (await banksim.stats())["status_queries"] > before.get("status_queries", 0)
    metrics = (await checking.get("/metrics")).text
    assert 'pilar_disbursement_bank_status_answers_total{answer="succeeded"}' in metrics
    assert "pilar_disbursement_unknown_outcome_payments" in metrics
    payments = await payments_of(checking, rnd)
    paid = next(p for p in payments if p["status"] == "succeeded")
    detail = (await checking.get(f"/v1/payments/{paid['id']}", headers=PREPARER)).json()
    assert detail["attempts"][0]["status_checks"] >= 1 and "answered succeeded" in detail["attempts"][0]["status_note"]
    assert detail["bank_reference"].startswith("BSIM")

    # A late callback for what the checker settled changes nothing: nobody is paid twice.
    r, _, _ = await callback(checking, [{"payment_id": paid["id"], "attempt": 1, "status": "succeeded", "reference": detail["bank_reference"]}])
    assert (r.json()["applied"], r.json()["duplicates"]) == (0, 1), r.text

    # The failed ones are retried (the bank still sends no callback: the checker settles them too).
    assert (await checking.post(f"/v1/rounds/{rnd['id']}/retry-failed", headers=PREPARER)).json() == {"queued": 3}
    await eventually(lambda: _settled(checking, rnd, paid_count=10), timeout=30)
    closed = await checking.post(f"/v1/rounds/{rnd['id']}/close", headers=PREPARER)
    assert closed.status_code == 200 and closed.json()["status"] == "closed", closed.text

    # The books agree with the bank: as many paid here as the bank debited, each event once.
    statement = _mine(await banksim.statement(), payments)
    assert _bank_debits(statement) == 10
    report = (await checking.post("/v1/statements", content="\n".join(statement) + "\n", headers=PREPARER)).json()
    assert (report["matched"], report["status_mismatch"], report["amount_mismatch"], report["unmatched"]) == (13, 0, 0, 0), report
    t = await totals(checking, rnd)
    assert (t["paid_count"], t["reconciled_count"], t["failed_count"], t["cancelled_count"]) == (10, 10, 0, 0)
    assert await event_counts(checking, rnd) == {"sent.v1": 13, "succeeded.v1": 10, "failed.v1": 3}


async def _settled(client, rnd, **expect):
    t = await totals(client, rnd)
    return t if t["sent_count"] == t["queued_count"] == 0 and all(t[k] == v for k, v in expect.items()) else None


async def test_the_statement_settles_sent_payments_debits_as_paid_failures_as_retryable(paying, banksim):
    rnd = await _lost_round(paying, banksim, 10, failure_rate=0.3)
    t = await totals(paying, rnd)
    assert t["sent_count"] == 10
    assert_problem(await paying.post(f"/v1/rounds/{rnd['id']}/close", headers=PREPARER), 409)
    payments = await payments_of(paying, rnd)
    statement = _mine(await banksim.statement(), payments)
    assert _bank_debits(statement) == 7 and len(statement) == 11  # seven debits, three failed lines

    r = await paying.post("/v1/statements", content="\n".join(statement) + "\n", headers=PREPARER)
    assert r.status_code == 201, r.text
    assert (r.json()["matched"], r.json()["status_mismatch"]) == (10, 0), r.text
    lines = (await paying.get(f"/v1/statements/{r.json()['id']}/lines", headers=PREPARER)).json()["items"]
    assert sorted(line["note"] for line in lines) == ["settled as failed from the statement: the payment can be retried"] * 3 + [
        "settled as paid from the statement"] * 7
    t = await totals(paying, rnd)
    assert (t["paid_count"], t["failed_count"], t["sent_count"], t["reconciled_count"]) == (7, 3, 0, 7)

    # Failed per the statement: retried, paid (callbacks still lost), settled by the next statement.
    lost = (await banksim.stats()).get("callbacks_lost", 0)
    assert (await paying.post(f"/v1/rounds/{rnd['id']}/retry-failed", headers=PREPARER)).json() == {"queued": 3}
    await _bank_done(banksim, lost)
    statement = _mine(await banksim.statement(), payments)
    r = await paying.post("/v1/statements", content="\n".join(statement) + "\n", headers=PREPARER)
    report = r.json()
    # The seven debits seen before are duplicates, the three failures agree, the three new debits settle.
    assert (report["duplicate"], report["matched"], report["status_mismatch"]) == (7, 6, 0), report
    closed = await paying.post(f"/v1/rounds/{rnd['id']}/close", headers=PREPARER)
    assert closed.status_code == 200, closed.text
    t = await totals(paying, rnd)
    assert (t["paid_count"], t["reconciled_count"]) == (10, 10) == (_bank_debits(statement), 10)
    assert await event_counts(paying, rnd) == {"sent.v1": 13, "succeeded.v1": 10, "failed.v1": 3}


async def test_officers_settle_by_hand_under_four_eyes_and_a_late_callback_counts_once(paying, banksim):
    await banksim.configure(report_results=False)  # the bank takes the batch and never says anything
    rnd, _ = await start_round(paying, 3)
    await eventually(lambda: _all_sent(paying, rnd), timeout=20)
    p1, p2, p3 = [p["id"] for p in await payments_of(paying, rnd)]
    assert_problem(await paying.post(f"/v1/rounds/{rnd['id']}/close", headers=PREPARER), 409)

    # Proposed by one officer with a reason (retried with its key: the first answer again).
    body = {"outcome": "succeeded", "reason": "bank letter 12/BJ/2026 confirms the transfer", "bank_reference": "BJ-778"}
    key = {"Idempotency-Key": f"settle-{p1}"}
    r = await paying.post(f"/v1/payments/{p1}/settlements", json=body, headers={**PREPARER, **key})
    assert r.status_code == 201, r.text
    proposal = r.json()
    assert (proposal["status"], proposal["proposed_by"], proposal["attempt"]) == ("proposed", "officer-a", 1)
    again = await paying.post(f"/v1/payments/{p1}/settlements", json=body, headers={**PREPARER, **key})
    assert again.status_code == 201 and again.json()["id"] == proposal["id"] and again.headers["Idempotent-Replayed"] == "true"
    assert_problem(await paying.post(f"/v1/payments/{p1}/settlements", json=body, headers=PREPARER), 409)  # one open proposal
    assert_problem(await paying.post(f"/v1/payments/{p1}/settlements", json={**body, "reason": "short"}, headers=PREPARER), 422)
    assert (await paying.get(f"/v1/payments/{p1}", headers=PREPARER)).json()["status"] == "sent"  # nothing applied yet

    # Not approved by the proposer, whatever the letter case; not by a preparer.
    approve_url = f"/v1/payments/{p1}/settlements/{proposal['id']}/approve"
    assert_problem(await paying.post(approve_url, headers=PROPOSER_SHOUTING), 403, "settlement.four_eyes")
    assert_problem(await paying.post(approve_url, headers=PREPARER), 403)
    r = await paying.post(approve_url, json={"note": "letter checked"}, headers=APPROVER)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["decided_by"], r.json()["result"]) == ("applied", "kabid-linjamsos", "payment succeeded")
    paid = (await paying.get(f"/v1/payments/{p1}", headers=PREPARER)).json()
    assert (paid["status"], paid["bank_reference"]) == ("succeeded", "BJ-778")
    assert paid["attempts"][0]["reason"].startswith("settled by hand: bank letter")
    assert (await paying.post(approve_url, headers=APPROVER)).json()["status"] == "applied"  # the same approval again
    # The bank's late callback for it is a repeat.
    r, _, _ = await callback(paying, [{"payment_id": p1, "attempt": 1, "status": "succeeded", "reference": "BJ-778"}])
    assert (r.json()["applied"], r.json()["duplicates"]) == (0, 1)

    # A settlement racing a late callback: the callback lands first, the approval then changes nothing.
    r = await paying.post(f"/v1/payments/{p2}/settlements", json={"outcome": "failed", "reason": "the bank says the account is closed"},
                          headers=PREPARER)
    race = r.json()
    r, _, _ = await callback(paying, [{"payment_id": p2, "attempt": 1, "status": "succeeded", "reference": "BJ-779"}])
    assert r.json()["applied"] == 1
    r = await paying.post(f"/v1/payments/{p2}/settlements/{race['id']}/approve", headers=APPROVER)
    assert (r.json()["status"], r.json()["result"]) == ("superseded", "nothing changed: the payment was meanwhile succeeded (attempt 1)")
    assert (await paying.get(f"/v1/payments/{p2}", headers=PREPARER)).json()["status"] == "succeeded"

    # Withdrawn by its proposer, proposed again as failed, approved: retryable, or cancelled.
    r = await paying.post(f"/v1/payments/{p3}/settlements", json={"outcome": "succeeded", "reason": "wrong guess, to be withdrawn"},
                          headers=PREPARER)
    wrong = r.json()
    r = await paying.post(f"/v1/payments/{p3}/settlements/{wrong['id']}/reject", json={"note": "proposed by mistake"}, headers=PREPARER)
    assert (r.json()["status"], r.json()["decided_by"]) == ("rejected", "officer-a")
    r = await paying.post(f"/v1/payments/{p3}/settlements", json={"outcome": "failed", "reason": "bank letter: account dormant"},
                          headers=PREPARER)
    r = await paying.post(f"/v1/payments/{p3}/settlements/{r.json()['id']}/approve", headers=APPROVER)
    assert r.json()["status"] == "applied"
    assert (await paying.get(f"/v1/payments/{p3}", headers=PREPARER)).json()["status"] == "failed"
    history = (await paying.get(f"/v1/payments/{p3}/settlements", headers=PREPARER)).json()
    assert [s["status"] for s in history] == ["rejected", "applied"]
    queue = (await paying.get("/v1/payment-settlements", params={"status": "proposed"}, headers=PREPARER)).json()
    assert all(s["payment_id"] not in (p1, p2, p3) for s in queue)
    assert_problem(await paying.post(f"/v1/payments/{p3}/settlements", json=body, headers=PREPARER), 409)  # no longer unknown

    closed = await paying.post(f"/v1/rounds/{rnd['id']}/close", headers=PREPARER)  # the failed one is cancelled
    assert closed.status_code == 200, closed.text
    assert await event_counts(paying, rnd) == {"sent.v1": 3, "succeeded.v1": 2, "failed.v1": 1, "cancelled.v1": 1}


async def _all_sent(client, rnd):
    return all(p["status"] == "sent" for p in await payments_of(client, rnd))


async def test_the_bank_answers_status_queries_only_when_signed(banksim):
    from disbursement.payments.signing import sign, verify

    body = json.dumps({"instructions": ["00000000-0000-0000-0000-000000000001:1"]}).encode()
    async with httpx.AsyncClient() as client:
        r = await client.post(banksim.url + "/v1/status-queries", content=body)
        assert r.status_code == 401
        r = await client.post(banksim.url + "/v1/status-queries", content=body, headers=sign(BANK_SECRET, body))
    assert r.status_code == 200
    verify(BANK_SECRET, r.content, r.headers, tolerance_s=300)  # the answer is the bank's
    assert r.json()["results"][0]["status"] == "unknown"
    assert int(r.headers["X-Signature-Timestamp"]) <= time.time() + 1


async def test_disbursement_down_longer_than_the_banks_callback_retries_then_the_round_settles_and_closes(
        new_database, kafka_bootstrap, tmp_path_factory, banksim):
    """The case of the issue: the service stops right after handing the round to the bank and
    stays down until the bank gives up its callbacks; started again, it finds out and closes."""
    from disbursement.app import create_app

    url = new_database("disbursement")
    migrate(url)
    port, jwks = free_port(), write_jwks(tmp_path_factory.mktemp("keys"))
    await banksim.configure(failure_rate=0.3, callback_attempts=2, latency_ms_min=1500, latency_ms_max=1500)
    before = await banksim.stats()

    app = create_app(_settings(url, kafka_bootstrap, jwks, banksim, port))  # no status checks in its first life
    async with serve(app, port) as client:
        client.app = app
        rnd, _ = await start_round(client, 10)
        await eventually(lambda: _accepted(client), timeout=20)
    # Down: the bank pays, fails, calls back into nothing and gives up.
    await eventually(lambda: _given_up(banksim, before), timeout=30)

    app = create_app(_settings(url, kafka_bootstrap, jwks, banksim, port, **CHECK_SOON))
    async with serve(app, port) as client:
        client.app = app
        await eventually(lambda: _settled(client, rnd, paid_count=7, failed_count=3), timeout=30)
        assert (await banksim.stats())["status_queries"] > before.get("status_queries", 0)
        await banksim.configure(callback_attempts=8, latency_ms_min=5, latency_ms_max=30)
        assert (await client.post(f"/v1/rounds/{rnd['id']}/retry-failed", headers=PREPARER)).json() == {"queued": 3}
        await eventually(lambda: _settled(client, rnd, paid_count=10), timeout=30)
        closed = await client.post(f"/v1/rounds/{rnd['id']}/close", headers=PREPARER)
        assert closed.status_code == 200, closed.text
        payments = await payments_of(client, rnd)
        statement = _mine(await banksim.statement(), payments)
        report = (await client.post("/v1/statements", content="\n".join(statement) + "\n", headers=PREPARER)).json()
        assert (report["status_mismatch"], report["amount_mismatch"], report["unmatched"], report["duplicate"]) == (0, 0, 0, 0), report
        t = await totals(client, rnd)
        assert (t["paid_count"], t["reconciled_count"]) == (10, 10) == (_bank_debits(statement), 10)
        assert await event_counts(client, rnd) == {"sent.v1": 13, "succeeded.v1": 10, "failed.v1": 3}


async def _accepted(client) -> bool:
    from sqlalchemy import text

    async with client.app.state.session_factory() as session:
        pending = (await session.execute(text("SELECT count(*) FILTER (WHERE status <> 'accepted'), count(*) FROM bank_batch"))).one()
    return pending[0] == 0 and pending[1] > 0


async def _given_up(banksim, before: dict):
    stats = await banksim.stats()
    return stats.get("callbacks_given_up", 0) > before.get("callbacks_given_up", 0) and stats["busy_tasks"] == 0


async def test_an_approval_and_a_late_callback_at_the_same_moment_pay_once(paying, banksim):
    await banksim.configure(report_results=False)
    rnd, _ = await start_round(paying, 4)
    await eventually(lambda: _all_sent(paying, rnd), timeout=20)
    ids = [p["id"] for p in await payments_of(paying, rnd)]
    proposals = []
    for pid in ids:
        r = await paying.post(f"/v1/payments/{pid}/settlements", json={"outcome": "succeeded", "reason": "bank letter says it was paid"},
                              headers=PREPARER)
        proposals.append(r.json()["id"])

    async def approve(pid, sid):
        return await paying.post(f"/v1/payments/{pid}/settlements/{sid}/approve", headers=APPROVER)

    async def late(pid):
        return (await callback(paying, [{"payment_id": pid, "attempt": 1, "status": "succeeded", "reference": f"L-{pid[:8]}"}]))[0]

    answers = await asyncio.gather(*[approve(p, s) for p, s in zip(ids, proposals, strict=True)], *[late(p) for p in ids])
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    applied_by_hand = sum(a.json()["status"] == "applied" for a in answers[:4])
    applied_by_bank = sum(a.json()["applied"] for a in answers[4:])
    assert applied_by_hand + applied_by_bank == 4  # each payment settled exactly once, by one or the other
    assert {p["status"] for p in await payments_of(paying, rnd)} == {"succeeded"}
    assert await event_counts(paying, rnd) == {"sent.v1": 4, "succeeded.v1": 4}
