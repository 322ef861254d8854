"""Demo data for the local stack: synthetic people, never real ones.

Persons and households across all 38 regencies/cities of Jawa Timur, with valid NIKs (by
the rules), Indonesian names, deciles, disabilities and PPKS categories, registered
through the services' own APIs with a development token. Everything is derived from fixed
random seeds, so a second run finds every record already there and changes nothing
(registrations of an existing NIK are refused with 409 and counted as present).

:func:`seed` then adds the rest of the demo platform (programmes and budgets, shelters,
returns, stock, Tagana, a flood): see :mod:`pilar_devstack.demo_data`.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

import httpx

from pilar_kernel import regions
from pilar_kernel.auth import SigningKey
from pilar_kernel.http import async_client
from pilar_kernel.nik import make_nik

if TYPE_CHECKING:
    from .demo_data import Report

MALE = ["Ahmad", "Budi", "Slamet", "Agus", "Bambang", "Sugeng", "Joko", "Heru", "Imam", "Rudi", "Wahyu", "Eko", "Muhammad", "Sutrisno", "Yusuf"]
FEMALE = ["Siti", "Sri", "Dewi", "Nur", "Endang", "Rina", "Wulan", "Lestari", "Sumiati", "Kartini", "Aminah", "Fitri", "Yuliani", "Ratna", "Suparmi"]
FAMILY = ["Santoso", "Wibowo", "Hidayat", "Saputra", "Purnomo", "Rahayu", "Setiawan", "Kusuma", "Prasetyo", "Wijaya", "Susanto", "Hartono", "Utomo"]
PPKS = ["fakir_miskin", "lansia_telantar", "penyandang_disabilitas", "perempuan_rawan_sosial_ekonomi", "korban_bencana_alam"]

PERSONS_PER_REGENCY = 12


@dataclass
class Tally:
    created: int = 0
    present: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)


def _households(regency_code: str, per_regency: int = PERSONS_PER_REGENCY) -> list[list[dict]]:
    """Deterministic households of one regency, each a list of person bodies (head first)."""
    rng = random.Random(f"pilar-demo-{regency_code}")
    districts = [d for d in regions.children(regency_code, current_only=True) if d.level == "district"]
    out: list[list[dict]] = []
    count = 0
    serial = 1
    while count < per_regency:
        district = rng.choice(districts)
        villages = regions.children(district.code, current_only=True)
        village = rng.choice(villages).code if villages else None
        kk = district.code.replace(".", "") + f"{rng.randrange(10**10):010d}"  # issuing district + serial
        family = rng.choice(FAMILY)
        decile = rng.choice([1, 1, 2, 2, 3, 4, 5, 6])
        size = rng.randint(1, 4)
        members = []
        head_birth = date(1940, 1, 1) + timedelta(days=rng.randrange(0, 365 * 45))
        for i in range(size):
            sex = "M" if i == 0 else rng.choice("MF")
            birth = head_birth if i == 0 else head_birth + timedelta(days=rng.randrange(365 * 18, 365 * 40))
            birth = min(birth, date(2020, 1, 1))
            relationship = "head" if i == 0 else ("wife" if i == 1 and sex == "F" else "child")
            first = rng.choice(MALE if sex == "M" else FEMALE)
            body = {
                "nik": make_nik(district.code, birth, sex, serial),
                "name": f"{first} {family}",
                "birth_place": district.name.title(),
                "birth_date": birth.isoformat(),
                "sex": sex,
                "kk_number": kk,
                "relationship": relationship,
                "village_code": village,
                "rt": str(rng.randint(1, 12)),
                "rw": str(rng.randint(1, 6)),
                "decile": decile,
                "decile_date": "2026-07-01",
                "ppks": sorted(set(rng.sample(PPKS, k=rng.randint(0, 2)))),
            }
            if rng.random() < 0.08:
                body["disability_type"] = rng.choice(["physical", "sensory_sight", "intellectual"])
                body["disability_severity"] = rng.choice(["moderate", "severe", "bedridden"])
            serial += 1
            members.append(body)
        out.append(members)
        count += size
    return out


async def _register(client: httpx.AsyncClient, url: str, body: dict, headers: dict, tally: Tally) -> None:
    r = await client.post(f"{url}/v1/persons", json=body, headers=headers)
    if r.status_code == 201:
        tally.created += 1
    elif r.status_code == 409:
        tally.present += 1
    else:
        tally.failed.append(f"{r.status_code} {r.text[:200]}")


async def seed_registry(registry_url: str, token: str, *, per_regency: int = PERSONS_PER_REGENCY, concurrency: int = 12) -> Tally:
    tally = Tally()
    headers = {"Authorization": f"Bearer {token}"}
    households = [h for regency in regions.jatim_regencies() for h in _households(regency.code, per_regency)]
    gate = asyncio.Semaphore(concurrency)

    async def register(client: httpx.AsyncClient, body: dict) -> None:
        async with gate:
            await _register(client, registry_url, body, headers, tally)

    async with async_client(timeout=30) as client:
        # Heads first (they create the KK), then the other members.
        await asyncio.gather(*(register(client, h[0]) for h in households))
        await asyncio.gather(*(register(client, m) for h in households for m in h[1:]))
    return tally


async def seed(stack) -> Report:
    """The run command's demo data: persons, then everything that builds on them
    (:mod:`pilar_devstack.demo_data`). Prints and returns what it created and what was there
    already; raises once everything possible is seeded if anything failed."""
    from .demo_data import open_seeder, seed_cases, seed_foundations

    key = SigningKey.from_files(stack.secrets_dir / "jwt-private.pem")
    token = key.mint("pilar-demo-seeder", ["registry:read", "registry:write"], ttl_s=900)
    async with open_seeder(stack) as demo:
        # Programmes, shelters, stock and volunteers need no person: they go alongside.
        persons, _ = await asyncio.gather(seed_registry(stack.url("registry"), token), seed_foundations(demo))
        await seed_cases(demo)
    report = demo.report
    report.tallies = {"persons": persons, **report.tallies}
    print("\n".join(report.lines()))
    if persons.failed:
        raise RuntimeError(f"demo data: {len(persons.failed)} registrations failed, first: {persons.failed[0]}")
    if report.errors:
        raise RuntimeError("demo data: " + "; ".join(report.errors))
    return report
