"""An eruption of Gunung Semeru (Lumajang, 35.08), end to end through the gateway with the demo
clients' real tokens, against the whole running platform.

The field team records 200 affected households in Pronojiwo and Candipuro. Most heads of
family were registered beforehand through the registry's API; the others are strangers to
it. Then, across the services:

* the registry flags every known person as a disaster victim and opens exactly one
  provisional record for each unknown person alive: none for the known, none for the dead;
* the disaster service links every person the registry opened a provisional record for, and
  announces a household again when that gives it a recipient (the strangers' heads);
* disbursement pays emergency cash once per eligible household (a recipient known to the
  registry, a damage level the relief programme pays) through the bank simulator, which
  fails some first attempts; the operators retry the failures until every household is
  paid, and each payment shows in the recipient's aid history in the registry;
* buffer stock is requested for Lumajang, approved by another officer, shipped from the
  province warehouse, received and handed out, each warehouse's stock moving by exactly the
  quantities; a shipment or hand-out larger than what is left is refused and moves nothing;
* the incident's statistics agree with its records.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from pilar_kernel.nik import make_nik
from platform_testkit import Platform, converge, in_parallel

pytestmark = pytest.mark.stack

TODAY = date.today()
LUMAJANG = "35.08"
PRONOJIWO, CANDIPURO = "35.08.02", "35.08.03"
VILLAGES = ["35.08.02.2006", "35.08.02.2002", "35.08.03.2005", "35.08.03.2003"]  # Supiturang, Pronojiwo, Sumberwuluh, Candipuro
SHELTER_VILLAGE = "35.08.03.2007"  # Penanggal, out of the lava's path
REGULAR_VILLAGE = "35.08.03.2001"  # Jugosari: the round's regular payee lives there, not affected
HOUSEHOLDS = 200
# Emergency cash per damage level; lightly damaged houses get none.
AMOUNTS = {"light": 0, "moderate": 2_500_000, "heavy": 5_000_000}
REGULAR_AMOUNT = 1_000_000
CEILING = 1_500_000_000
# Each household is its own event, so its payment reaches the bank alone or with one or two
# others; the simulator fails round(rate x batch) first attempts per batch, which at the
# platform's 6% is none. During the assessment the bank has a bad day instead, so that the
# retries happen whatever the batches; its own setting is put back afterwards.
BAD_DAY_FAILURE_RATE = 0.6

CONSOLE = "dinsos-jatim"
# Officers of the provincial console; the token's user claim names each one (four-eyes rules compare them).
REGISTRAR, PROPOSER, VERIFIER, KABID = "registrar.lumajang", "officer.ani", "officer.bayu", "kabid.linjamsos"
BUDGET_ADMIN, PREPARER, ROUND_APPROVER = "admin.anggaran", "ppk.dewi", "kadis.jatim"
FIELD, PROVINCE_KEEPER, LUMAJANG_KEEPER = "pusdalops.lumajang", "gudang.jatim", "gudang.lumajang"

MALE = ["Ahmad", "Budi", "Slamet", "Agus", "Bambang", "Sugeng", "Joko", "Heru", "Imam", "Rudi", "Wahyu", "Eko", "Sutrisno"]
FEMALE = ["Siti", "Sri", "Dewi", "Nur", "Endang", "Rina", "Wulan", "Lestari", "Sumiati", "Kartini", "Aminah", "Suparmi"]
FAMILY = ["Santoso", "Wibowo", "Hidayat", "Saputra", "Purnomo", "Rahayu", "Setiawan", "Kusuma", "Prasetyo", "Wijaya"]


# -- the scenario's people ------------------------------------------------------------------


@dataclass
class Member:
    name: str
    sex: str
    birth_date: date | None
    relationship: str
    nik: str | None = None
    registered: bool = False  # in the registry before the eruption
    condition: str = "unharmed"
    vulnerabilities: list[str] = field(default_factory=list)
    disabled: bool = False
    at_shelter: bool = False  # staying at the evacuation point
    person_id: str | None = None  # the registry's id, once registered (a provisional record's for the unknown)
    affected_id: str | None = None  # the disaster service's record of this person

    @property
    def alive(self) -> bool:
        return self.condition not in ("dead", "missing")

    @property
    def in_registry(self) -> bool:
        """Registered before, or given a provisional record from the field report (all but the dead)."""
        return self.registered or self.condition != "dead"


@dataclass
class Household:
    index: int
    village: str
    damage: str
    known: bool
    kk: str | None
    members: list[Member]
    id: str | None = None
    version: int = 1

    @property
    def district(self) -> str:
        return self.village.rsplit(".", 1)[0]

    @property
    def displaced(self) -> bool:
        return self.damage in ("moderate", "heavy")

    @property
    def recipient(self) -> Member | None:
        """Who receives the household's cash: its first living member known to the registry
        (the registered head, else the registered wife); in a family the registry did not know,
        the head, once the registry has opened a provisional record for each of them."""
        known = next((m for m in self.members if m.registered and m.alive), None)
        if known is not None or self.known:
            return known
        return next((m for m in self.members if m.relationship == "head" and m.alive), None)

    @property
    def amount(self) -> int:
        return AMOUNTS[self.damage]


def plan_households(tag: str, rng: random.Random) -> list[Household]:
    """200 households: four in five known to the registry (the head, some wives), the rest
    strangers to it; a few injured, one head dead, one parent missing and one dead."""
    used: set[str] = set()

    def nik(district: str, born: date, sex: str) -> str:
        while True:  # random serials keep re-runs in the same databases apart
            value = make_nik(district, born, sex, rng.randint(1000, 9999))
            if value not in used:
                used.add(value)
                return value

    def born(youngest: int, oldest: int) -> date:
        return TODAY - timedelta(days=rng.randint(youngest * 365 + 30, oldest * 365 - 30))

    out = []
    for i in range(HOUSEHOLDS):
        village = VILLAGES[i % len(VILLAGES)]
        district = village.rsplit(".", 1)[0]
        damage = "heavy" if i % 4 == 0 else "light" if i % 10 == 3 else "moderate"
        known = i % 5 != 0
        family, label = rng.choice(FAMILY), f"{tag} {i:03d}"
        head_born = born(25, 70)
        head = Member(f"{rng.choice(MALE)} {family} {label}A", "M", head_born, "head", nik(district, head_born, "M"), registered=known)
        members = [head]
        if known:
            if i % 4 == 1:
                wife_born = born(22, 65)
                members.append(Member(f"{rng.choice(FEMALE)} {family} {label}B", "F", wife_born, "wife", nik(district, wife_born, "F"),
                                      registered=True))
            if i % 8 == 2:  # a child the registry has never heard of
                members.append(Member(f"{rng.choice(MALE + FEMALE)} {family} {label}C", rng.choice("MF"), born(3, 12), "child",
                                      vulnerabilities=["child"]))
        else:
            if i % 10 != 0:
                head.nik = None  # the head's identity card was lost in the ash
            parent_born = born(66, 88) if i % 3 else None
            members.append(Member(f"Mbah {rng.choice(FEMALE)} {family} {label}D", "F", parent_born, "parent", vulnerabilities=["elderly"]))
        if i % 9 == 4:
            head.condition = "injured"
        kk = district.replace(".", "") + f"{rng.randrange(10**10):010d}" if known or i % 10 == 0 else None
        out.append(Household(i, village, damage, known, kk, members))

    # A few fates that change who is registered or paid.
    with_wife = next(h for h in out if h.known and len(h.members) > 1 and h.members[1].relationship == "wife")
    with_wife.members[0].condition = "dead"  # the wife receives the household's cash
    strangers = [h for h in out if not h.known]
    strangers[1].members[1].condition = "missing"  # still gets a provisional record
    strangers[2].members[1].condition = "dead"  # nobody is registered from a report of their death
    wheelchair = next(h for h in out if h.known and h.damage == "heavy" and h.members[0].alive)
    wheelchair.members[0].disabled = True
    wheelchair.members[0].vulnerabilities = ["disabled"]
    for h in out:
        for m in h.members:
            m.at_shelter = h.damage == "heavy" and m.alive
    return out


# -- talking to the platform ----------------------------------------------------------------


async def call(p: Platform, method: str, path: str, *, user: str, expect: int = 200, client: str = CONSOLE, **kwargs) -> Any:
    """One request through the gateway as ``user`` of ``client`` (the console by default)."""
    response = await p.call(method, path, headers=await p.headers(client, user=user), expect=expect, **kwargs)
    return response.json() if response.content else None


async def wait(p: Platform, check, *, what: str, services: Iterable[str], timeout: float = 60, interval: float = 1) -> Any:
    """``converge``, naming the logs of the services involved when it times out."""
    try:
        return await converge(check, timeout=timeout, interval=interval, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; logs: {p.logs(*services)}") from None


async def pages(p: Platform, path: str, *, user: str, params: dict | None = None, limit: int = 500) -> list[dict]:
    """Every item of a cursor-paginated list, read as ``user`` of the console."""
    return await p.all_pages(path, headers=await p.headers(CONSOLE, user=user), params=params, limit=limit)


# -- the incident, recorded once for the module's tests -----------------------------------------


@dataclass
class Eruption:
    tag: str
    households: list[Household]
    incident: dict
    point: dict
    round: dict
    relief: dict
    regular: dict  # the round's regular payee (not affected)
    headcount: dict
    reassessed: int
    timings: dict[str, float]

    @property
    def members(self) -> list[Member]:
        return [m for h in self.households for m in h.members]


async def _register(p: Platform, h: Household, m: Member) -> None:
    body = {"nik": m.nik, "name": m.name, "sex": m.sex, "birth_date": m.birth_date.isoformat(), "village_code": h.village,
            "kk_number": h.kk, "relationship": m.relationship, "rt": "3", "rw": "1"}
    if m.disabled:
        body.update(disability_type="physical", disability_severity="severe")
    person = await call(p, "POST", "/v1/registry/persons", user=REGISTRAR, json=body, expect=201)
    assert person["provisional_id"] is None and person["nik_masked"]
    m.person_id = person["id"]


async def _open_round(p: Platform, tag: str) -> tuple[dict, dict]:
    """A disbursing emergency-cash round paid through the bank: a programme in the registry
    and in disbursement, one regular beneficiary enrolled (four eyes), a budget, a round
    prepared, approved under a decree by another officer, and disbursed."""
    code = f"SANTUNAN_{tag}"
    await call(p, "POST", "/v1/registry/programmes", user=BUDGET_ADMIN, expect=201,
               json={"code": code, "name": f"Santunan korban bencana {tag}", "amount_per_stage": REGULAR_AMOUNT})
    born = date(1961, 3, 14)
    regular = await call(p, "POST", "/v1/registry/persons", user=REGISTRAR, expect=201, json={
        "nik": make_nik(REGULAR_VILLAGE.rsplit(".", 1)[0], born, "F", random.Random(tag).randint(1000, 9999)),
        "name": f"Sumiati Rahayu {tag} R", "sex": "F", "birth_date": born.isoformat(), "village_code": REGULAR_VILLAGE})
    enrolment = await call(p, "POST", "/v1/registry/enrolments", user=PROPOSER, expect=201,
                           json={"person_id": regular["id"], "programme_code": code})
    await call(p, "POST", f"/v1/registry/enrolments/{enrolment['id']}/verify", user=VERIFIER)
    await call(p, "POST", f"/v1/registry/enrolments/{enrolment['id']}/approve", user=KABID)

    await call(p, "POST", "/v1/disbursement/programmes", user=BUDGET_ADMIN, expect=201,
               json={"code": code, "name": f"Santunan korban bencana {tag}", "default_channel": "bank"})
    await call(p, "PUT", f"/v1/disbursement/programmes/{code}/budgets/{TODAY.year}", user=BUDGET_ADMIN, json={"amount": 2_000_000_000})

    async def enrolled():
        page = await call(p, "GET", "/v1/disbursement/population/enrolments", user=PREPARER, params={"programme_code": code})
        return [e for e in page["items"] if e["status"] == "active"]

    await wait(p, enrolled, what="the approved enrolment to reach disbursement", services=["registry", "disbursement"])
    rnd = await call(p, "POST", "/v1/disbursement/rounds", user=PREPARER, expect=201, json={
        "programme_code": code, "year": TODAY.year, "stage": 1, "name": "Santunan erupsi Semeru", "amount": REGULAR_AMOUNT,
        "ceiling": CEILING, "period_start": TODAY.isoformat(), "period_end": (TODAY + timedelta(days=90)).isoformat(), "channel": "bank"})
    rnd = await call(p, "POST", f"/v1/disbursement/rounds/{rnd['id']}/snapshot", user=PREPARER)
    assert rnd["payee_count"] == 1, rnd
    rnd = await call(p, "POST", f"/v1/disbursement/rounds/{rnd['id']}/approve", user=ROUND_APPROVER,
                     json={"sk_number": f"188/{tag}/KPTS/013/{TODAY.year}", "snapshot_version": rnd["snapshot_version"]})
    rnd = await call(p, "POST", f"/v1/disbursement/rounds/{rnd['id']}/disburse", user=PREPARER)
    assert rnd["status"] == "disbursing"
    return rnd, regular


async def _relief_programme(p: Platform, tag: str, rnd: dict) -> dict:
    """The relief programme that pays Lumajang's natural disasters from this round. The
    earliest active programme matching an incident pays, so earlier ones that would match
    (left by other scenarios of this run) are stopped first, as the province would."""
    for other in await call(p, "GET", "/v1/disbursement/relief-programmes", user=BUDGET_ADMIN):
        matches = (not other["incident_categories"] or "natural" in other["incident_categories"]) and \
                  (not other["regency_codes"] or LUMAJANG in other["regency_codes"])
        if other["active"] and matches:
            await call(p, "PATCH", f"/v1/disbursement/relief-programmes/{other['id']}", user=BUDGET_ADMIN,
                       json={"version": other["version"], "active": False})
    return await call(p, "POST", "/v1/disbursement/relief-programmes", user=BUDGET_ADMIN, expect=201, json={
        "name": f"Santunan erupsi Semeru {tag}", "round_id": rnd["id"], "incident_categories": ["natural"], "regency_codes": [LUMAJANG],
        "amount_light": AMOUNTS["light"], "amount_moderate": AMOUNTS["moderate"], "amount_heavy": AMOUNTS["heavy"]})


async def _assess(p: Platform, incident_id: str, point_id: str, h: Household) -> dict:
    members = []
    for m in h.members:
        body = {"name": m.name, "sex": m.sex, "relationship": m.relationship, "condition": m.condition, "vulnerabilities": m.vulnerabilities}
        if m.nik:
            body["nik"] = m.nik
        if m.birth_date:
            body["birth_date"] = m.birth_date.isoformat()
        if m.at_shelter:
            body["evacuation_point_id"] = point_id
        members.append(body)
    body = {"village_code": h.village, "damage_level": h.damage, "displaced": h.displaced, "members": members}
    if h.kk:
        body["kk_number"] = h.kk
    out = await call(p, "POST", f"/v1/disaster/incidents/{incident_id}/households", user=FIELD, json=body, expect=201)
    h.id, h.version = out["id"], out["version"]
    by_name = {r["name"]: r for r in out["members"]}
    for m in h.members:
        m.affected_id = by_name[m.name]["id"]
        assert by_name[m.name]["nik_known"] == (m.nik is not None)
    return out


@pytest.fixture(scope="module")
async def eruption(platform: Platform):
    timings: dict[str, float] = {}
    started = time.monotonic()
    tag = "SMR" + uuid.uuid4().hex[:6].upper()
    households = plan_households(tag, random.Random(tag))
    p = platform

    # Before the eruption: the registry knows most of these families (heads first: they open the KK).
    known = [(h, m) for h in households for m in h.members if m.registered]
    await in_parallel(_register(p, h, m) for h, m in known if m.relationship == "head")
    await in_parallel(_register(p, h, m) for h, m in known if m.relationship != "head")
    timings["register"] = time.monotonic() - started

    rnd, regular = await _open_round(p, tag)
    relief = await _relief_programme(p, tag, rnd)
    timings["round"] = time.monotonic() - started
    bank = p.url("banksim")
    usual = (await p.http.get(f"{bank}/v1/config")).json()["failure_rate"]
    (await p.http.put(f"{bank}/v1/config", json={"failure_rate": BAD_DAY_FAILURE_RATE})).raise_for_status()
    try:
        scenario = await _assess_incident(p, tag, households, rnd, relief, regular, timings, started)
        yield scenario
    finally:
        (await p.http.put(f"{bank}/v1/config", json={"failure_rate": usual})).raise_for_status()
        # Stop this scenario's relief programme: later incidents in Lumajang are not paid from its round.
        for programme in await call(p, "GET", "/v1/disbursement/relief-programmes", user=BUDGET_ADMIN):
            if programme["id"] == relief["id"] and programme["active"]:
                await call(p, "PATCH", f"/v1/disbursement/relief-programmes/{relief['id']}", user=BUDGET_ADMIN,
                           json={"version": programme["version"], "active": False})


async def _assess_incident(p: Platform, tag: str, households: list[Household], rnd: dict, relief: dict, regular: dict,
                           timings: dict[str, float], started: float) -> Eruption:
    """The eruption itself: the incident declared, a shelter opened, every household assessed."""
    # The regent declares the emergency response; the field team opens a shelter and assesses.
    started_on = TODAY - timedelta(days=3)
    incident = await call(p, "POST", "/v1/disaster/incidents", user=FIELD, expect=201, json={
        "name": f"Erupsi Gunung Semeru {tag}", "category": "natural", "hazard": "eruption", "regency_codes": [LUMAJANG],
        "district_codes": [PRONOJIWO, CANDIPURO], "started_on": started_on.isoformat(), "status": "emergency_response",
        "decree_number": f"188/{tag}/KPTS/427.12/{TODAY.year}", "authority": "regent", "effective_from": started_on.isoformat(),
        "effective_until": (TODAY + timedelta(days=14)).isoformat(),
        "description": "Awan panas guguran; abu vulkanik di Pronojiwo dan Candipuro"})
    point = await call(p, "POST", f"/v1/disaster/incidents/{incident['id']}/evacuation-points", user=FIELD, expect=201, json={
        "name": f"Balai Desa Penanggal {tag}", "village_code": SHELTER_VILLAGE, "capacity": 400, "opened_on": started_on.isoformat()})
    # Assessments of one incident queue on its row lock, so a few tablets at a time are plenty.
    assessed = await in_parallel((_assess(p, incident["id"], point["id"], h) for h in households), limit=3)
    timings["assess"] = time.monotonic() - started

    # The disaster service matches people by NIK against its copy of the registry's persons.
    # Should an assessment have outrun that copy, the registry's late event links the person
    # afterwards. The persons the registry did not know get provisional records, whose events
    # name the affected person: the disaster service links them too, and a household that now
    # has a recipient is announced again (its next version), so its emergency cash is paid.
    registered = [m for h in households for m in h.members if m.registered]
    linked = [m for h in households for m in h.members if m.in_registry]

    async def all_matched():
        rows = {r["id"]: r for r in await pages(p, f"/v1/disaster/incidents/{incident['id']}/persons", user=FIELD)}
        if not all(rows[m.affected_id]["person_id"] == m.person_id for m in registered):
            return None
        if not all(rows[m.affected_id]["person_id"] for m in linked):
            return None
        return rows

    rows = await wait(p, all_matched, timeout=120, interval=2, what="every person in the registry to be linked in the disaster service",
                      services=["registry", "disaster"])
    for m in linked:
        m.person_id = rows[m.affected_id]["person_id"]

    async def recipients_chosen():
        current = {r["id"]: r for r in await pages(p, f"/v1/disaster/incidents/{incident['id']}/households", user=FIELD)}
        ok = all(current[h.id]["recipient_person_id"] == (h.recipient.person_id if h.recipient else None) for h in households)
        return current if ok else None

    current = await wait(p, recipients_chosen, what="every household's recipient to be chosen", services=["registry", "disaster"])
    reassessed = 0
    for h in households:
        if current[h.id]["version"] != h.version:
            h.version = current[h.id]["version"]
            reassessed += 1

    at_shelter = [m for h in households for m in h.members if m.at_shelter]
    headcount = {"total": len(at_shelter), "elderly": sum("elderly" in m.vulnerabilities for m in at_shelter),
                 "disabled": sum("disabled" in m.vulnerabilities for m in at_shelter),
                 "children": sum("child" in m.vulnerabilities for m in at_shelter), "pregnant": 0}
    await call(p, "POST", f"/v1/disaster/evacuation-points/{point['id']}/headcounts", user=FIELD, expect=201,
               json={"reported_at": datetime.now(UTC).isoformat(), **headcount})
    timings["matched"] = time.monotonic() - started
    print(f"\neruption {tag}: {len(households)} households, {sum(len(h.members) for h in households)} persons, "
          f"{len(registered)} registered first, {reassessed} announced again after a late match; set up in "
          + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    return Eruption(tag, households, incident, point, rnd, relief, regular, headcount, reassessed, timings)


# -- the registry ---------------------------------------------------------------------------


async def test_registry_flags_the_known_and_opens_one_provisional_record_per_unknown_person(platform: Platform, eruption: Eruption):
    p = platform
    known = {m.name: m for m in eruption.members if m.registered}
    strangers = {m.name: m for m in eruption.members if not m.registered and m.condition != "dead"}
    dead_strangers = [m.name for m in eruption.members if not m.registered and m.condition == "dead"]
    village_of = {m.name: h.village for h in eruption.households for m in h.members}
    assert len(known) == 200 and len(strangers) == 99 and len(dead_strangers) == 1

    async def victims():
        rows = await pages(p, "/v1/registry/persons", user=REGISTRAR, params={"regency_code": LUMAJANG, "ppks": "korban_bencana_alam"})
        mine = [r for r in rows if eruption.tag in r["name"]]
        ids = {r["name"]: r["id"] for r in mine}
        flagged = all(ids.get(name) == m.person_id for name, m in known.items())
        return mine if flagged and set(strangers) <= set(ids) else None

    records = await wait(p, victims, timeout=120, interval=2, what="the registry to flag the known and register the unknown",
                         services=["disaster", "registry"])
    # One record per person: the known keep theirs (no provisional twin), the unknown get one each.
    assert Counter(r["name"] for r in records) == Counter({**{n: 1 for n in known}, **{n: 1 for n in strangers}})
    for r in records:
        if r["name"] in known:
            m = known[r["name"]]
            assert (r["provisional_id"], r["nik_masked"], r["status"]) == (None, True, "active"), r
            assert r["nik"] is not None and r["nik"][:4] == m.nik[:4] and "*" in r["nik"]
        else:
            m = strangers[r["name"]]
            assert r["provisional_id"].startswith("PRV-") and r["nik"] is None, r
            assert (r["sex"], r["village_code"], r["regency_code"]) == (m.sex, village_of[m.name], LUMAJANG)
            assert r["birth_date"] == (m.birth_date.isoformat() if m.birth_date else None)
    # A head reported dead by the field team is only flagged: a death is recorded on a certificate.
    dead_head = next(m for m in eruption.members if m.registered and m.condition == "dead")
    person = await call(p, "GET", f"/v1/registry/persons/{dead_head.person_id}", user=REGISTRAR)
    assert person["status"] == "active" and "korban_bencana_alam" in person["ppks"]
    # The NIK of a stranger stays unknown to the registry (the provisional record shows none),
    # but its hash is kept: a lookup by that NIK finds the provisional record.
    stranger_with_nik = next(m for m in eruption.members if not m.registered and m.nik)
    headers = await p.headers(CONSOLE, user=REGISTRAR)
    r = await p.http.post("/v1/registry/persons/lookup", json={"nik": stranger_with_nik.nik}, headers=headers)
    assert r.status_code == 200, r.text
    assert (r.json()["id"], r.json()["nik"], r.json()["provisional_id"][:4]) == (stranger_with_nik.person_id, None, "PRV-")


# -- emergency cash -------------------------------------------------------------------------


async def test_emergency_cash_is_paid_once_per_eligible_household(platform: Platform, eruption: Eruption):
    p = platform
    rnd = eruption.round
    grants_due = {h.id: h for h in eruption.households if h.amount > 0}
    payable = {h.id: h for h in grants_due.values() if h.recipient is not None}
    assert (len(grants_due), len(payable)) == (180, 180)  # the strangers' households too, once their heads are linked

    def as_expected(g: dict) -> bool:
        h = grants_due.get(g["household_id"])
        if h is None or g["amount"] != h.amount:
            return False
        if h.recipient is None:
            return (g["status"], g["reason"], g["person_id"]) == ("held", "recipient_unknown", None)
        return (g["status"], g["person_id"]) == ("paid", h.recipient.person_id) and g["payment_id"] is not None

    async def grants():
        rows = await call(p, "GET", "/v1/disbursement/relief-grants", user=PREPARER,
                          params={"incident_id": eruption.incident["id"], "limit": 5000})
        return rows if len(rows) == len(grants_due) and all(as_expected(g) for g in rows) else None

    rows = await wait(p, grants, timeout=120, what="one relief grant per household the programme pays", services=["disaster", "disbursement"])
    assert len({g["household_id"] for g in rows}) == len(rows)  # lightly damaged houses: no grant at all
    paid = {g["household_id"]: g for g in rows if g["status"] == "paid"}
    assert set(paid) == set(payable)

    # The bank pays; what it fails, the preparer sends again, until nothing is left to retry.
    expected_count = 1 + len(paid)
    expected_amount = REGULAR_AMOUNT + sum(h.amount for h in payable.values())

    async def settled():
        t = await call(p, "GET", f"/v1/disbursement/rounds/{rnd['id']}/totals", user=PREPARER)
        return t if t["payment_count"] == expected_count and t["queued_count"] == t["sent_count"] == 0 else None

    retried = 0
    for _ in range(5):
        totals = await wait(p, settled, timeout=120, what="the bank to report on every payment of the round",
                            services=["disbursement", "banksim"])
        if totals["failed_count"] == 0:
            break
        queued = (await call(p, "POST", f"/v1/disbursement/rounds/{rnd['id']}/retry-failed", user=PREPARER))["queued"]
        assert queued == totals["failed_count"]
        retried += queued
    assert (totals["paid_count"], totals["failed_count"], totals["cancelled_count"]) == (expected_count, 0, 0), totals
    assert totals["paid_amount"] == totals["committed"] == expected_amount
    assert totals["remaining_budget"] == CEILING - expected_amount

    # Exactly one payment per paid household, to its recipient, of its damage level's amount.
    payments = await pages(p, "/v1/disbursement/payments", user=PREPARER, params={"round_id": rnd["id"]}, limit=1000)
    by_id = {x["id"]: x for x in payments}
    assert len(payments) == expected_count
    assert Counter(x["person_id"] for x in payments).most_common(1)[0][1] == 1
    for household_id, g in paid.items():
        payment = by_id[g["payment_id"]]
        h = payable[household_id]
        assert (payment["person_id"], payment["amount"], payment["status"], payment["channel"], payment["regency_code"]) == \
               (h.recipient.person_id, h.amount, "succeeded", "bank", LUMAJANG), payment
    regular = next(x for x in payments if x["person_id"] == eruption.regular["id"])
    assert (regular["amount"], regular["status"]) == (REGULAR_AMOUNT, "succeeded")
    # Retried payments kept their history: failed attempts, then the one that paid.
    again = [x for x in payments if x["attempt"] > 1]
    assert retried > 0 and len(again) == totals["retried_count"]
    assert sum(x["attempt"] - 1 for x in again) == retried  # every retry the preparer asked for, and no other
    for detail in await in_parallel(call(p, "GET", f"/v1/disbursement/payments/{x['id']}", user=PREPARER) for x in again):
        outcomes = [a["outcome"] for a in detail["attempts"]]
        assert outcomes == ["failed"] * (len(outcomes) - 1) + ["succeeded"], detail

    # The registry learns of each payment: the recipients' aid history shows it, paid once.
    first_time = [x for x in payments if x["attempt"] == 1 and x["id"] != regular["id"]]
    sample = first_time[:5] + again[:5] + [regular]

    async def aid_histories():
        for x in sample:
            items = (await call(p, "GET", f"/v1/registry/persons/{x['person_id']}/aid-history", user=REGISTRAR))["items"]
            mine = [i for i in items if i["round_id"] == rnd["id"]]
            if [(i["payment_id"], i["status"], i["amount"], i["attempt"]) for i in mine] != [(x["id"], "succeeded", x["amount"], x["attempt"])]:
                return None
        return True

    await wait(p, aid_histories, timeout=90, what="the payments to show in the registry's aid history", services=["disbursement", "registry"])

    # The households nobody knew were held first and paid when announced again with a recipient
    # (issue 12: they stayed held for good), each to its head's provisional record.
    strangers = [h for h in payable.values() if not h.known]
    assert len(strangers) == 40
    for h in strangers:
        g = paid[h.id]
        assert g["household_version"] >= 2 and g["person_id"] == h.members[0].person_id, g
        assert by_id[g["payment_id"]]["person_id"] == h.members[0].person_id
    print(f"\nemergency cash: {len(paid)} households paid, {len(rows) - len(paid)} held, {retried} payment(s) retried after the bank failed them")


# -- buffer stock ---------------------------------------------------------------------------


async def _stock(p: Platform, warehouse_id: str) -> dict[str, int]:
    rows = await call(p, "GET", f"/v1/disaster/warehouses/{warehouse_id}/stock", user=PROVINCE_KEEPER)
    return {r["item_code"]: r["on_hand"] for r in rows if r["on_hand"]}


async def test_buffer_stock_is_shipped_received_and_handed_out_to_the_unit(platform: Platform, eruption: Eruption):
    p = platform
    tag, incident = eruption.tag, eruption.incident
    province = await call(p, "POST", "/v1/disaster/warehouses", user=PROVINCE_KEEPER, expect=201,
                          json={"code": f"WH-JATIM-{tag}", "name": "Gudang Dinsos Provinsi Jawa Timur", "level": "province"})
    lumajang = await call(p, "POST", "/v1/disaster/warehouses", user=PROVINCE_KEEPER, expect=201,
                          json={"code": f"WH-LMJ-{tag}", "name": "Gudang Dinsos Kabupaten Lumajang", "level": "regency",
                                "regency_code": LUMAJANG})
    received = {"family_kit": 120, "blanket": 600, "wheelchair": 4}
    await call(p, "POST", f"/v1/disaster/warehouses/{province['id']}/receipts", user=PROVINCE_KEEPER, expect=201, json={
        "received_on": TODAY.isoformat(), "source": f"APBD Jatim {TODAY.year}", "reference": f"BAST/{tag}",
        "lines": [{"item_code": k, "quantity": v} for k, v in received.items()]})
    assert await _stock(p, province["id"]) == received

    # Lumajang asks for goods; the one who asked may not approve, another officer does.
    wanted = {"family_kit": 60, "blanket": 400, "wheelchair": 2}
    rq = await call(p, "POST", f"/v1/disaster/incidents/{incident['id']}/stock-requests", user=LUMAJANG_KEEPER, expect=201, json={
        "from_warehouse_id": province["id"], "to_warehouse_id": lumajang["id"], "note": "untuk pengungsi erupsi Semeru",
        "lines": [{"item_code": k, "quantity": v} for k, v in wanted.items()]})
    await call(p, "POST", f"/v1/disaster/stock-requests/{rq['id']}/approve", user=LUMAJANG_KEEPER, expect=403, json={"version": rq["version"]})
    rq = await call(p, "POST", f"/v1/disaster/stock-requests/{rq['id']}/approve", user=KABID, json={"version": rq["version"]})
    assert (rq["status"], rq["requested_by"], rq["approved_by"]) == ("approved", LUMAJANG_KEEPER, KABID)
    assert await _stock(p, province["id"]) == received  # approval reserves nothing

    rq = await call(p, "POST", f"/v1/disaster/stock-requests/{rq['id']}/ship", user=PROVINCE_KEEPER, json={"version": rq["version"]})
    assert rq["status"] == "shipped"
    shipped = Counter()
    for line in rq["shipment"]:
        shipped[line["item_code"]] += line["quantity"]
    assert dict(shipped) == wanted
    left = {k: received[k] - wanted[k] for k in received}
    assert await _stock(p, province["id"]) == left
    assert await _stock(p, lumajang["id"]) == {}  # on the road
    rq = await call(p, "POST", f"/v1/disaster/stock-requests/{rq['id']}/receive", user=LUMAJANG_KEEPER, json={"version": rq["version"]})
    assert (rq["status"], rq["received_by"]) == ("received", LUMAJANG_KEEPER)
    assert await _stock(p, lumajang["id"]) == wanted

    # A second request for more family kits than the province has left: approved, but the
    # shipment is refused and moves nothing; Lumajang withdraws it.
    greedy = await call(p, "POST", f"/v1/disaster/incidents/{incident['id']}/stock-requests", user=LUMAJANG_KEEPER, expect=201, json={
        "from_warehouse_id": province["id"], "to_warehouse_id": lumajang["id"], "lines": [{"item_code": "family_kit", "quantity": 100}]})
    greedy = await call(p, "POST", f"/v1/disaster/stock-requests/{greedy['id']}/approve", user=KABID, json={"version": greedy["version"]})
    refused = await call(p, "POST", f"/v1/disaster/stock-requests/{greedy['id']}/ship", user=PROVINCE_KEEPER, expect=409,
                         json={"version": greedy["version"]})
    assert {e["rule"] for e in refused["errors"]} == {"stock.insufficient"}
    assert await _stock(p, province["id"]) == left
    greedy = await call(p, "POST", f"/v1/disaster/stock-requests/{greedy['id']}/cancel", user=LUMAJANG_KEEPER,
                        json={"version": greedy["version"], "reason": "stok provinsi tidak cukup"})
    assert greedy["status"] == "cancelled"

    # Hand-outs: a family kit to every heavily damaged household, blankets at the shelter,
    # a wheelchair to the disabled head of family (a registry person).
    heavy = [h for h in eruption.households if h.damage == "heavy"]
    distribute = f"/v1/disaster/incidents/{incident['id']}/distributions"
    await in_parallel(call(p, "POST", distribute, user=LUMAJANG_KEEPER, expect=201, json={
        "warehouse_id": lumajang["id"], "household_id": h.id, "distributed_on": TODAY.isoformat(),
        "lines": [{"item_code": "family_kit", "quantity": 1}]}) for h in heavy)
    await call(p, "POST", distribute, user=LUMAJANG_KEEPER, expect=201, json={
        "warehouse_id": lumajang["id"], "evacuation_point_id": eruption.point["id"], "distributed_on": TODAY.isoformat(),
        "lines": [{"item_code": "blanket", "quantity": 300}]})
    disabled = next(m for m in eruption.members if m.disabled)
    await call(p, "POST", distribute, user=LUMAJANG_KEEPER, expect=201, json={
        "warehouse_id": lumajang["id"], "affected_person_id": disabled.affected_id, "distributed_on": TODAY.isoformat(),
        "lines": [{"item_code": "wheelchair", "quantity": 1}]})
    handed = {"family_kit": len(heavy), "blanket": 300, "wheelchair": 1}
    remaining = {k: wanted[k] - handed[k] for k in wanted}
    assert await _stock(p, lumajang["id"]) == remaining
    # More blankets than are left: refused, nothing moves.
    r = await call(p, "POST", distribute, user=LUMAJANG_KEEPER, expect=409, json={
        "warehouse_id": lumajang["id"], "evacuation_point_id": eruption.point["id"], "distributed_on": TODAY.isoformat(),
        "lines": [{"item_code": "blanket", "quantity": remaining["blanket"] + 1}]})
    assert {e["rule"] for e in r["errors"]} == {"stock.insufficient"}
    assert await _stock(p, lumajang["id"]) == remaining
    assert await _stock(p, province["id"]) == left

    devices = await call(p, "GET", "/v1/disaster/assistive-devices", user=FIELD, params={"person_id": disabled.person_id})
    assert [(d["item_code"], d["quantity"]) for d in devices] == [("wheelchair", 1)]
    records = await call(p, "GET", distribute, user=FIELD)
    assert len(records) == len(heavy) + 2
    assert {h.id for h in heavy} == {d["household_id"] for d in records if d["household_id"]}


# -- statistics -----------------------------------------------------------------------------


async def test_incident_statistics_agree_with_the_records(platform: Platform, eruption: Eruption):
    p = platform
    incident_id = eruption.incident["id"]
    stats = await call(p, "GET", f"/v1/disaster/incidents/{incident_id}/statistics", user=FIELD)
    households = await pages(p, f"/v1/disaster/incidents/{incident_id}/households", user=FIELD)
    persons = await pages(p, f"/v1/disaster/incidents/{incident_id}/persons", user=FIELD)
    distributions = await call(p, "GET", f"/v1/disaster/incidents/{incident_id}/distributions", user=FIELD)
    requests = await call(p, "GET", f"/v1/disaster/incidents/{incident_id}/stock-requests", user=FIELD)

    # The records are the scenario's...
    plan = eruption.households
    assert len(households) == len(plan) and len(persons) == len(eruption.members)
    assert Counter(h["damage_level"] for h in households) == Counter(h.damage for h in plan)
    assert sum(1 for r in persons if r["person_id"]) == sum(1 for m in eruption.members if m.in_registry)
    # ...and the statistics are the records'.
    damage = Counter(h["damage_level"] for h in households)
    assert stats["status"] == "emergency_response"
    assert stats["households"] == {
        "households": len(households), "household_members": sum(h["member_count"] for h in households),
        "displaced_households": sum(h["displaced"] for h in households),
        "light": damage["light"], "moderate": damage["moderate"], "heavy": damage["heavy"]}
    condition = Counter(r["condition"] for r in persons)
    flags = Counter(v for r in persons for v in r["vulnerabilities"])
    assert stats["persons"] == {
        "persons": len(persons), "displaced": sum(r["displaced"] for r in persons), "dead": condition["dead"],
        "missing": condition["missing"], "injured": condition["injured"],
        "matched_to_registry": sum(1 for r in persons if r["person_id"]), "elderly": flags["elderly"], "disabled": flags["disabled"],
        "children": flags["child"], "pregnant": flags["pregnant"]}
    assert stats["casualties"] == {"dead": 2, "missing": 1, "injured": sum(1 for m in eruption.members if m.condition == "injured")}
    assert stats["displaced"] == stats["persons"]["displaced"] == sum(len(h.members) for h in plan if h.displaced)

    at_point = [r for r in persons if r["evacuation_point_id"] == eruption.point["id"]]
    assert len(at_point) == eruption.headcount["total"]
    evacuation = stats["evacuation"]
    assert (evacuation["points"], evacuation["open_points"], evacuation["open_capacity"]) == (1, 1, 400)
    assert (evacuation["headcount"], evacuation["elderly"], evacuation["children"], evacuation["disabled"]) == (
        eruption.headcount["total"], eruption.headcount["elderly"], eruption.headcount["children"], eruption.headcount["disabled"])

    handed, handouts = Counter(), Counter()
    for d in distributions:
        for line in d["lines"]:
            handed[line["item_code"]] += line["quantity"]
            handouts[line["item_code"]] += 1
    assert {s["item_code"]: (s["quantity"], s["distributions"]) for s in stats["stock_distributed"]} == \
           {k: (handed[k], handouts[k]) for k in handed}
    shipped = Counter()
    for rq in requests:
        for line in rq["shipment"]:
            shipped[line["item_code"]] += line["quantity"]
    assert {s["item_code"]: s["quantity"] for s in stats["stock_shipped"]} == dict(shipped)

    # A regency office elsewhere (Sidoarjo's token) does not see Lumajang's incident at all.
    await call(p, "GET", f"/v1/disaster/incidents/{incident_id}/statistics", user="officer.sidoarjo", client="dinsos-sidoarjo", expect=404)
