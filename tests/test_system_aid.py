"""A year's aid, end to end, through the gateway with the demo clients' real tokens.

The provincial office imports 5,000 persons across the 38 regencies/cities from a CSV file;
officers propose, verify and approve enrolments in PKH Plus, ASPD and PKE (three officers,
four eyes); the approved population reaches disbursement over Kafka; a round per programme
is prepared, approved under a decree and paid through the bank simulator, which fails some
first attempts; the failures are retried. Then: every payee is paid exactly once, the
totals match the rounds and the year's budgets, and each person's aid history in the
registry equals the disbursement ledger. A regency office's token sees only its region, and
the platform's statistics agree with the records.
"""

from __future__ import annotations

import csv
import io
import os
import random
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

import pytest

from pilar_kernel import regions
from pilar_kernel.nik import make_nik
from platform_testkit import Platform, converge, in_parallel

pytestmark = pytest.mark.stack

PERSONS = 5_000
TODAY = date.today()
YEAR = TODAY.year

# The programmes as the domain describes them (created when the demo data has not).
PROGRAMMES = {
    "PKH_PLUS": {"name": "PKH Plus Jawa Timur (lansia)", "amount_per_stage": 500_000, "provincial": True,
                 "rules": {"min_age": 70, "max_decile": 4, "one_per_household": True}},
    "ASPD": {"name": "Asistensi Sosial Penyandang Disabilitas", "amount_per_stage": 900_000, "provincial": True,
             "rules": {"min_age_months": 6, "max_age": 60, "max_decile": 5, "disability_severities": ["severe", "bedridden"]}},
    "PKE": {"name": "Penanganan Kemiskinan Ekstrem (usaha produktif)", "amount_per_stage": 1_500_000, "provincial": True,
            "rules": {"max_decile": 1}},
}
CANDIDATES = {"PKH_PLUS": 40, "ASPD": 30, "PKE": 40}  # persons enrolled per programme in this scenario

NAMES_M = ["Ahmad", "Budi", "Slamet", "Agus", "Bambang", "Sugeng", "Joko", "Heru", "Imam", "Rudi", "Wahyu", "Eko"]
NAMES_F = ["Siti", "Sri", "Dewi", "Nur", "Endang", "Rina", "Wulan", "Lestari", "Sumiati", "Kartini", "Aminah", "Fitri"]
FAMILY = ["Santoso", "Wibowo", "Hidayat", "Saputra", "Purnomo", "Rahayu", "Setiawan", "Kusuma", "Prasetyo", "Wijaya"]
COLUMNS = ["nik", "name", "birth_date", "sex", "kk_number", "relationship", "village_code", "rt", "rw", "decile",
           "decile_date", "disability_type", "disability_severity", "ppks"]

# Officers of the provincial console (the token names each one: four-eyes rules compare them).
PROPOSER, VERIFIER, APPROVER, PREPARER, ROUND_APPROVER = "officer.ani", "officer.bayu", "kabid.linjamsos", "ppk.dewi", "kadis.jatim"


@dataclass
class Population:
    rows: list[dict]
    candidates: dict[str, list[dict]] = field(default_factory=dict)  # programme -> rows


def _age_to_birth(rng: random.Random, low: int, high: int) -> date:
    return TODAY - timedelta(days=rng.randint(low * 365 + 10, high * 365 - 10))


