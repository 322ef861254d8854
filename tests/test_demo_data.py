"""The run command's demo data, seen through the gateway as the agencies see it.

The platform fixture has seeded once (``pilar_devstack.seed.seed``, as ``make run`` does).
Every kind of record is there, the records that cross services have crossed (the flood's
victims are flagged or provisionally registered in the registry, the returnee going home to
Ngawi is linked to their registry record), a second run creates nothing and leaves every
count and state as it was, and no NIK the demo data uses breaks the rules.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import httpx
import pytest

from pilar_devstack import demo_data
from pilar_devstack.demo_data import (
    FLOOD_NAME,
    FLOOD_REGENCY,
    FLOOD_WAREHOUSE,
    HANDED_OUT,
    PROVINCE_WAREHOUSE,
    SHELTERS,
    SHIPMENT,
    STOCK,
    UNREGISTERED_FAMILY,
    WAREHOUSES,
    WIB,
    enrolment_candidates,
    flood_households,
    seed_demo_data,
)
from pilar_devstack.seed import PERSONS_PER_REGENCY, _households, seed_registry
from pilar_kernel import regions
from pilar_kernel.auth import SigningKey
from pilar_kernel.nik import validate_nik
from platform_testkit import Platform, converge

pytestmark = pytest.mark.stack

PROVINCE = "dinsos-jatim"  # the province-wide officers' console
YEAR = datetime.now(WIB).year
DEMO_PROGRAMMES = ["PKH_PLUS", "ASPD", "PKE"]
# Where each demo return should be, by its destination (the trafficking case has none yet).
RETURNS = {"32.73": "in_care", "73.71": "verified", "35.21": "scheduled", None: "reported"}
# Each demo shelter's supervisor and the cases the seeder left there: (status, child, admitted).
SUPERVISED = {
    "UPT Perlindungan Perempuan Surabaya": ("spv.hartini", [("assessment", False, True)]),
    "UPT Perlindungan Perempuan Kediri": ("spv.endang", [("plan_pending", False, False)]),
    "UPT Perlindungan Anak Sidoarjo": ("spv.sumiati", [("intake", True, False)]),
    "UPT Perlindungan Anak Jember": ("spv.kartini", []),
}


async def get(platform: Platform, path: str, *, client: str = PROVINCE, user: str | None = None, method: str = "GET",
              **kwargs) -> dict | list:
    """One call through the gateway as a demo client, waiting out its rate limit as partners do."""
    headers = await platform.headers(client, user=user)
    headers.update(kwargs.pop("headers", {}))
    for _ in range(60):
        response = await platform.http.request(method, path, headers=headers, **kwargs)
        if response.status_code != 429:
            break
        await asyncio.sleep(float(response.headers.get("retry-after", "1")))
    assert response.status_code == 200, f"{method} {path}: {response.status_code} {response.text[:300]}"
    return response.json()


async def every(platform: Platform, path: str, **params) -> list[dict]:
    """Every item of a cursor-paginated list."""
    items, query = [], {"limit": 500, **params}
    while True:
        page = await get(platform, path, params=query)
        items += page["items"]
        if not page["next_cursor"]:
            return items
        query["cursor"] = page["next_cursor"]


async def person_id(platform: Platform, nik: str) -> str:
    return (await get(platform, "/v1/registry/persons/lookup", method="POST", json={"nik": nik}))["id"]


async def flood_incident(platform: Platform) -> dict:
    floods = await every(platform, "/v1/disaster/incidents", hazard="flood")
    [incident] = [i for i in floods if i["name"] == FLOOD_NAME]
    return incident


async def warehouse_ids(platform: Platform) -> dict[str, str]:
    return {w["code"]: w["id"] for w in await get(platform, "/v1/disaster/warehouses")}


async def on_hand(platform: Platform, warehouse_id: str) -> dict[str, int]:
    return {line["item_code"]: line["on_hand"] for line in await get(platform, f"/v1/disaster/warehouses/{warehouse_id}/stock")}


async def flood_reached_the_registry(platform: Platform) -> None:
    """The disaster service's events crossed: the demo households' members carry the
    natural-disaster category, and the family the registry did not know is registered
    provisionally (from the field team's record, without a NIK)."""
    heads = [h[0] for h in flood_households()]

    async def flagged():
        victims = await every(platform, "/v1/registry/persons", regency_code=FLOOD_REGENCY, ppks="korban_bencana_alam")
        provisional = {p["name"] for p in victims if p["provisional_id"]}
        ids = {p["id"] for p in victims}
        known = [await person_id(platform, head["nik"]) for head in heads]
        return {m["name"] for m in UNREGISTERED_FAMILY} <= provisional and set(known) <= ids

    await converge(flagged, timeout=90, what="the flood's victims to be flagged and provisionally registered in the registry")


async def ngawi_return_linked(platform: Platform) -> dict:
    """The returnee going home to Ngawi is a demo person of the registry: the homeless-return
    service links the case to that record through its projection of the registry's events."""
    expected = await person_id(platform, _households("35.21")[0][0]["nik"])

    async def linked():
        returns = await every(platform, "/v1/homeless-return/returns")
        return next((r for r in returns if r["destination_code"] == "35.21" and r["person_id"] == expected), None)

    return await converge(linked, timeout=90, what="the Ngawi return to be linked to its registry person")


async def test_demo_data_covers_every_regency_and_a_rerun_changes_nothing(platform_stack):
    key = SigningKey.from_files(platform_stack.secrets_dir / "jwt-private.pem")
    token = key.mint("pilar-demo-seeder", ["registry:read", "registry:write"])
    again = await seed_registry(platform_stack.url("registry"), token)  # the fixture seeded once already
    assert again.failed == [] and again.created == 0 and again.present >= 38 * 12
    stats = httpx.get(f"{platform_stack.url('registry')}/v1/stats/persons", headers={"Authorization": f"Bearer {token}"}).json()
    assert {r.code for r in regions.jatim_regencies()} <= set(stats["by_regency"]), "every regency/city of Jawa Timur has persons"


async def test_every_kind_of_demo_record_is_there(platform: Platform):
    # Programmes in both services, with this year's budget where the money is.
    assert set(DEMO_PROGRAMMES) <= {p["code"] for p in await get(platform, "/v1/registry/programmes")}
    paying = {p["code"]: p for p in await get(platform, "/v1/disbursement/programmes")}
    for code in DEMO_PROGRAMMES:
        assert any(b["year"] == YEAR and b["amount"] > 0 for b in paying[code]["budgets"]), paying[code]

    # Enrolment proposals, waiting for verification, of persons who meet the rules.
    for code, people in enrolment_candidates().items():
        assert len(people) == demo_data.ENROLMENT_PROPOSALS[code]
        for person in people:
            held = await get(platform, f"/v1/registry/persons/{await person_id(platform, person['nik'])}/enrolments")
            assert [(e["programme_code"], e["status"]) for e in held["items"] if e["programme_code"] == code] == [(code, "proposed")]

    # Shelters with staff; the open cases seen by each shelter's supervisor.
    shelters = {s["name"]: s for s in await get(platform, "/v1/shelter/shelters")}
    staff = {s["user_id"]: s for s in await get(platform, "/v1/shelter/staff")}
    for spec in SHELTERS:
        shelter = shelters[spec["name"]]
        assert (shelter["kind"], shelter["regency_code"], shelter["capacity"]) == (spec["kind"], spec["regency_code"], spec["capacity"])
        for user_id, _, role in spec["staff"]:
            assert (staff[user_id]["role"], staff[user_id]["shelter_id"], staff[user_id]["active"]) == (role, shelter["id"], True)
        supervisor, expected = SUPERVISED[spec["name"]]
        cases = (await get(platform, "/v1/shelter/cases", client="shelter-app", user=supervisor))["items"]
        assert sorted((c["status"], c["child"], c["admitted"]) for c in cases) == expected
        assert shelter["occupied"] == sum(admitted for _, _, admitted in expected)

    # Stranded persons at every step of the way home.
    returns = await every(platform, "/v1/homeless-return/returns")
    for destination, status in RETURNS.items():
        assert any(r["destination_code"] == destination and r["status"] == status for r in returns), (destination, status)
    assert any(r["status"] == "reported" and "suspected_trafficking" in r["flags"] for r in returns)
    assert (await ngawi_return_linked(platform))["status"] == "scheduled"

    # Warehouses with stock: the province's less what it shipped to the flood, Bojonegoro's less
    # what was handed out at the evacuation point.
    ids = await warehouse_ids(platform)
    assert {w["code"] for w in WAREHOUSES} <= set(ids)
    shipped = {line["item_code"]: line["quantity"] for line in SHIPMENT}
    province = await on_hand(platform, ids[PROVINCE_WAREHOUSE])
    assert province == {item: qty - shipped.get(item, 0) for item, (qty, _) in STOCK[PROVINCE_WAREHOUSE].items()}
    flood_stock = await on_hand(platform, ids[FLOOD_WAREHOUSE])
    assert flood_stock == {item: qty - HANDED_OUT.get(item, 0) for item, (qty, _) in STOCK[FLOOD_WAREHOUSE].items()}
    alerts = await get(platform, "/v1/disaster/stock-alerts")
    assert not [a for a in alerts if a["warehouse_id"] == ids[PROVINCE_WAREHOUSE]]  # every minimum level is met

    # Tagana volunteers in all 38 regencies and cities.
    volunteers = await every(platform, "/v1/disaster/volunteers")
    demo = [v for v in volunteers if v["member_number"].startswith("TGN-")]
    assert {v["regency_code"] for v in demo} == {r.code for r in regions.jatim_regencies()}

    # The flood being handled, as its statistics tell it.
    incident = await flood_incident(platform)
    assert (incident["status"], incident["regency_codes"]) == ("emergency_response", [FLOOD_REGENCY])
    stats = await get(platform, f"/v1/disaster/incidents/{incident['id']}/statistics")
    assert stats["households"]["households"] == len(flood_households()) + 1
    assert stats["evacuation"]["points"] == 1 and stats["evacuation"]["headcount"] == 64 and stats["evacuation"]["kitchen_portions"] == 190
    assert stats["volunteers"]["on_duty"] == 3
    assert {s["item_code"]: s["quantity"] for s in stats["stock_shipped"]} == shipped
    requests = await get(platform, f"/v1/disaster/incidents/{incident['id']}/stock-requests")
    assert [(r["status"], r["requested_by"] != r["approved_by"]) for r in requests] == [("shipped", True)]

    # Across services: the registry learnt about the flood's victims.
    await flood_reached_the_registry(platform)


async def counts(platform: Platform) -> dict:
    """What the demo data amounts to, kind by kind, with the states of its cases."""
    ids = await warehouse_ids(platform)
    incident = await flood_incident(platform)
    iid = incident["id"]
    out = {
        "persons": (await get(platform, "/v1/registry/stats/persons"))["by_regency"],
        "registry programmes": sorted((p["code"], p["version"]) for p in await get(platform, "/v1/registry/programmes")),
        "budgets": sorted((p["code"], b["year"], b["amount"], b["version"]) for p in await get(platform, "/v1/disbursement/programmes")
                          for b in p["budgets"]),
        "enrolments": sorted((e["programme_code"], e["status"]) for e in await every(platform, "/v1/registry/enrolments")),
        "shelters": sorted((s["name"], s["occupied"], s["version"]) for s in await get(platform, "/v1/shelter/shelters")),
        "staff": sorted(s["user_id"] for s in await get(platform, "/v1/shelter/staff")),
        "returns": sorted((r["status"], r["destination_code"] or "") for r in await every(platform, "/v1/homeless-return/returns")),
        "items": sorted(i["code"] for i in await get(platform, "/v1/disaster/items")),
        "stock": {code: await on_hand(platform, wid) for code, wid in sorted(ids.items())},
        "volunteers": len(await every(platform, "/v1/disaster/volunteers")),
        "incidents": len(await every(platform, "/v1/disaster/incidents")),
        "flood": (incident["version"], await get(platform, f"/v1/disaster/incidents/{iid}/statistics")),
        "deployments": len(await get(platform, f"/v1/disaster/incidents/{iid}/deployments")),
        "requests": [(r["status"], r["version"]) for r in await get(platform, f"/v1/disaster/incidents/{iid}/stock-requests")],
    }
    for name, (supervisor, _) in SUPERVISED.items():
        cases = (await get(platform, "/v1/shelter/cases", client="shelter-app", user=supervisor))["items"]
        out[f"cases of {name}"] = sorted((c["status"], c["version"], c["admitted"]) for c in cases)
    return out


async def test_a_rerun_creates_nothing_and_changes_nothing(platform: Platform):
    # Let the first run's events settle, so that only the rerun could change a count.
    await flood_reached_the_registry(platform)
    await ngawi_return_linked(platform)
    before = await counts(platform)

    report = await seed_demo_data(platform.stack)

    assert report.errors == []
    assert report.created == 0, report.lines()
    assert all(t.present > 0 and t.failed == [] for t in report.tallies.values()), report.lines()
    assert set(report.tallies) == set(demo_data.KINDS) - {"persons"}
    assert await counts(platform) == before


def demo_niks() -> list[dict]:
    """Every NIK the demo data sends anywhere, with the birth date and sex it goes with: the
    registry's persons, then the returnees (one of whom is such a person going home)."""
    people = [p for regency in regions.jatim_regencies() for h in _households(regency.code, PERSONS_PER_REGENCY) for p in h]
    returnees = [r["body"] for r in demo_data._returns(datetime.now(WIB).date()) if r["body"].get("nik")]
    return people + returnees


async def test_no_nik_of_the_demo_data_is_invalid(platform: Platform):
    niks = demo_niks()
    broken = {p["nik"]: validate_nik(p["nik"], birth_date=datetime.fromisoformat(p["birth_date"]).date(), sex=p["sex"]) for p in niks}
    assert {nik: errors for nik, errors in broken.items() if errors} == {}
    # One NIK, one person: a NIK given twice goes with the same birth date and sex.
    holders = {(p["nik"], p["birth_date"], p["sex"]) for p in niks}
    assert len(holders) == len({p["nik"] for p in niks}) >= 38 * PERSONS_PER_REGENCY

    # What the registry holds is what was sent: one household head per regency, unmasked
    # with the PII scope and a reason (the reveal is audited), is the valid NIK sent for them.
    for regency in regions.jatim_regencies():
        head = _households(regency.code)[0][0]
        found = await get(platform, f"/v1/registry/persons/{await person_id(platform, head['nik'])}",
                          headers={"X-Access-Reason": "demo data check: NIK rules"})
        assert found["nik"] == head["nik"] and found["regency_code"] == regency.code
        assert head["nik"][:4] == regency.code.replace(".", "")  # issued in the regency where the person lives
