"""Demo data beyond the registry's persons: a platform that looks in use, never real people.

What :func:`seed_demo_data` puts in place, through each service's own HTTP API with
development tokens (the same way an agency's client would):

* registry and disbursement: the programmes PKH Plus, ASPD, PKE and BLT DBHCHT (the
  migrations usually created them already) and their budgets for the current year; a few
  enrolment proposals (proposed, not approved) for demo persons who meet the rules;
* shelter: UPT shelters for women and for children with caseworkers and supervisors, and a
  few open cases of fictional survivors (pseudonyms, as the press uses them);
* homeless-return: stranded persons at different steps of their way home;
* disaster: warehouses with stock, minimum levels, Tagana volunteers in every regency, and
  one flood being handled (affected households, an evacuation point, deployments, a
  shipment on its way, goods handed out).

Running it again changes nothing. Every record has a deterministic identity: a natural key
the service refuses twice (409: counted as present), a list compared before creating, or an
``Idempotency-Key`` (the service replays the first answer; a key reused with another body,
which happens when a date in the body moved on since the first run, also means present).
Later steps of a case (an assessment, a verification...) run only while the case is still in
the state the seeder left it in, so nothing an operator did since is undone or repeated.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import httpx

from pilar_kernel import regions
from pilar_kernel.auth import SigningKey
from pilar_kernel.http import async_client
from pilar_kernel.nik import make_nik

from .seed import FAMILY, FEMALE, MALE, Tally, _households

SUBJECT = "pilar-demo-seeder"
KEY_PREFIX = "pilar-demo/"
WIB = timezone(timedelta(hours=7))  # the agency's clock (Western Indonesia Time)

# Scopes of the seeder's tokens, per service.
REGISTRY = ["registry:read", "registry:write", "registry:programme-admin"]
DISBURSEMENT = ["disbursement:read", "disbursement:programme-admin"]
SHELTER_ADMIN = ["shelter:admin"]
RETURNS = ["homeless-return:read", "homeless-return:write", "homeless-return:verify"]
DISASTER = ["disaster:read", "disaster:write", "disaster:admin"]
DISASTER_APPROVER = ["disaster:read", "disaster:approve"]


# -- programmes and budgets ---------------------------------------------------------------

# As the registry holds them (eligibility rules are data; see shared/domain/README.md).
REGISTRY_PROGRAMMES = [
    {"code": "PKH_PLUS", "name": "PKH Plus Jawa Timur",
     "description": "Cash support for the elderly (lansia): age 70 or more, DTSEN decile 1-4, one per family card.",
     "rules": {"min_age": 70, "max_decile": 4, "one_per_household": True}, "amount_per_stage": None, "provincial": True},
    {"code": "ASPD", "name": "Asistensi Sosial Penyandang Disabilitas (ASPD)",
     "description": "Cash for people with severe disability or bedridden, aged 6 months to 60 years, decile 1-5 first; 4 stages a year (2026).",
     "rules": {"min_age_months": 6, "max_age": 60, "max_decile": 5, "disability_severities": ["bedridden", "severe"]},
     "amount_per_stage": 900_000, "provincial": True},
    {"code": "PKE", "name": "Penanganan Kemiskinan Ekstrem (PKE)",
     "description": "Productive-business grant for extreme poverty (decile 1), paid once.",
     "rules": {"max_decile": 1}, "amount_per_stage": 1_500_000, "provincial": False},
    {"code": "BLT_DBHCHT", "name": "BLT DBHCHT",
     "description": "Cash for cigarette/tobacco-factory workers, funded by the tobacco excise revenue share (2025).",
     "rules": {"requires_occupation": True, "occupation_keywords": ["cigarette", "kretek", "rokok", "sigaret", "tembakau", "tobacco"]},
     "amount_per_stage": 1_325_900, "provincial": True},
]

# As disbursement pays them: provincial programmes exclude one another (no double provincial aid).
DISBURSEMENT_PROGRAMMES = [
    {"code": "PKH_PLUS", "name": "PKH Plus Jawa Timur", "provincial": True, "exclusive_with": ["ASPD", "BLT_DBHCHT"], "default_channel": "bank"},
    {"code": "ASPD", "name": "Asistensi Sosial Penyandang Disabilitas (ASPD)", "provincial": True, "exclusive_with": ["BLT_DBHCHT", "PKH_PLUS"],
     "default_channel": "bank"},
    {"code": "PKE", "name": "Penanganan Kemiskinan Ekstrem (PKE)", "provincial": False, "exclusive_with": [], "default_channel": "bank"},
    {"code": "BLT_DBHCHT", "name": "BLT DBHCHT", "provincial": True, "exclusive_with": ["ASPD", "PKH_PLUS"], "default_channel": "bank"},
]

# Yearly budget = amount per payment x beneficiaries x stages. ASPD, PKE and BLT DBHCHT use the
# domain reference's figures; PKH Plus has no published amount, so its figures are illustrative.
BUDGETS = {
    "PKH_PLUS": (500_000, 10_000, 4),
    "ASPD": (900_000, 5_000, 4),
    "PKE": (1_500_000, 3_000, 1),
    "BLT_DBHCHT": (1_325_900, 15_000, 1),
}

ENROLMENT_PROPOSALS = {"PKH_PLUS": 4, "ASPD": 3, "PKE": 3}  # open proposals, one regency each
PROPOSING_OFFICER = "petugas.dinsos"


# -- shelters ------------------------------------------------------------------------------

SHELTERS = [
    {"name": "UPT Perlindungan Perempuan Surabaya", "kind": "women", "regency_code": "35.78", "capacity": 30,
     "staff": [("cw.rina", "Rina Kusumawati", "caseworker"), ("cw.dewi", "Dewi Anggraini", "caseworker"),
               ("spv.hartini", "Hartini Wibowo", "supervisor")]},
    {"name": "UPT Perlindungan Perempuan Kediri", "kind": "women", "regency_code": "35.06", "capacity": 20,
     "staff": [("cw.wulan", "Wulan Sari", "caseworker"), ("spv.endang", "Endang Purnomo", "supervisor")]},
    {"name": "UPT Perlindungan Anak Sidoarjo", "kind": "children", "regency_code": "35.15", "capacity": 24,
     "staff": [("cw.fitri", "Fitri Handayani", "caseworker"), ("cw.yusuf", "Yusuf Hidayat", "caseworker"),
               ("spv.sumiati", "Sumiati Rahayu", "supervisor")]},
    {"name": "UPT Perlindungan Anak Jember", "kind": "children", "regency_code": "35.09", "capacity": 20,
     "staff": [("cw.lestari", "Lestari Utomo", "caseworker"), ("spv.kartini", "Kartini Setiawan", "supervisor")]},
]

_SYNTHETIC = "Data demo: orang fiktif, bukan data orang sungguhan."


def _shelter_cases(today: date) -> list[dict[str, Any]]:
    """Open cases of fictional survivors. Names are pseudonyms (nama samaran), so nobody can
    mistake them for a real person; ``steps`` walk each case to where it is "now"."""
    return [
        {"key": "shelter-case/surabaya-1", "caseworker": "cw.rina", "steps": ["assessment", "incident", "admission"],
         "body": {"survivor": {"name": "Mawar (nama samaran)", "birth_date": date(today.year - 31, 4, 12).isoformat(), "sex": "F",
                               "regency_code": "35.78", "address": "Dirahasiakan", "notes": _SYNTHETIC},
                  "referral_source": "police", "referral_note": "Dirujuk Unit PPA Polrestabes Surabaya (fiktif).",
                  "consents": [{"kind": "services", "granted": True, "given_by": "survivor"},
                               {"kind": "partner_sharing", "granted": True, "given_by": "survivor"}]}},
        {"key": "shelter-case/kediri-1", "caseworker": "cw.wulan", "steps": ["assessment", "incident", "plan"],
         "body": {"survivor": {"name": "Melati (nama samaran)", "birth_date": date(today.year - 24, 9, 3).isoformat(), "sex": "F",
                               "regency_code": "35.06", "notes": _SYNTHETIC},
                  "referral_source": "upt_ppa", "consents": [{"kind": "services", "granted": True, "given_by": "survivor"}]}},
        {"key": "shelter-case/sidoarjo-1", "caseworker": "cw.fitri", "steps": [],
         "body": {"survivor": {"name": "Bunga (nama samaran)", "birth_date": date(today.year - 12, 1, 21).isoformat(), "sex": "F",
                               "regency_code": "35.15", "guardian_name": "Wali fiktif", "notes": _SYNTHETIC},
                  "referral_source": "hotline", "consents": [{"kind": "services", "granted": True, "given_by": "guardian"}]}},
    ]


# Answers that give a "high" risk level: escalating violence, no red flag.
_RISK_YES = {"escalation", "perpetrator_access", "economic_dependence", "isolation"}
_INCIDENT = {"violence_types": ["physical", "psychological"], "perpetrator_relationship": "spouse",
             "narrative": "Narasi fiktif untuk data demo."}
_PLAN = {"goals": "Rasa aman dulu, lalu konseling dan pendampingan hukum (rencana fiktif).", "planned_services": ["psychosocial", "legal_aid"]}


# -- stranded persons (Simlontar Rek) ------------------------------------------------------


def _returns(today: date) -> list[dict[str, Any]]:
    """Returns in progress; ``target`` is the status each should have reached."""
    found = datetime.combine(today - timedelta(days=1), time(20, 30), WIB)
    ngawi_head = _households("35.21")[0][0]  # a demo person of the registry goes home to Ngawi
    makassar = regions.children("73.71", current_only=True)[0].code
    return [
        {"key": "return/purabaya-bandung", "target": "in_care", "body": {
            "direction": "outbound", "found_at": found.isoformat(), "found_place_code": "35.15",
            "found_place_note": "Terminal Purabaya (Bungurasih)", "referred_by": "satpol_pp", "documents": "none",
            "cause": "out_of_money", "health_note": "lelah, tidak ada luka", "name": "Dadang Saputra (data demo)",
            "birth_date": "1979-02-14", "sex": "M", "origin_code": "32.73", "destination_code": "32.73"}},
        {"key": "return/perak-makassar", "target": "verified", "body": {
            "direction": "outbound", "found_at": (found - timedelta(hours=3)).isoformat(), "found_place_code": "35.78",
            "found_place_note": "Pelabuhan Tanjung Perak", "referred_by": "police", "documents": "police_certificate",
            "cause": "job_scam", "name": "Nurhayati (data demo)", "birth_date": "1998-07-09", "sex": "F",
            "nik": make_nik(makassar, date(1998, 7, 9), "F", 7001), "origin_code": "73.71", "destination_code": "73.71"}},
        {"key": "return/inbound-ngawi", "target": "scheduled", "body": {
            "direction": "inbound", "found_at": (found - timedelta(hours=8)).isoformat(), "found_place_code": "35.77",
            "found_place_note": "Stasiun Madiun", "referred_by": "other_province", "sending_province_code": "33", "documents": "ktp",
            "cause": "out_of_money", "name": ngawi_head["name"], "birth_date": ngawi_head["birth_date"], "sex": ngawi_head["sex"],
            "nik": ngawi_head["nik"], "origin_code": "35.21", "destination_code": "35.21"}},
        {"key": "return/juanda-kupang", "target": "reported", "body": {
            "direction": "outbound", "found_at": found.isoformat(), "found_place_code": "35.15",
            "found_place_note": "Bandara Juanda", "referred_by": "police", "documents": "none", "cause": "suspected_trafficking",
            "name": "Maria (data demo)", "birth_date": "2003-11-02", "sex": "F", "origin_code": "53.71"}},
    ]


# -- buffer stock, Tagana and the flood ----------------------------------------------------

ITEMS = [  # added to the migrations' catalogue
    {"code": "instant_noodles", "name": "Instant noodles", "unit": "box", "perishable": True},
    {"code": "tarpaulin", "name": "Tarpaulin (terpal)", "unit": "sheet"},
    {"code": "baby_kit", "name": "Baby kit", "unit": "pack"},
]

PROVINCE_WAREHOUSE = "GDG-PROV-JATIM"
FLOOD_WAREHOUSE = "GDG-BOJONEGORO"
WAREHOUSES = [
    {"code": PROVINCE_WAREHOUSE, "name": "Gudang Buffer Stock Dinas Sosial Provinsi Jawa Timur", "level": "province"},
    {"code": FLOOD_WAREHOUSE, "name": "Gudang Logistik Dinas Sosial Kabupaten Bojonegoro", "level": "regency", "regency_code": "35.22"},
    {"code": "GDG-LUMAJANG", "name": "Gudang Logistik Dinas Sosial Kabupaten Lumajang", "level": "regency", "regency_code": "35.08"},
    {"code": "GDG-JEMBER", "name": "Gudang Logistik Dinas Sosial Kabupaten Jember", "level": "regency", "regency_code": "35.09"},
    {"code": "GDG-MALANG", "name": "Gudang Logistik Dinas Sosial Kabupaten Malang", "level": "regency", "regency_code": "35.07"},
]

# Stock received per warehouse: item -> (quantity, months until expiry or None).
STOCK = {
    PROVINCE_WAREHOUSE: {"rice": (20_000, 12), "instant_noodles": (2_000, 8), "ready_meal": (1_000, 6), "blanket": (3_000, None),
                         "tarpaulin": (1_500, None), "mat": (2_000, None), "family_kit": (800, None), "kids_ware": (400, None),
                         "baby_kit": (500, None), "tent": (150, None), "wheelchair": (40, None)},
    FLOOD_WAREHOUSE: {"rice": (2_000, 10), "instant_noodles": (300, 7), "ready_meal": (200, 5), "blanket": (200, None), "mat": (200, None),
                      "family_kit": (100, None)},
    "GDG-LUMAJANG": {"rice": (1_500, 11), "blanket": (250, None), "tarpaulin": (150, None), "tent": (20, None)},
    "GDG-JEMBER": {"rice": (1_200, 9), "instant_noodles": (200, 6), "blanket": (150, None)},
    "GDG-MALANG": {"rice": (1_000, 12), "blanket": (120, None), "baby_kit": (60, None)},
}
MINIMUMS = {PROVINCE_WAREHOUSE: {"rice": 5_000, "instant_noodles": 300, "blanket": 500, "baby_kit": 100, "tarpaulin": 200}}

VOLUNTEERS_PER_REGENCY = 2
_SKILLS = ["evacuation", "search_rescue", "public_kitchen", "shelter_management", "logistics", "first_aid", "psychosocial",
           "water_sanitation", "communication", "assessment", "driving"]

FLOOD_REGENCY = "35.22"  # Kabupaten Bojonegoro, on the Bengawan Solo
FLOOD_NAME = "Banjir luapan Bengawan Solo di Kabupaten Bojonegoro"
FLOOD_HOUSEHOLDS = 5  # demo households of the registry that the water reached
DAMAGE = ["heavy", "moderate", "light", "heavy", "moderate"]
SHIPMENT = [{"item_code": "rice", "quantity": 1_000}, {"item_code": "instant_noodles", "quantity": 200},
            {"item_code": "blanket", "quantity": 300}, {"item_code": "tarpaulin", "quantity": 150}, {"item_code": "baby_kit", "quantity": 40}]
HANDED_OUT = {"ready_meal": 60, "blanket": 40, "mat": 40}  # at the evacuation point, from the regency's warehouse
REQUESTER, APPROVER, STOREKEEPER = "operator.bojonegoro", "kabid.linjamsos", "petugas.gudang"


def _volunteers(regency_code: str) -> list[dict[str, Any]]:
    rng = random.Random(f"pilar-demo-tagana-{regency_code}")
    out = []
    for n in range(1, VOLUNTEERS_PER_REGENCY + 1):
        sex = rng.choice("MF")
        out.append({
            "member_number": f"TGN-{regency_code.replace('.', '')}-{n:03d}",
            "name": f"{rng.choice(MALE if sex == 'M' else FEMALE)} {rng.choice(FAMILY)}",
            "rank": rng.choice(["muda", "muda", "madya", "utama"]),
            "regency_code": regency_code,
            "skills": sorted(rng.sample(_SKILLS, k=rng.randint(1, 3))),
        })
    return out


# -- the seeder ----------------------------------------------------------------------------


class SeedError(RuntimeError):
    pass


KINDS = [
    "persons", "registry programmes", "disbursement programmes", "budgets", "enrolment proposals", "shelters", "shelter staff",
    "shelter cases", "returns", "catalogue items", "warehouses", "stock receipts", "minimum levels", "Tagana volunteers", "incidents",
    "evacuation points", "affected households", "deployments", "stock requests", "distributions",
]


@dataclass
class Report:
    """What a run found and did, per kind of record."""

    tallies: dict[str, Tally] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def tally(self, kind: str) -> Tally:
        return self.tallies.setdefault(kind, Tally())

    @property
    def created(self) -> int:
        return sum(t.created for t in self.tallies.values())

    def lines(self) -> list[str]:
        out = []
        order = {kind: i for i, kind in enumerate(KINDS)}
        for kind, t in sorted(self.tallies.items(), key=lambda item: order.get(item[0], len(order))):
            extra = f", {t.skipped} skipped (no longer eligible)" if t.skipped else ""
            out.append(f"  {kind}: {t.created} created, {t.present} already present{extra}")
        return out


def _key_reused(response: httpx.Response) -> bool:
    """The service refused a known Idempotency-Key sent with another body: done on an earlier day."""
    if response.status_code != 422:
        return False
    try:
        return str(response.json().get("type", "")).endswith("/idempotency-key-reused")
    except ValueError:
        return False


class Seeder:
    """Calls the services directly (not through the gateway) with development tokens."""

    def __init__(self, stack, http: httpx.AsyncClient, key: SigningKey, today: date) -> None:
        self.stack, self.http, self.key, self.today = stack, http, key, today
        self.report = Report()
        self._tokens: dict[tuple, str] = {}
        self.warehouses: dict[str, str] = {}  # code -> id, from seed_stock
        self.volunteers: dict[str, str] = {}  # member number -> id, from seed_volunteers

    def token(self, scopes: list[str], user: str | None = None, region: str | None = None) -> str:
        cache = (tuple(sorted(scopes)), user, region)
        if cache not in self._tokens:
            extra = {"user": user} if user else {}
            self._tokens[cache] = self.key.mint(SUBJECT, scopes, region=region, ttl_s=1800, **extra)
        return self._tokens[cache]

    async def request(self, method: str, service: str, path: str, *, scopes: list[str], user: str | None = None,
                      region: str | None = None, json: Any = None, params: dict | None = None, key: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token(scopes, user, region)}"}
        if key:
            headers["Idempotency-Key"] = KEY_PREFIX + key
        return await self.http.request(method, f"{self.stack.url(service)}{path}", json=json, params=params, headers=headers)

    async def read(self, service: str, path: str, *, scopes: list[str], params: dict | None = None, **who: str | None) -> Any:
        r = await self.request("GET", service, path, scopes=scopes, params=params, **who)
        if r.status_code != 200:
            raise SeedError(f"GET {service} {path}: {r.status_code} {r.text[:300]}")
        return r.json()

    async def read_all(self, service: str, path: str, *, scopes: list[str], params: dict | None = None, **who: str | None) -> list[dict]:
        """Every item of a paginated list (``items`` and ``next_cursor``)."""
        items, cursor = [], None
        while True:
            page = await self.read(service, path, scopes=scopes, params={**(params or {}), **({"cursor": cursor} if cursor else {})}, **who)
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    async def create(self, kind: str, service: str, path: str, body: Any, *, scopes: list[str], key: str | None = None,
                     method: str = "POST", **who: str | None) -> dict | None:
        """Create one record and count it: the answer's JSON when the service gave one (created or
        replayed), None when it was there already (409, or a key first used on an earlier day)."""
        r = await self.request(method, service, path, scopes=scopes, json=body, key=key, **who)
        tally = self.report.tally(kind)
        if r.status_code in (200, 201):
            if r.headers.get("Idempotent-Replayed") == "true":
                tally.present += 1
            else:
                tally.created += 1
            return r.json()
        if r.status_code == 409 or _key_reused(r):
            tally.present += 1
            return None
        raise SeedError(f"{method} {service} {path}: {r.status_code} {r.text[:300]}")

    async def step(self, service: str, path: str, body: Any = None, *, scopes: list[str], key: str | None = None,
                   method: str = "POST", **who: str | None) -> dict | None:
        """A later step of a record the seeder made. None when the record moved on meanwhile
        (404: no longer the demo staff's, 409: another state, or a key used on an earlier day)."""
        r = await self.request(method, service, path, scopes=scopes, json=body, key=key, **who)
        if r.status_code in (200, 201):
            return r.json()
        if r.status_code in (404, 409) or _key_reused(r):
            return None
        raise SeedError(f"{method} {service} {path}: {r.status_code} {r.text[:300]}")


# -- sections ------------------------------------------------------------------------------


async def seed_programmes(s: Seeder) -> None:
    held = {p["code"] for p in await s.read("registry", "/v1/programmes", scopes=REGISTRY)}
    for programme in REGISTRY_PROGRAMMES:
        if programme["code"] in held:
            s.report.tally("registry programmes").present += 1
        else:
            await s.create("registry programmes", "registry", "/v1/programmes", programme, scopes=REGISTRY, key=f"programme/{programme['code']}")

    paid = {p["code"]: p for p in await s.read("disbursement", "/v1/programmes", scopes=DISBURSEMENT)}
    for programme in DISBURSEMENT_PROGRAMMES:
        if programme["code"] in paid:
            s.report.tally("disbursement programmes").present += 1
        else:
            created = await s.create("disbursement programmes", "disbursement", "/v1/programmes", programme, scopes=DISBURSEMENT,
                                     key=f"programme/{programme['code']}")
            paid[programme["code"]] = created or {"budgets": []}

    year = s.today.year
    for code, (amount, payees, stages) in BUDGETS.items():
        if any(b["year"] == year for b in paid[code]["budgets"]):
            s.report.tally("budgets").present += 1  # whatever amount an operator set stays
            continue
        await s.create("budgets", "disbursement", f"/v1/programmes/{code}/budgets/{year}", {"amount": amount * payees * stages},
                       scopes=DISBURSEMENT, method="PUT")


def enrolment_candidates() -> dict[str, list[dict]]:
    """Demo persons to propose, chosen by facts that do not change with today's date (so the
    same persons are chosen every year), at most one per regency and programme."""
    picks: dict[str, list[dict]] = {code: [] for code in ENROLMENT_PROPOSALS}
    chosen: set[str] = set()
    regencies = regions.jatim_regencies()
    random.Random("pilar-demo-enrolments").shuffle(regencies)  # spread over the province, the same way every time
    for regency in regencies:
        taken: set[str] = set()
        for household in _households(regency.code):
            for person in household:
                born = date.fromisoformat(person["birth_date"])
                fits = {
                    "PKH_PLUS": person["relationship"] == "head" and born.year <= 1950 and person["decile"] <= 4,
                    "ASPD": person.get("disability_severity") in ("severe", "bedridden") and born.year >= 1975 and person["decile"] <= 5,
                    "PKE": person["decile"] == 1,
                }
                for code, ok in fits.items():
                    if ok and code not in taken and person["nik"] not in chosen and len(picks[code]) < ENROLMENT_PROPOSALS[code]:
                        picks[code].append(person)
                        taken.add(code)
                        chosen.add(person["nik"])
                        break
    return picks


async def seed_enrolments(s: Seeder) -> None:
    async def propose(code: str, person: dict) -> None:
        r = await s.request("POST", "registry", "/v1/persons/lookup", scopes=REGISTRY, json={"nik": person["nik"]})
        if r.status_code != 200:
            raise SeedError(f"demo person {person['name']} is not in the registry: {r.status_code} {r.text[:200]}")
        person_id = r.json()["id"]
        held = await s.read("registry", f"/v1/persons/{person_id}/enrolments", scopes=REGISTRY)
        if any(e["programme_code"] == code for e in held["items"]):
            s.report.tally("enrolment proposals").present += 1  # whatever became of it since
            return
        r = await s.request("POST", "registry", "/v1/enrolments", scopes=REGISTRY, user=PROPOSING_OFFICER,
                            json={"person_id": person_id, "programme_code": code}, key=f"enrolment/{code}/{person_id}")
        tally = s.report.tally("enrolment proposals")
        if r.status_code == 201 and r.headers.get("Idempotent-Replayed") != "true":
            tally.created += 1
        elif r.status_code in (201, 409) or _key_reused(r):
            tally.present += 1
        elif r.status_code == 422 and r.json().get("type", "").endswith("/not-eligible"):
            tally.skipped += 1  # the person's facts changed since the demo data was made
        else:
            raise SeedError(f"proposing {person['name']} for {code}: {r.status_code} {r.text[:300]}")

    await asyncio.gather(*(propose(code, p) for code, people in enrolment_candidates().items() for p in people))


async def seed_shelters(s: Seeder) -> None:
    existing = {x["name"]: x for x in await s.read("shelter", "/v1/shelters", scopes=SHELTER_ADMIN)}
    staff = {x["user_id"] for x in await s.read("shelter", "/v1/staff", scopes=SHELTER_ADMIN)}
    for spec in SHELTERS:
        body = {k: spec[k] for k in ("name", "kind", "regency_code", "capacity")}
        shelter = existing.get(spec["name"])
        if shelter:
            s.report.tally("shelters").present += 1
        else:
            shelter = await s.create("shelters", "shelter", "/v1/shelters", body, scopes=SHELTER_ADMIN, key=f"shelter/{spec['name']}")
            if shelter is None:  # made meanwhile by a concurrent run
                shelter = next(x for x in await s.read("shelter", "/v1/shelters", scopes=SHELTER_ADMIN) if x["name"] == spec["name"])
        for user_id, name, role in spec["staff"]:
            if user_id in staff:
                s.report.tally("shelter staff").present += 1
            else:
                await s.create("shelter staff", "shelter", "/v1/staff", {"user_id": user_id, "name": name, "role": role, "shelter_id": shelter["id"]},
                               scopes=SHELTER_ADMIN, key=f"staff/{user_id}")

    cases = _shelter_cases(s.today)
    if not cases:
        return
    questions = await s.read("shelter", "/v1/risk-questions", scopes=["shelter:caseworker"], user=cases[0]["caseworker"])
    answers = {q["id"]: "yes" if q["id"] in _RISK_YES else "no" for q in questions["questions"]}

    async def walk(case: dict) -> None:
        worker = {"scopes": ["shelter:caseworker"], "user": case["caseworker"]}
        opened = await s.create("shelter cases", "shelter", "/v1/cases", case["body"], key=case["key"], **worker)
        if opened is None:
            return  # opened on an earlier day; its steps were taken then
        regency = case["body"]["survivor"]["regency_code"]
        bodies = {"assessment": ("risk-assessments", {"answers": answers}), "incident": ("incidents", {**_INCIDENT, "regency_code": regency}),
                  "plan": ("plan", _PLAN), "admission": ("admission", None)}
        for name in case["steps"]:
            path, body = bodies[name]
            if await s.step("shelter", f"/v1/cases/{opened['id']}/{path}", body, key=f"{case['key']}/{name}", **worker) is None:
                return  # the case is no longer where the seeder left it

    await asyncio.gather(*(walk(case) for case in cases))


_RETURN_PATH = ["reported", "in_care", "verified", "scheduled"]


async def seed_returns(s: Seeder) -> None:
    yesterday = s.today - timedelta(days=1)
    tomorrow_morning = datetime.combine(s.today + timedelta(days=1), time(8, 0), WIB)

    async def walk(spec: dict) -> None:
        case = await s.create("returns", "homeless-return", "/v1/returns", spec["body"], scopes=RETURNS, key=spec["key"])
        if case is None:
            return
        target = _RETURN_PATH.index(spec["target"])
        rid = case["id"]
        if target >= 1:
            await s.step("homeless-return", f"/v1/returns/{rid}/care-stays", scopes=RETURNS, key=f"{spec['key']}/care-stay", body={
                "facility_type": "upt", "facility_name": "UPT Rehabilitasi Sosial Bina Karya (demo)", "admitted_on": yesterday.isoformat()})
            await s.step("homeless-return", f"/v1/returns/{rid}/counselling", scopes=RETURNS, key=f"{spec['key']}/counselling", body={
                "held_on": yesterday.isoformat(), "counsellor": "Bu Rina (pekerja sosial)", "topic": "rencana pulang dan keluarga"})
        # Verification and schedule only from the exact state before them: an operator's later work stays as it is.
        current = await s.read("homeless-return", f"/v1/returns/{rid}", scopes=RETURNS)
        if target >= 2 and current["status"] == "in_care":
            destination = current["destination_code"]
            region = regions.regency_of(destination) if regions.is_jatim(destination) else None  # Jatim destinations: their own office
            current = await s.step("homeless-return", f"/v1/returns/{rid}/verification", {"note": "Keluarga dihubungi dan bersedia menerima (demo)."},
                                   scopes=RETURNS, region=region) or current
        if target >= 3 and current["status"] == "verified":
            hops = await s.read("homeless-return", f"/v1/routes/{current['destination_code']}", scopes=RETURNS)
            legs = [{"mode": "bus", "ticket_cost": 95_000, "escort": "Pak Slamet (pendamping)",
                     "departure_at": (tomorrow_morning + timedelta(hours=6 * i)).isoformat()} for i in range(len(hops))]
            await s.step("homeless-return", f"/v1/returns/{rid}/schedule", {"legs": legs}, scopes=RETURNS)

    await asyncio.gather(*(walk(spec) for spec in _returns(s.today)))


async def seed_stock(s: Seeder) -> None:
    """Catalogue additions, warehouses, receipts and minimum levels."""
    catalogue = {i["code"] for i in await s.read("disaster", "/v1/items", scopes=DISASTER)}
    for item in ITEMS:
        if item["code"] in catalogue:
            s.report.tally("catalogue items").present += 1
        else:
            await s.create("catalogue items", "disaster", "/v1/items", item, scopes=DISASTER)

    existing = {w["code"]: w["id"] for w in await s.read("disaster", "/v1/warehouses", scopes=DISASTER)}
    for spec in WAREHOUSES:
        if spec["code"] in existing:
            s.report.tally("warehouses").present += 1
            continue
        made = await s.create("warehouses", "disaster", "/v1/warehouses", spec, scopes=DISASTER, key=f"warehouse/{spec['code']}")
        existing[spec["code"]] = made["id"] if made else None
    if None in existing.values():
        existing = {w["code"]: w["id"] for w in await s.read("disaster", "/v1/warehouses", scopes=DISASTER)}

    received_on = s.today - timedelta(days=30)

    def expiry(months: int | None) -> str | None:
        return (received_on + timedelta(days=30 * months)).isoformat() if months else None

    async def receive(code: str, lines: dict) -> None:
        body = {"received_on": received_on.isoformat(), "source": f"APBD {s.today.year} (demo)", "reference": f"BAST/{code}/DEMO",
                "lines": [{"item_code": item, "quantity": qty, "expires_on": expiry(months)} for item, (qty, months) in lines.items()]}
        await s.create("stock receipts", "disaster", f"/v1/warehouses/{existing[code]}/receipts", body, scopes=DISASTER, key=f"receipt/{code}")

    await asyncio.gather(*(receive(code, lines) for code, lines in STOCK.items()))

    for code, minimums in MINIMUMS.items():
        levels = {line["item_code"]: line["minimum"] for line in await s.read("disaster", f"/v1/warehouses/{existing[code]}/stock", scopes=DISASTER)}
        for item, minimum in minimums.items():
            if levels.get(item) is not None:
                s.report.tally("minimum levels").present += 1
                continue
            await s.create("minimum levels", "disaster", f"/v1/warehouses/{existing[code]}/minimums/{item}", {"minimum": minimum},
                           scopes=DISASTER, method="PUT")
    s.warehouses = existing


async def seed_volunteers(s: Seeder) -> None:
    """Tagana volunteers in every regency."""
    known = {v["member_number"]: v["id"] for v in await s.read_all("disaster", "/v1/volunteers", scopes=DISASTER, params={"limit": 500})}
    wanted = [v for regency in regions.jatim_regencies() for v in _volunteers(regency.code)]
    gate = asyncio.Semaphore(8)

    async def register(body: dict) -> None:
        async with gate:
            made = await s.create("Tagana volunteers", "disaster", "/v1/volunteers", body, scopes=DISASTER, key=f"volunteer/{body['member_number']}")
        if made:
            known[body["member_number"]] = made["id"]

    for body in wanted:
        if body["member_number"] in known:
            s.report.tally("Tagana volunteers").present += 1
    await asyncio.gather(*(register(b) for b in wanted if b["member_number"] not in known))
    if any(b["member_number"] not in known for b in wanted):
        known = {v["member_number"]: v["id"] for v in await s.read_all("disaster", "/v1/volunteers", scopes=DISASTER, params={"limit": 500})}
    s.volunteers = known


def flood_households() -> list[list[dict]]:
    """The registry's demo households of Bojonegoro that the flood reached."""
    return [h for h in _households(FLOOD_REGENCY) if h[0]["village_code"]][:FLOOD_HOUSEHOLDS]


# A family the registry does not know (their papers were lost in the water): the registry
# opens provisional records for them from the disaster service's events.
UNREGISTERED_FAMILY = [
    {"name": "Sarmin", "sex": "M", "birth_date": "1969-05-02", "relationship": "head"},
    {"name": "Tumini", "sex": "F", "birth_date": "1972-08-19", "relationship": "wife"},
    {"name": "Bagus Pratama", "sex": "M", "birth_date": "2009-11-30", "relationship": "child"},
]


async def seed_flood(s: Seeder) -> None:
    """One flood being handled; needs the registry's demo persons, the warehouses and the volunteers."""
    warehouses, volunteers = s.warehouses, s.volunteers

    households = flood_households()
    districts = sorted({regions.normalise(h[0]["village_code"]).rsplit(".", 1)[0] for h in households})
    started = s.today - timedelta(days=3)
    # Found by name among the regency's floods.
    listed = await s.read_all("disaster", "/v1/incidents", scopes=DISASTER,
                              params={"hazard": "flood", "regency_code": FLOOD_REGENCY, "limit": 500})
    incident = next((i for i in listed if i["name"] == FLOOD_NAME), None)
    if incident:
        s.report.tally("incidents").present += 1
    else:
        incident = await s.create("incidents", "disaster", "/v1/incidents", key="incident/bojonegoro-flood", scopes=DISASTER, user=REQUESTER, body={
            "name": FLOOD_NAME, "category": "natural", "hazard": "flood", "regency_codes": [FLOOD_REGENCY], "district_codes": districts,
            "started_on": started.isoformat(), "status": "emergency_response", "decree_number": f"188/215/KEP/412.013/{started.year}",
            "authority": "regent", "effective_from": started.isoformat(), "effective_until": (started + timedelta(days=14)).isoformat(),
            "description": "Kejadian demo: air Bengawan Solo meluap ke permukiman di bantaran sungai."})
        if incident is None:
            return  # created on an earlier day under another name an operator gave it since
    iid = incident["id"]

    # The evacuation point, with one headcount and one day of the public kitchen.
    village = regions.get(households[0][0]["village_code"])
    point_name = f"Balai Desa {village.name.title()}"
    points = {p["name"]: p for p in await s.read("disaster", f"/v1/incidents/{iid}/evacuation-points", scopes=DISASTER)}
    point = points.get(point_name)
    if point:
        s.report.tally("evacuation points").present += 1
    else:
        point = await s.create("evacuation points", "disaster", f"/v1/incidents/{iid}/evacuation-points", scopes=DISASTER, user=REQUESTER,
                               key="incident/bojonegoro-flood/point", body={"village_code": village.code, "name": point_name, "capacity": 150,
                                                                            "opened_on": started.isoformat()})
        if point is None:
            point = next(p for p in await s.read("disaster", f"/v1/incidents/{iid}/evacuation-points", scopes=DISASTER) if p["name"] == point_name)
    pid = point["id"]
    if not await s.read("disaster", f"/v1/evacuation-points/{pid}/headcounts", scopes=DISASTER):
        await s.step("disaster", f"/v1/evacuation-points/{pid}/headcounts", scopes=DISASTER, user=REQUESTER, body={
            "reported_at": datetime.combine(started + timedelta(days=1), time(18, 0), WIB).isoformat(),
            "total": 64, "elderly": 9, "disabled": 2, "children": 17, "pregnant": 1})
    if not await s.read("disaster", f"/v1/evacuation-points/{pid}/kitchen", scopes=DISASTER):
        await s.step("disaster", f"/v1/evacuation-points/{pid}/kitchen/{(started + timedelta(days=1)).isoformat()}", {"portions": 190},
                     scopes=DISASTER, user=REQUESTER, method="PUT")

    # Affected households: demo households of the registry, and one family it does not know.
    def vulnerabilities(person: dict) -> list[str]:
        age = (s.today - date.fromisoformat(person["birth_date"])).days // 365
        return (["elderly"] if age >= 60 else []) + (["child"] if age < 18 else []) + (["disabled"] if person.get("disability_type") else [])

    def members(household: list[dict], displaced: bool) -> list[dict]:
        return [{k: m[k] for k in ("nik", "name", "sex", "birth_date", "relationship")} | {"vulnerabilities": vulnerabilities(m)}
                | ({"evacuation_point_id": pid} if displaced else {}) for m in household]

    # Keys name households by position: a KK number must not sit in clear in the services' key tables.
    assessments = [(f"household/{n}", {"kk_number": h[0]["kk_number"], "village_code": h[0]["village_code"], "damage_level": damage,
                                                       "displaced": damage == "heavy", "members": members(h, damage == "heavy")})
                   for n, (h, damage) in enumerate(zip(households, DAMAGE), start=1)]
    assessments.append(("household/unregistered-1", {"village_code": village.code, "damage_level": "heavy", "displaced": True,
                                                     "members": [m | {"evacuation_point_id": pid} for m in UNREGISTERED_FAMILY]}))
    # A household is there when its head is (by name and birth date) among the incident's households.
    assessed = {(m["name"], str(m["birth_date"])) for h in await s.read_all("disaster", f"/v1/incidents/{iid}/households", scopes=DISASTER,
                                                                         params={"limit": 500})
                for m in h["members"]}
    for key, body in assessments:
        head = body["members"][0]
        if (head["name"], head["birth_date"]) in assessed:
            s.report.tally("affected households").present += 1
            continue
        await s.create("affected households", "disaster", f"/v1/incidents/{iid}/households", body, scopes=DISASTER, user=REQUESTER,
                       key=f"incident/bojonegoro-flood/{key}")

    # Tagana on duty: the regency's own volunteers and one from neighbouring Tuban.
    deployed = {d["volunteer_id"] for d in await s.read("disaster", f"/v1/incidents/{iid}/deployments", scopes=DISASTER)}
    crew = [(f"TGN-{FLOOD_REGENCY.replace('.', '')}-001", "coordinator"), (f"TGN-{FLOOD_REGENCY.replace('.', '')}-002", "evacuation"),
            ("TGN-3523-001", "public_kitchen")]
    for member, role in crew:
        if volunteers[member] in deployed:
            s.report.tally("deployments").present += 1
            continue
        await s.create("deployments", "disaster", f"/v1/incidents/{iid}/deployments", scopes=DISASTER, user=REQUESTER,
                       key=f"incident/bojonegoro-flood/deployment/{member}", body={
                           "volunteer_id": volunteers[member], "role": role, "started_on": started.isoformat(), "hours": 24})

    # Goods from the province on their way (requested, approved by another officer, shipped)...
    request = await s.create("stock requests", "disaster", f"/v1/incidents/{iid}/stock-requests", scopes=DISASTER, user=REQUESTER,
                             key="incident/bojonegoro-flood/request-1", body={
                                 "from_warehouse_id": warehouses[PROVINCE_WAREHOUSE], "to_warehouse_id": warehouses[FLOOD_WAREHOUSE],
                                 "note": "Kebutuhan pengungsi banjir (demo).", "lines": SHIPMENT})
    if request is not None:
        current = await s.read("disaster", f"/v1/stock-requests/{request['id']}", scopes=DISASTER)
        if current["status"] == "draft":
            current = await s.step("disaster", f"/v1/stock-requests/{request['id']}/approve", {"version": current["version"]},
                                   scopes=DISASTER_APPROVER, user=APPROVER) or current
        if current["status"] == "approved":
            await s.step("disaster", f"/v1/stock-requests/{request['id']}/ship", {"version": current["version"]}, scopes=DISASTER, user=STOREKEEPER)

    # ...and the regency's own stock handed out at the evacuation point.
    await s.create("distributions", "disaster", f"/v1/incidents/{iid}/distributions", scopes=DISASTER, user=REQUESTER,
                   key="incident/bojonegoro-flood/distribution-1", body={
                       "warehouse_id": warehouses[FLOOD_WAREHOUSE], "evacuation_point_id": pid,
                       "distributed_on": (started + timedelta(days=1)).isoformat(),
                       "lines": [{"item_code": item, "quantity": qty} for item, qty in HANDED_OUT.items()]})


FOUNDATIONS = [seed_programmes, seed_shelters, seed_stock, seed_volunteers]
"""Sections that need no person of the registry: they run alongside the persons' registration."""
CASES = [seed_enrolments, seed_returns, seed_flood]
"""Sections about the registry's demo persons and the foundations' records."""


async def _run(s: Seeder, sections) -> None:
    """Sections side by side; a failing one does not stop the others and is reported."""
    results = await asyncio.gather(*(section(s) for section in sections), return_exceptions=True)
    for section, result in zip(sections, results):
        if isinstance(result, BaseException):
            s.report.errors.append(f"{section.__name__}: {type(result).__name__}: {result}")


async def seed_foundations(s: Seeder) -> None:
    await _run(s, FOUNDATIONS)


async def seed_cases(s: Seeder) -> None:
    await _run(s, CASES)


@asynccontextmanager
async def open_seeder(stack, *, today: date | None = None) -> AsyncIterator[Seeder]:
    key = SigningKey.from_files(stack.secrets_dir / "jwt-private.pem")
    async with async_client(timeout=60) as http:
        yield Seeder(stack, http, key, today or datetime.now(WIB).date())


async def seed_demo_data(stack, *, today: date | None = None) -> Report:
    """Everything but the registry's persons, which must be there already (see
    :func:`pilar_devstack.seed.seed`, which registers them first)."""
    async with open_seeder(stack, today=today) as s:
        await seed_foundations(s)
        await seed_cases(s)
    return s.report