def build_population(seed: int, serial_base: int = 7000) -> Population:
    """5,000 synthetic persons in households across every regency/city; the enrolment
    candidates of each programme match its rules and never share a household."""
    rng = random.Random(seed)
    regencies = regions.jatim_regencies()
    villages = {r.code: [v for d in regions.children(r.code, current_only=True) if d.level == "district"
                         for v in regions.children(d.code, current_only=True)] for r in regencies}
    rows: list[dict] = []
    population = Population(rows)
    serial = Counter()

    def person(village, kk, relationship, birth, sex, **extra) -> dict:
        district = village.code.rsplit(".", 1)[0]
        key = (district, birth, sex)
        serial[key] += 1
        row = {"nik": make_nik(district, birth, sex, serial_base + serial[key]), "name": f"{rng.choice(NAMES_M if sex == 'M' else NAMES_F)} {rng.choice(FAMILY)}",
               "birth_date": birth.isoformat(), "sex": sex, "kk_number": kk, "relationship": relationship,
               "village_code": village.code, "rt": str(rng.randint(1, 9)), "rw": str(rng.randint(1, 5)),
               "decile": "", "decile_date": "", "disability_type": "", "disability_severity": "", "ppks": "", **extra}
        if row["decile"]:
            row["decile_date"] = "2026-07-01"
        rows.append(row)
        return row

    def new_kk(village) -> str:
        return village.code.rsplit(".", 1)[0].replace(".", "") + f"{rng.randrange(10**10):010d}"

    # The candidates first, each the head of a KK of their own.
    for i in range(CANDIDATES["PKH_PLUS"]):
        village = rng.choice(villages[regencies[i % len(regencies)].code])
        row = person(village, new_kk(village), "head", _age_to_birth(rng, 71, 88), rng.choice("MF"),
                     decile=str(rng.randint(1, 4)), ppks="lansia_telantar")
        population.candidates.setdefault("PKH_PLUS", []).append(row)
    for i in range(CANDIDATES["ASPD"]):
        village = rng.choice(villages[regencies[(i + 7) % len(regencies)].code])
        row = person(village, new_kk(village), "head", _age_to_birth(rng, 20, 55), rng.choice("MF"),
                     decile=str(rng.randint(1, 5)), disability_type=rng.choice(["physical", "intellectual", "multiple"]),
                     disability_severity=rng.choice(["severe", "bedridden"]), ppks="penyandang_disabilitas")
        population.candidates.setdefault("ASPD", []).append(row)
    for i in range(CANDIDATES["PKE"]):
        village = rng.choice(villages[regencies[(i + 19) % len(regencies)].code])
        row = person(village, new_kk(village), "head", _age_to_birth(rng, 30, 50), rng.choice("MF"), decile="1", ppks="fakir_miskin")
        population.candidates.setdefault("PKE", []).append(row)
    # Then ordinary households until 5,000 persons, spread over every regency/city.
    i = 0
    while len(rows) < PERSONS:
        village = rng.choice(villages[regencies[i % len(regencies)].code])
        i += 1
        kk = new_kk(village)
        head_birth = _age_to_birth(rng, 25, 65)
        decile = str(rng.randint(1, 10))
        person(village, kk, "head", head_birth, "M", decile=decile)
        for member in range(min(rng.randint(0, 3), PERSONS - len(rows))):
            if member == 0 and rng.random() < 0.8:
                person(village, kk, "wife", head_birth + timedelta(days=rng.randint(-900, 1800)), "F", decile=decile)
            else:
                person(village, kk, "child", _age_to_birth(rng, 1, 17), rng.choice("MF"), decile=decile)
    return population


