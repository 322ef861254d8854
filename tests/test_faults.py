"""The platform under faults, as processes: SIGKILL of the broker, of a consuming service and of
disbursement in the middle of its work, and a PostgreSQL fast restart, each under load.

The suite has a platform of its own (its own PostgreSQL cluster, Kafka broker and processes),
because it kills and restarts them: the other system tests share theirs and must not see it.
Each case then counts in the services' own databases that nothing acknowledged was lost and
nothing was applied twice, that no dead letter was written, and that every process answers
``/ready`` again without anyone's help; it prints how long that took after the restart began.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fault_kit import Burst, all_ready, dead_letters, fetch, fetchval, person_bodies
from pilar_contracts.registry import PersonRegistered
from pilar_devstack import COMPONENTS, LocalStack, free_port
from platform_testkit import Platform, converge, in_parallel

pytestmark = pytest.mark.stack

# The platform of this suite: the bank fails some first attempts and takes small batches, so a
# round is paid in several batches with retries; the gateway lets a burst through unthrottled;
# a batch the bank never acknowledged is posted again after 2 s instead of 30, and a payment
# sent 5 s ago with no result is asked about (then every 2 s) instead of after 10 minutes.
FAULT_ENV = {
    "BANKSIM_FAILURE_RATE": "0.1",
    "BANKSIM_SEED": "20261202",
    "PILAR_BANK_BATCH_SIZE": "10",
    "PILAR_BANK_RESEND_AFTER_S": "2",
    "PILAR_BANK_STATUS_AFTER_S": "5",
    "PILAR_BANK_STATUS_INTERVAL_S": "2",
    "PILAR_BANK_STATUS_POLL_S": "1",
    "PILAR_RATE_LIMIT_PER_S": "2000",
    "PILAR_RATE_LIMIT_BURST": "2000",
}
BURST = 300
SETTLE_TIMEOUT_S = 90
YEAR = date.today().year

# Who consumes a registration: (database, consumer, process, projection table keyed by person_id).
REGISTRATION_CONSUMERS = [
    ("disaster", "disaster.registry", "disaster", "registry_person"),
    ("homeless_return", "homeless-return.persons", "homeless-return", "known_person"),
    ("gateway", "gateway.webhooks", "gateway", None),
]

PROGRAMME = "FAULT_DRILL"
PAYEES = 40
AMOUNT = 250_000
OFFICERS = {"proposer": "petugas.uji", "verifier": "verifikator.uji", "approver": "kabid.uji",
            "preparer": "ppk.uji", "round_approver": "kadis.uji"}


# --------------------------------------------------------------------------- the platform


@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory: pytest.TempPathFactory):
    s = LocalStack(
        run_dir=Path(tmp_path_factory.mktemp("faults")),
        pg_port=free_port(),
        pg_admin_url="",  # our own cluster even when the run uses an external server: we restart it
        kafka_port=free_port(),
        controller_port=free_port(),
        partitions=3,
        component_ports={c.name: free_port() for c in COMPONENTS},
    )
    try:
        started = time.monotonic()
        # The broker's start is the longest wait: the cluster and its databases come up meanwhile.
        with ThreadPoolExecutor(max_workers=1) as pool:
            kafka = pool.submit(s.start_kafka)
            s.start_postgres()
            s.create_databases()
            kafka.result()
        s.start_components(extra_env=FAULT_ENV, ready_timeout=120)
        print(f"\n[faults] own platform up in {time.monotonic() - started:.1f} s")
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
async def faults(fault_stack: LocalStack):
    async with httpx.AsyncClient(base_url=fault_stack.url("gateway"), timeout=60) as http:
        platform = Platform(fault_stack, http)
        await platform.headers("dinsos-jatim")  # tokens before any fault: the token endpoint needs the gateway's database
        yield platform


@pytest.fixture(scope="module")
async def officers(faults: Platform) -> dict[str, dict[str, str]]:
    return {role: await faults.headers("dinsos-jatim", user=user) for role, user in OFFICERS.items()}


# --------------------------------------------------------------------------- counting


async def consumer_metrics(stack: LocalStack, process: str) -> Counter:
    """``pilar_consumer_messages_total`` of one process, by (consumer, outcome)."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{stack.url(process)}/metrics", timeout=10)).text
    counts: Counter = Counter()
    for family in text_string_to_metric_families(text):
        if family.name == "pilar_consumer_messages":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts[(sample.labels["consumer"], sample.labels["outcome"])] += int(sample.value)
    return counts


