"""De-identified statistics against real PostgreSQL: occupancy, cases by violence type,
regency and month, days from intake to closure, referrals by outcome; counts under 5 shown
as "<5", averages over fewer than 5 cases withheld, a regional analyst limited to the region.

The cases here live in Jember (35.09), which no other test uses, and the analyst's token is
limited to it, so the figures are exactly this test's."""

from __future__ import annotations

import json
from datetime import date

import pytest

from shelter_testkit import KEYS, LOW_RISK, new_team, open_case

pytestmark = pytest.mark.stack

JEMBER = "35.09"
ANALYST_JEMBER = KEYS.headers("shelter:analyst", subject="dinsos-jatim-analytics", region=JEMBER)
ANALYST_MALANG = KEYS.headers("shelter:analyst", subject="dinsos-jatim-analytics", region="35.07")


async def incident(client, team, case_id, *types):
    body = {"violence_types": list(types), "perpetrator_relationship": "spouse", "regency_code": JEMBER}
    assert (await client.post(f"/v1/cases/{case_id}/incidents", json=body, headers=team.caseworker.h)).status_code == 201


async def close(client, team, case_id):
    cw, sup = team.caseworker.h, team.supervisor.h
    for path, body, h in [("discharge", {}, cw), ("risk-assessments", {"answers": LOW_RISK}, cw),
                          ("plan", {"goals": "Go home.", "planned_services": ["psychosocial"]}, cw), ("plan/approve", {}, sup),
                          ("closure", {"reason": "reintegrated"}, cw), ("closure/approve", None, sup)]:
        r = await client.post(f"/v1/cases/{case_id}/{path}", json=body, headers=h)
        assert r.status_code in (200, 201), (path, r.text)


async def stats(client, path, headers=ANALYST_JEMBER, **params):
    r = await client.get(f"/v1/statistics/{path}", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_statistics_are_counts_with_small_ones_suppressed(shelter_api):
    c = shelter_api
    women = await new_team(c, regency=JEMBER, capacity=20)
    children = await new_team(c, kind="children", regency=JEMBER, capacity=10)
    adults = [(await open_case(c, women, regency_code=JEMBER))["id"] for _ in range(6)]
    kids = [(await open_case(c, children, child=True, regency_code=JEMBER))["id"] for _ in range(2)]
    for i, case_id in enumerate(adults[:5]):
        await incident(c, women, case_id, *(["physical", "sexual"] if i < 2 else ["physical"]))
    await incident(c, women, adults[5], "trafficking")
    await incident(c, women, adults[5], "exploitation", "physical")  # a second incident: still one case per type
    for case_id in kids:
        await incident(c, children, case_id, "neglect")
    for case_id, team in [(a, women) for a in adults] + [(k, children) for k in kids]:
        assert (await c.post(f"/v1/cases/{case_id}/admission", headers=team.caseworker.h)).status_code == 201

    occupancy = {s["shelter_id"]: s for s in (await stats(c, "occupancy"))["items"]}
    assert set(occupancy) == {women.id, children.id}
    assert (occupancy[women.id]["capacity"], occupancy[women.id]["occupied"]) == (20, 6)
    assert occupancy[children.id]["occupied"] == "<5"
    assert (await stats(c, "occupancy", headers=ANALYST_MALANG))["items"] == []
    # The shelter list does not give the analyst what statistics withhold; staff see the number.
    assert (await c.get(f"/v1/shelters/{children.id}", headers=ANALYST_JEMBER)).json()["occupied"] == "<5"
    assert (await c.get(f"/v1/shelters/{children.id}", headers=children.caseworker.h)).json()["occupied"] == 2

    month = date.today().strftime("%Y-%m")
    by_type = {r["violence_type"]: r["cases"] for r in (await stats(c, "cases", by="violence_type"))["items"]}
    assert by_type == {"physical": 6, "sexual": "<5", "trafficking": "<5", "exploitation": "<5", "neglect": "<5"}
    assert (await stats(c, "cases", by="regency"))["items"] == [{"regency_code": JEMBER, "cases": 8}]
    full = await stats(c, "cases")
    assert full["dimensions"] == ["violence_type", "regency_code", "month"]
    assert {"violence_type": "physical", "regency_code": JEMBER, "month": month, "cases": 6} in full["items"]
    assert (await stats(c, "cases", by="month", **{"from": "2000-01-01", "to": "2000-12-31"}))["items"] == []
    assert (await stats(c, "cases", headers=ANALYST_MALANG, by="regency"))["items"] == []

    referral = {"partner_kind": "legal_aid", "partner_name": "LBH Jember", "purpose": "Court case."}
    for i, case_id in enumerate(adults):
        rid = (await c.post(f"/v1/cases/{case_id}/referrals", json=referral, headers=women.caseworker.h)).json()["id"]
        steps = [("reject", {"reason": "No capacity."})] if i == 5 else [("accept", {}), ("complete", {"successful": True})]
        for action, body in steps:
            r = await c.post(f"/v1/cases/{case_id}/referrals/{rid}/{action}", json=body, headers=women.caseworker.h)
            assert r.status_code == 200, r.text
    outcomes = {r["outcome"]: r["referrals"] for r in (await stats(c, "referrals"))["items"]}
    assert outcomes == {"done_successful": 5, "rejected": "<5"}
    by_partner = (await stats(c, "referrals", by_partner="true"))["items"]
    assert {"outcome": "done_successful", "partner_kind": "legal_aid", "referrals": 5} in by_partner

    for case_id in adults[:4]:
        await close(c, women, case_id)
    closure = await stats(c, "closure-time")
    assert closure == {"closed_cases": "<5", "average_days": None, "by_regency": [{"regency_code": JEMBER, "closed_cases": "<5", "average_days": None}]}
    await close(c, women, adults[4])
    closure = await stats(c, "closure-time")
    assert closure["closed_cases"] == 5 and 0 <= closure["average_days"] < 1
    assert closure["by_regency"] == [{"regency_code": JEMBER, "closed_cases": 5, "average_days": closure["average_days"]}]

    everything = json.dumps([await stats(c, p) for p in ("occupancy", "cases", "closure-time", "referrals")])
    assert not any(case_id in everything for case_id in adults + kids)