def to_csv(rows: list[dict]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


@pytest.fixture(scope="module")
async def officers(platform: Platform) -> dict[str, dict[str, str]]:
    """Headers for each officer of the provincial console, one token per officer."""
    names = {"proposer": PROPOSER, "verifier": VERIFIER, "approver": APPROVER, "preparer": PREPARER, "round_approver": ROUND_APPROVER}
    return {role: await platform.headers("dinsos-jatim", user=user) for role, user in names.items()}


@pytest.fixture(scope="module")
async def imported(platform: Platform, officers) -> Population:
    # A fresh platform every CI run; a developer's long-running one gets other NIKs each time.
    reused = bool(os.environ.get("PILAR_TEST_PLATFORM_DIR"))
    population = build_population(seed=random.randrange(10**9) if reused else 20261127,
                                  serial_base=random.randrange(1000, 9000) if reused else 7000)
    body = to_csv(population.rows)
    headers = {**officers["proposer"], "Content-Type": "text/csv", "Idempotency-Key": f"import-{uuid.uuid4()}"}
    job = await platform.json("POST", "/v1/registry/imports", params={"filename": "dtsen-jatim-2026.csv"}, content=body,
                              headers=headers, expect=202)
    again = await platform.json("POST", "/v1/registry/imports", params={"filename": "dtsen-jatim-2026.csv"}, content=body,
                                headers=headers, expect=202)
    assert again["id"] == job["id"], "the same upload with the same Idempotency-Key is the same job"

    async def finished():
        state = await platform.json("GET", f"/v1/registry/imports/{job['id']}", headers=officers["proposer"])
        return state if state["status"] in ("done", "failed") else None

    state = await converge(finished, timeout=240, interval=1, what="the bulk import to finish")
    assert (state["status"], state["total"], state["inserted"], state["failed"]) == ("done", PERSONS, PERSONS, 0), state
    return population


async def ensure_programmes(platform: Platform, officers) -> dict[str, int]:
    """Each programme in the registry and in disbursement with this year's budget; returns the
    amount per stage of each (from the registry's catalogue)."""
    admin = officers["approver"]
    amounts = {}
    for code, spec in PROGRAMMES.items():
        found = await platform.call("GET", f"/v1/registry/programmes/{code}", headers=admin, expect=(200, 404))
        if found.status_code == 404:
            found = await platform.call("POST", "/v1/registry/programmes", json={"code": code, **spec}, headers=admin, expect=(201, 409))
            if found.status_code == 409:
                found = await platform.call("GET", f"/v1/registry/programmes/{code}", headers=admin)
        amounts[code] = found.json()["amount_per_stage"] or spec["amount_per_stage"]
        paying = await platform.call("GET", f"/v1/disbursement/programmes/{code}", headers=admin, expect=(200, 404))
        if paying.status_code == 404:
            await platform.call("POST", "/v1/disbursement/programmes", json={"code": code, "name": spec["name"]}, headers=admin,
                                expect=(201, 409))
    return amounts


async def test_a_year_of_aid_from_import_to_the_ledger(platform: Platform, officers, imported: Population):
    amounts = await ensure_programmes(platform, officers)

    # Find the imported candidates (by NIK, as a regency office's tool would).
    async def lookup(row):
        return await platform.json("POST", "/v1/registry/persons/lookup", json={"nik": row["nik"]}, headers=officers["proposer"])

    people: dict[str, list[dict]] = {}
    for code, rows in imported.candidates.items():
        people[code] = await in_parallel(lookup(r) for r in rows)
        assert all(p["status"] == "active" for p in people[code])

    # Propose, verify, approve: three different officers.
    async def enrol(person: dict, code: str) -> dict:
        enrolment = await platform.json("POST", "/v1/registry/enrolments", json={"person_id": person["id"], "programme_code": code},
                                        headers=officers["proposer"], expect=201)
        same_officer = await platform.call("POST", f"/v1/registry/enrolments/{enrolment['id']}/verify", headers=officers["proposer"],
                                           expect=(403, 409, 422))
        assert same_officer.headers["content-type"] == "application/problem+json"
        await platform.json("POST", f"/v1/registry/enrolments/{enrolment['id']}/verify", headers=officers["verifier"])
        return await platform.json("POST", f"/v1/registry/enrolments/{enrolment['id']}/approve", headers=officers["approver"])

    approved = {code: await in_parallel(enrol(p, code) for p in people[code]) for code in PROGRAMMES}
    assert all(e["status"] == "active" for es in approved.values() for e in es)

    # An ineligible proposal is refused with the rule named (a young person into PKH Plus).
    young = next(r for r in imported.rows if r["relationship"] == "child")
    young_person = await lookup(young)
    refused = await platform.call("POST", "/v1/registry/enrolments", json={"person_id": young_person["id"], "programme_code": "PKH_PLUS"},
                                  headers=officers["proposer"], expect=422)
    assert "age" in refused.text

    # Whoever else is approved in these programmes (the registry's own view) is the population.
    expected_payees = {}
    for code in PROGRAMMES:
        registry_side = await platform.all_pages("/v1/registry/enrolments", headers=officers["preparer"],
                                                 params={"programme_code": code, "status": "active"})
        expected_payees[code] = {e["person_id"] for e in registry_side}
        assert {p["id"] for p in people[code]} <= expected_payees[code]

    async def population_arrived():
        for code in PROGRAMMES:
            seen = await platform.all_pages("/v1/disbursement/population/enrolments", headers=officers["preparer"],
                                            params={"programme_code": code})
            if {e["person_id"] for e in seen if e.get("status", "active") == "active"} != expected_payees[code]:
                return None
        return True

    await converge(population_arrived, timeout=90, what="approved enrolments to reach disbursement")

    # The budgets of the year: what is already allocated stays; this scenario adds its rounds.
    budgets = {}
    for code in PROGRAMMES:
        programme = await platform.json("GET", f"/v1/disbursement/programmes/{code}", headers=officers["preparer"])
        current = next((b for b in programme["budgets"] if b["year"] == YEAR), None)
        need = len(expected_payees[code]) * amounts[code]
        if current is None or current["remaining"] < need:
            amount = (current["allocated"] if current else 0) + need + 50_000_000
            body = {"amount": amount} if current is None else {"amount": amount, "version": current["version"]}
            current = await platform.json("PUT", f"/v1/disbursement/programmes/{code}/budgets/{YEAR}", json=body, headers=officers["approver"])
        budgets[code] = current

    # One round per programme: prepared, snapshot, approved by another officer under a decree, paid.
    rounds = {}
    for stage_code in PROGRAMMES:
        count = len(expected_payees[stage_code])
        earlier = await platform.all_pages("/v1/disbursement/rounds", headers=officers["preparer"],
                                           params={"programme_code": stage_code, "year": YEAR}, limit=100)
        stage = 1 + max((r["stage"] for r in earlier), default=0)
        rnd = await platform.json("POST", "/v1/disbursement/rounds", headers=officers["preparer"], expect=201, json={
            "programme_code": stage_code, "year": YEAR, "stage": stage, "amount": amounts[stage_code], "ceiling": count * amounts[stage_code],
            "period_start": TODAY.isoformat(), "period_end": (TODAY + timedelta(days=60)).isoformat()})
        rnd = await platform.json("POST", f"/v1/disbursement/rounds/{rnd['id']}/snapshot", headers=officers["preparer"])
        snapshot = await platform.json("GET", f"/v1/disbursement/rounds/{rnd['id']}/snapshot", headers=officers["preparer"])
        assert snapshot["payees"] == count, snapshot
        self_approval = await platform.call("POST", f"/v1/disbursement/rounds/{rnd['id']}/approve", headers=officers["preparer"],
                                            json={"sk_number": "188/450/KPTS/013/2026", "snapshot_version": rnd["snapshot_version"]},
                                            expect=(403, 409, 422))
        assert self_approval.headers["content-type"] == "application/problem+json", "the preparer may not approve"
        await platform.json("POST", f"/v1/disbursement/rounds/{rnd['id']}/approve", headers=officers["round_approver"],
                            json={"sk_number": f"188/{450 + len(rounds)}/KPTS/013/{YEAR}", "snapshot_version": rnd["snapshot_version"]})
        await platform.json("POST", f"/v1/disbursement/rounds/{rnd['id']}/disburse", headers=officers["preparer"])
        rounds[stage_code] = rnd

    async def settled(round_id: str):
        totals = await platform.json("GET", f"/v1/disbursement/rounds/{round_id}/totals", headers=officers["preparer"])
        return totals if totals["queued_count"] == totals["sent_count"] == 0 else None

    # The bank answers; the operators retry what failed until everything is paid.
    retried = 0
    for code, rnd in rounds.items():
        for _ in range(5):
            totals = await converge(lambda: settled(rnd["id"]), timeout=120, what=f"the bank to answer for {code}")
            if totals["failed_count"] == 0:
                break
            retried += totals["failed_count"]
            await platform.json("POST", f"/v1/disbursement/rounds/{rnd['id']}/retry-failed", headers=officers["preparer"])
        count = len(expected_payees[code])
        assert (totals["paid_count"], totals["payment_count"], totals["failed_count"]) == (count, count, 0), totals
        assert totals["paid_amount"] == count * amounts[code] == totals["committed"], totals
    assert retried > 0, "the bank simulator failed some first attempts, and they were retried"

    # The ledger: every payee exactly once, paid; nobody else.
    ledger: dict[str, list[dict]] = defaultdict(list)
    for code, rnd in rounds.items():
        payments = await platform.all_pages("/v1/disbursement/payments", headers=officers["preparer"], params={"round_id": rnd["id"]})
        assert Counter(p["person_id"] for p in payments) == Counter(expected_payees[code]), "each payee exactly one payment"
        assert {p["status"] for p in payments} == {"succeeded"}
        for p in payments:
            ledger[p["person_id"]].append(p)

    # The year's budgets account for the rounds.
    for code, before in budgets.items():
        programme = await platform.json("GET", f"/v1/disbursement/programmes/{code}", headers=officers["preparer"])
        after = next(b for b in programme["budgets"] if b["year"] == YEAR)
        spent = len(expected_payees[code]) * amounts[code]
        assert after["allocated"] - before["allocated"] == spent and after["remaining"] == after["amount"] - after["allocated"], (before, after)

    # Each person's aid history in the registry equals the disbursement ledger: the same
    # payments, amounts, attempts and outcomes (the registry learns them from events only).
    def entries(items, id_key: str):
        return sorted((i[id_key], i["programme_code"], i["round_id"], i["year"], i["stage"], i["amount"], i["attempt"], i["status"])
                      for i in items)

    async def agrees(person_id: str):
        registry_side = await platform.all_pages(f"/v1/registry/persons/{person_id}/aid-history", headers=officers["preparer"])
        paying_side = await platform.all_pages("/v1/disbursement/payments", headers=officers["preparer"], params={"person_id": person_id})
        return entries(registry_side, "payment_id") == entries(paying_side, "id")

    async def histories_agree():
        return all(await in_parallel(agrees(pid) for pid in ledger))

    await converge(histories_agree, timeout=90, what="each person's aid history to equal the disbursement ledger")
    sample = next(iter(ledger))
    assert {i["round_id"] for i in await platform.all_pages(f"/v1/registry/persons/{sample}/aid-history", headers=officers["preparer"])} \
        >= {p["round_id"] for p in ledger[sample]}

    # Close the rounds: the committed money is what was paid.
    for code, rnd in rounds.items():
        closed = await platform.json("POST", f"/v1/disbursement/rounds/{rnd['id']}/close", headers=officers["preparer"])
        assert (closed["status"], closed["committed"]) == ("closed", len(expected_payees[code]) * amounts[code])


async def test_a_regency_office_sees_only_its_region(platform: Platform, officers, imported: Population):
    sidoarjo = await platform.headers("dinsos-sidoarjo", user="operator.sidoarjo")
    mine = next(r for r in imported.rows if r["village_code"].startswith("35.15."))
    other = next(r for r in imported.rows if r["village_code"].startswith("35.78."))
    own = await platform.json("POST", "/v1/registry/persons/lookup", json={"nik": mine["nik"]}, headers=sidoarjo)
    assert own["regency_code"] == "35.15"
    await platform.call("POST", "/v1/registry/persons/lookup", json={"nik": other["nik"]}, headers=sidoarjo, expect=404)
    stranger = await platform.json("POST", "/v1/registry/persons/lookup", json={"nik": other["nik"]}, headers=officers["proposer"])
    await platform.call("GET", f"/v1/registry/persons/{stranger['id']}", headers=sidoarjo, expect=404)
    listed = await platform.json("GET", "/v1/registry/persons", headers=sidoarjo, params={"limit": 200})
    assert listed["items"] and {p["regency_code"] for p in listed["items"]} == {"35.15"}
    asked_elsewhere = await platform.json("GET", "/v1/registry/persons", headers=sidoarjo, params={"regency_code": "35.78"})
    assert asked_elsewhere["items"] == []

    payments = await platform.all_pages("/v1/disbursement/payments", headers=sidoarjo)
    assert {p["regency_code"] for p in payments} <= {"35.15"}
    everyone = await platform.all_pages("/v1/disbursement/payments", headers=officers["preparer"])
    assert {p["id"] for p in everyone if p["regency_code"] == "35.15"} == {p["id"] for p in payments}
    elsewhere = next((p for p in everyone if p["regency_code"] != "35.15"), None)
    if elsewhere is not None:
        await platform.call("GET", f"/v1/disbursement/payments/{elsewhere['id']}", headers=sidoarjo, expect=404)
        await platform.call("GET", f"/v1/registry/persons/{elsewhere['person_id']}/aid-history", headers=sidoarjo, expect=404)
    # Money is the province's: a regency office cannot prepare a round.
    refused = await platform.call("POST", "/v1/disbursement/rounds", headers=sidoarjo, expect=403, json={
        "programme_code": "PKH_PLUS", "year": YEAR, "stage": 9, "amount": 1, "ceiling": 1,
        "period_start": TODAY.isoformat(), "period_end": TODAY.isoformat()})
    assert refused.headers["content-type"] == "application/problem+json"


async def test_statistics_through_the_gateway_agree_with_the_records(platform: Platform, officers, imported: Population):
    province = officers["preparer"]
    overview = await platform.json("GET", "/v1/stats/overview", headers=province)
    assert overview["complete"] and overview["missing"] == {}, overview
    stats = overview["statistics"]
    assert {"registry", "disbursement", "disaster", "homeless-return"} <= set(stats), overview

    # Registry: the per-regency counts are the persons one can list there.
    for regency in ("35.15", "35.78"):
        listed = await platform.all_pages("/v1/registry/persons", headers=province, params={"regency_code": regency})
        assert stats["registry"]["by_regency"][regency] == len(listed)
    assert sum(stats["registry"]["by_status"].values()) >= PERSONS

    # Disbursement: paid counts and amounts per programme and year are those of the payments.
    payments = await platform.all_pages("/v1/disbursement/payments", headers=province, params={"status": "succeeded"})
    paid: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for p in payments:
        paid[f"{p['programme_code']}/{p['year']}"][0] += 1
        paid[f"{p['programme_code']}/{p['year']}"][1] += p["amount"]
    figures = stats["disbursement"]["payments"]["by_programme_year"]
    assert {k: [v["paid_count"], v["paid_amount"]] for k, v in figures.items() if v["paid_count"]} == dict(paid)
    for budget in stats["disbursement"]["budgets"]:
        programme = await platform.json("GET", f"/v1/disbursement/programmes/{budget['programme_code']}", headers=province)
        record = next(b for b in programme["budgets"] if b["year"] == budget["year"])
        assert (budget["amount"], budget["allocated"], budget["remaining"]) == (record["amount"], record["allocated"], record["remaining"])

    # Disaster and returns: the totals are the incidents and returns on record.
    incidents = await platform.all_pages("/v1/disaster/incidents", headers=province, limit=100)
    assert stats["disaster"]["incidents"]["total"] == len(incidents)
    returns = await platform.all_pages("/v1/homeless-return/returns", headers=province, limit=100)
    this_year = [r for r in returns if r["created_at"][:4] == str(YEAR)]
    assert stats["homeless-return"]["reported"] == len(this_year)
    assert stats["homeless-return"]["returned"] == sum(1 for r in this_year if r["status"] == "returned")

    # A regency office's overview holds its own region's figures only.
    sidoarjo = await platform.headers("dinsos-sidoarjo", user="operator.sidoarjo")
    regional = await platform.json("GET", "/v1/stats/overview", headers=sidoarjo)
    assert regional["region"] == "35.15"
    assert set(regional["statistics"]["registry"]["by_regency"]) == {"35.15"}
    assert regional["statistics"]["registry"]["by_regency"]["35.15"] == stats["registry"]["by_regency"]["35.15"]
    assert set(regional["statistics"]["disbursement"]["payments"]["by_regency"]) <= {"35.15"}
    assert "budgets" not in regional["statistics"]["disbursement"]
    assert "shelter" in regional["not_in_scope"], "survivor statistics are not a regency operator's business"