async def metrics_of_consumers(stack: LocalStack) -> dict[str, Counter]:
    processes = sorted({process for _db, _consumer, process, _table in REGISTRATION_CONSUMERS})
    return dict(zip(processes, await asyncio.gather(*(consumer_metrics(stack, p) for p in processes))))


async def assert_each_registration_applied_once(stack: LocalStack, person_ids: list[str], *, before: dict[str, Counter],
                                                restarted: set[str], what: str) -> None:
    """Every acknowledged registration's event is in the registry's outbox once and published;
    each consumer's inbox holds it once and its projection has the person once. A consumer in
    a process that ran throughout also ran its handler exactly once per event (its metrics)."""
    n = len(person_ids)
    assert len(set(person_ids)) == n, "every write made its own person"

    async def published():
        rows = await fetch(stack, "registry", "SELECT message_key, ce_id, published_at FROM outbox WHERE ce_type = $1 AND message_key = ANY($2::text[])",
                           PersonRegistered.ce_type, person_ids)
        return rows if len(rows) == n and all(r["published_at"] for r in rows) else None

    rows = await converge(published, timeout=SETTLE_TIMEOUT_S, what=f"{what}: the registry to publish {n} registrations")
    assert Counter(r["message_key"] for r in rows) == Counter(person_ids), "one event per write, no more"
    ce_ids = [str(r["ce_id"]) for r in rows]

    async def applied(database: str, consumer: str, table: str | None):
        inbox = await fetchval(stack, database, "SELECT count(*) FROM inbox WHERE consumer = $1 AND ce_id = ANY($2::text[])", consumer, ce_ids)
        projected = n if table is None else await fetchval(
            stack, database, f"SELECT count(*) FROM {table} WHERE person_id = ANY($1::uuid[])", [uuid.UUID(p) for p in person_ids])
        return (inbox, projected) if inbox == n and projected == n else None

    for database, consumer, _process, table in REGISTRATION_CONSUMERS:
        async def done(database=database, consumer=consumer, table=table):
            return await applied(database, consumer, table)

        try:
            await converge(done, timeout=SETTLE_TIMEOUT_S, what=f"{what}: {consumer} to apply {n} registrations")
        except AssertionError as exc:
            inbox = await fetchval(stack, database, "SELECT count(*) FROM inbox WHERE consumer = $1 AND ce_id = ANY($2::text[])", consumer, ce_ids)
            raise AssertionError(f"{exc}; {consumer} holds {inbox} of {n}; dead letters: {await dead_letters(stack)}; "
                                 f"log {stack.log_path(_process)}") from None
        twice = await fetch(stack, database, "SELECT ce_id FROM inbox WHERE consumer = $1 AND ce_id = ANY($2::text[]) GROUP BY ce_id HAVING count(*) > 1",
                            consumer, ce_ids)
        assert twice == [], f"{consumer} recorded events twice"

    after = await metrics_of_consumers(stack)
    for _database, consumer, process, _table in REGISTRATION_CONSUMERS:
        if process in restarted:
            continue  # its counters started again from zero
        ran = after[process][(consumer, "applied")] - before[process][(consumer, "applied")]
        redelivered = after[process][(consumer, "duplicate")] - before[process][(consumer, "duplicate")]
        print(f"[faults] {what}: {consumer} ran its handler {ran} times for {n} events ({redelivered} redeliveries skipped by the inbox)")
        assert ran == n, f"{consumer} applied {ran} events for {n} registrations"
    assert await dead_letters(stack) == {}, "nothing is dead-lettered"


def registration_burst(platform: Platform, officers, *, seed: str, serial_base: int, count: int = BURST) -> Burst:
    return Burst(platform, "/v1/registry/persons", person_bodies(count, seed=seed, serial_base=serial_base), officers["proposer"])


# --------------------------------------------------------------------------- 1. the broker


async def test_broker_sigkilled_during_a_burst_of_cross_service_writes(faults: Platform, officers):
    stack = faults.stack
    before = await metrics_of_consumers(stack)
    burst = registration_burst(faults, officers, seed="broker", serial_base=1001)
    writing = asyncio.create_task(burst.run())
    await burst.reached(BURST // 3)
    await asyncio.to_thread(stack.kill_kafka)
    await burst.reached(2 * BURST // 3)  # acknowledged while the broker is gone: they wait in the outbox
    waiting = await fetchval(stack, "registry", "SELECT count(*) FROM outbox WHERE published_at IS NULL")
    print(f"\n[faults] {waiting} events wait in the registry's outbox for the broker")
    assert waiting > 0, "writes were acknowledged while the broker was down"
    began = time.monotonic()
    await asyncio.to_thread(stack.start_kafka)
    print(f"\n[faults] the broker answered again {time.monotonic() - began:.1f} s after its restart began")
    recovered = asyncio.create_task(all_ready(stack, began, what="broker SIGKILLed and restarted"))  # while the burst goes on
    answers, _ = await asyncio.gather(writing, recovered)
    print(burst.report("broker killed at write 100, restarted at write 200"))
    await assert_each_registration_applied_once(stack, [a["id"] for a in answers], before=before, restarted=set(),
                                                what="broker killed")


# --------------------------------------------------------------------------- 2. a consumer


async def test_consuming_service_sigkilled_mid_burst(faults: Platform, officers):
    stack = faults.stack
    before = await metrics_of_consumers(stack)
    burst = registration_burst(faults, officers, seed="consumer", serial_base=2001)
    writing = asyncio.create_task(burst.run())
    await burst.reached(BURST // 3)
    await asyncio.to_thread(stack.kill_component, "disaster")
    began = time.monotonic()
    await asyncio.to_thread(stack.restart_component, "disaster")
    print(f"\n[faults] disaster migrated, started and ready {time.monotonic() - began:.1f} s after its restart began")
    recovered = asyncio.create_task(all_ready(stack, began, what="disaster SIGKILLed and restarted"))  # while the burst goes on
    answers, _ = await asyncio.gather(writing, recovered)
    print(burst.report("disaster killed at write 100 and restarted"))
    await assert_each_registration_applied_once(stack, [a["id"] for a in answers], before=before, restarted={"disaster"},
                                                what="consumer killed")


# --------------------------------------------------------------------------- 3. PostgreSQL


async def test_postgres_fast_restart_under_load(faults: Platform, officers):
    stack = faults.stack
    before = await metrics_of_consumers(stack)
    burst = registration_burst(faults, officers, seed="postgres", serial_base=3001)
    writing = asyncio.create_task(burst.run())
    await burst.reached(BURST // 3)
    began = time.monotonic()
    await asyncio.to_thread(stack.restart_postgres, "fast")
    print(f"\n[faults] pg_ctl restart -m fast took {time.monotonic() - began:.1f} s")
    recovered = asyncio.create_task(all_ready(stack, began, what="PostgreSQL fast restart"))  # while the burst goes on
    answers, _ = await asyncio.gather(writing, recovered)
    print(burst.report("PostgreSQL restarted (fast) at write 100"))
    await assert_each_registration_applied_once(stack, [a["id"] for a in answers], before=before, restarted=set(),
                                                what="PostgreSQL restarted")


# --------------------------------------------------------------------------- rounds under faults


@pytest.fixture(scope="module")
async def payees(faults: Platform, officers) -> list[str]:
    """PAYEES persons enrolled (three officers) in a programme of this suite, known to disbursement."""
    admin = officers["approver"]
    await faults.call("POST", "/v1/registry/programmes", headers=admin, expect=201, json={
        "code": PROGRAMME, "name": "Fault drill", "rules": {}, "amount_per_stage": AMOUNT, "provincial": False})
    await faults.call("POST", "/v1/disbursement/programmes", headers=admin, expect=201, json={
        "code": PROGRAMME, "name": "Fault drill", "provincial": False, "exclusive_with": [], "default_channel": "bank"})
    await faults.call("PUT", f"/v1/disbursement/programmes/{PROGRAMME}/budgets/{YEAR}", headers=admin, json={"amount": 10 * PAYEES * AMOUNT})

    burst = registration_burst(faults, officers, seed="payees", serial_base=4001, count=PAYEES)
    persons = await burst.run()

    async def enrol(person: dict) -> str:
        enrolment = await faults.json("POST", "/v1/registry/enrolments", json={"person_id": person["id"], "programme_code": PROGRAMME},
                                      headers=officers["proposer"], expect=201)
        await faults.json("POST", f"/v1/registry/enrolments/{enrolment['id']}/verify", headers=officers["verifier"])
        approved = await faults.json("POST", f"/v1/registry/enrolments/{enrolment['id']}/approve", headers=officers["approver"])
        assert approved["status"] == "active", approved
        return person["id"]

    ids = await in_parallel((enrol(p) for p in persons), limit=8)

    async def arrived():
        return await fetchval(faults.stack, "disbursement", "SELECT count(*) FROM payee_enrolment WHERE programme_code = $1 AND status = 'active'",
                              PROGRAMME) == PAYEES

    await converge(arrived, timeout=SETTLE_TIMEOUT_S, what="the approved enrolments to reach disbursement")
    return ids


async def bank(stack: LocalStack, method: str, path: str, **kwargs):
    async with httpx.AsyncClient(base_url=stack.url("banksim"), timeout=10) as client:
        response = await client.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json() if path != "/v1/statement" else response.text


async def approved_round(faults: Platform, officers, stage: int) -> dict:
    rnd = await faults.json("POST", "/v1/disbursement/rounds", headers=officers["preparer"], expect=201, json={
        "programme_code": PROGRAMME, "year": YEAR, "stage": stage, "amount": AMOUNT, "ceiling": PAYEES * AMOUNT,
        "period_start": date.today().isoformat(), "period_end": (date.today() + timedelta(days=30)).isoformat()})
    rnd = await faults.json("POST", f"/v1/disbursement/rounds/{rnd['id']}/snapshot", headers=officers["preparer"])
    await faults.json("POST", f"/v1/disbursement/rounds/{rnd['id']}/approve", headers=officers["round_approver"],
                      json={"sk_number": f"188/9{stage:02d}/KPTS/013/{YEAR}", "snapshot_version": rnd["snapshot_version"]})
    return rnd


async def disburse_and_kill(faults: Platform, officers, rnd: dict) -> float:
    """Start paying the round, and SIGKILL disbursement as soon as the bank has taken a batch of
    it (the rest is queued or on its way, the bank's answers not yet back)."""
    stack = faults.stack
    taken = (await bank(stack, "GET", "/v1/stats")).get("batches", 0)
    await faults.json("POST", f"/v1/disbursement/rounds/{rnd['id']}/disburse", headers=officers["preparer"])

    async def bank_took_one():
        return (await bank(stack, "GET", "/v1/stats")).get("batches", 0) > taken

    await converge(bank_took_one, timeout=30, interval=0.05, what="the bank to receive a batch of the round")
    await asyncio.to_thread(stack.kill_component, "disbursement")
    killed = time.monotonic()
    open_payments = await fetchval(stack, "disbursement", "SELECT count(*) FROM payment WHERE round_id = $1 AND status IN ('created', 'sent')",
                                   uuid.UUID(rnd["id"]))
    print(f"\n[faults] disbursement killed with {open_payments} of {PAYEES} payments queued or at the bank")
    assert open_payments > 0, "the kill came while the round was being paid"
    return killed


async def settle(faults: Platform, officers, rnd: dict, *, what: str) -> dict:
    """Wait until nothing is queued or in flight; retry what the bank failed until every payee is
    paid (the operators' routine, bounded)."""

    async def settled():
        totals = await faults.json("GET", f"/v1/disbursement/rounds/{rnd['id']}/totals", headers=officers["preparer"])
        return totals if totals["queued_count"] == totals["sent_count"] == 0 else None

    for _ in range(4):
        totals = await converge(settled, timeout=SETTLE_TIMEOUT_S, what=f"{what}: the round's payments to settle")
        if totals["failed_count"] == 0:
            break
        await faults.json("POST", f"/v1/disbursement/rounds/{rnd['id']}/retry-failed", headers=officers["preparer"])
    assert (totals["payment_count"], totals["paid_count"], totals["failed_count"]) == (PAYEES, PAYEES, 0), totals
    return totals


async def assert_paid_once_and_books_equal_the_bank(faults: Platform, officers, rnd: dict, payees: list[str], *, what: str) -> None:
    stack = faults.stack
    payments = await fetch(stack, "disbursement", "SELECT id, person_id, status, amount, attempt FROM payment WHERE round_id = $1",
                           uuid.UUID(rnd["id"]))
    assert Counter(str(p["person_id"]) for p in payments) == Counter(payees), "each payee exactly one payment"
    assert {p["status"] for p in payments} == {"succeeded"}
    succeeded_attempts = await fetch(stack, "disbursement", """
        SELECT a.payment_id, count(*) AS n FROM payment_attempt a JOIN payment p ON p.id = a.payment_id
        WHERE p.round_id = $1 AND a.outcome = 'succeeded' GROUP BY a.payment_id""", uuid.UUID(rnd["id"]))
    assert {r["n"] for r in succeeded_attempts} == {1} and len(succeeded_attempts) == PAYEES, "one successful attempt per payment"

    # The bank's books: one debit per payment of the round, of its amount, and nothing else.
    ours = {str(p["id"]): p["amount"] for p in payments}
    debits: Counter[str] = Counter()
    debited: dict[str, int] = {}
    for line in csv.DictReader(io.StringIO(await bank(stack, "GET", "/v1/statement"))):
        payment_id = line["instruction_id"].partition(":")[0]
        if payment_id in ours and line["debit"]:
            debits[payment_id] += 1
            debited[payment_id] = int(line["debit"])
    assert debits == Counter({pid: 1 for pid in ours}), f"{what}: the bank debited each payment once ({sum(debits.values())} debits)"
    assert debited == ours, f"{what}: the bank's debits are the amounts we paid"

    # The registry learns each payment once and ends where disbursement ended.
    async def aid_history_agrees():
        rows = await fetch(stack, "registry", "SELECT payment_id, status FROM aid_history WHERE round_id = $1", uuid.UUID(rnd["id"]))
        return rows if len(rows) == PAYEES and {r["status"] for r in rows} == {"succeeded"} else None

    await converge(aid_history_agrees, timeout=SETTLE_TIMEOUT_S, what=f"{what}: the registry's aid history to show every payment paid")

    closed = await faults.json("POST", f"/v1/disbursement/rounds/{rnd['id']}/close", headers=officers["preparer"])
    assert (closed["status"], closed["committed"]) == ("closed", PAYEES * AMOUNT), closed

    # Reconciliation agrees: the bank's statement lines of this round all match our records.
    header, *lines = (await bank(stack, "GET", "/v1/statement")).strip().split("\n")
    mine = [line for line in lines if line.split(",")[2].partition(":")[0] in ours]
    report = await faults.json("POST", "/v1/disbursement/statements", content="\n".join([header, *mine]) + "\n", expect=201,
                               headers={**officers["preparer"], "Content-Type": "text/csv", "Idempotency-Key": f"statement-{rnd['id']}"})
    assert (report["line_count"], report["matched"], report["status_mismatch"], report["amount_mismatch"], report["unmatched"]) == (
        len(mine), len(mine), 0, 0, 0), report
    totals = await faults.json("GET", f"/v1/disbursement/rounds/{rnd['id']}/totals", headers=officers["preparer"])
    assert (totals["paid_count"], totals["reconciled_count"], totals["paid_amount"]) == (PAYEES, PAYEES, PAYEES * AMOUNT), totals
    assert await dead_letters(stack) == {}, "nothing is dead-lettered"


async def test_disbursement_sigkilled_while_a_round_is_paid(faults: Platform, officers, payees):
    stack = faults.stack
    # The bank answers after about a second, and keeps trying its callbacks for minutes:
    # disbursement is back well within that.
    await bank(stack, "PUT", "/v1/config", json={"latency_ms_min": 800, "latency_ms_max": 1500, "callback_attempts": 40})
    rnd = await approved_round(faults, officers, stage=1)
    killed = await disburse_and_kill(faults, officers, rnd)
    await asyncio.to_thread(stack.restart_component, "disbursement")
    await all_ready(stack, killed, what="disbursement SIGKILLed while paying and restarted")
    await settle(faults, officers, rnd, what="disbursement killed while paying")
    await assert_paid_once_and_books_equal_the_bank(faults, officers, rnd, payees, what="disbursement killed while paying")


async def test_disbursement_down_longer_than_the_banks_callback_retries(faults: Platform, officers, payees):
    """Issue 12, item 8: the bank gives up on its callbacks while disbursement is down; the
    payments it reported must not stay ``sent`` for good. Disbursement asks the bank for their
    status, the round settles and closes, and the books equal the bank's."""
    stack = faults.stack
    # The bank tries each callback twice within about half a second, then gives up.
    await bank(stack, "PUT", "/v1/config", json={"latency_ms_min": 800, "latency_ms_max": 1500, "callback_attempts": 2})
    earlier = await bank(stack, "GET", "/v1/stats")
    abandoned = earlier.get("callbacks_given_up", 0)
    rnd = await approved_round(faults, officers, stage=2)
    killed = await disburse_and_kill(faults, officers, rnd)

    seen: dict = {}

    async def bank_gave_up():
        # One callback per batch (10 results to a batch): each batch the bank took of this round
        # has had its callback given up. (Counting the bank's busy tasks instead would also wait
        # for stragglers of earlier rounds.)
        seen.update(await bank(stack, "GET", "/v1/stats"))
        taken = seen.get("batches", 0) - earlier.get("batches", 0)
        given_up = seen.get("callbacks_given_up", 0) - abandoned
        return dict(seen) if taken > 0 and given_up >= taken else None

    try:
        stats = await converge(bank_gave_up, timeout=30, interval=0.2, what="the bank to give up on its callbacks")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the bank's stats before {earlier}, now {seen}") from None
    print(f"\n[faults] the bank gave up on {stats['callbacks_given_up'] - abandoned} callbacks "
          f"{time.monotonic() - killed:.1f} s after disbursement was killed")
    began = time.monotonic()
    await asyncio.to_thread(stack.restart_component, "disbursement")
    await all_ready(stack, began, what="disbursement down past the bank's callback retries, restarted")
    await bank(stack, "PUT", "/v1/config", json={"callback_attempts": 8})
    await settle(faults, officers, rnd, what="disbursement down past the bank's retries")
    asked = (await bank(stack, "GET", "/v1/stats")).get("status_queries", 0) - earlier.get("status_queries", 0)
    assert asked > 0, "disbursement asked the bank what became of the payments it heard nothing about"
    await assert_paid_once_and_books_equal_the_bank(faults, officers, rnd, payees, what="disbursement down past the bank's retries")
