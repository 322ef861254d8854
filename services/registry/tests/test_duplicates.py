"""Probable duplicates (similar name, same birth date, same district) queue for review;
a reviewer merges (enrolments and history follow the survivor) or dismisses."""

from __future__ import annotations

from datetime import date

import pytest

from pilar_kernel.nik import make_nik
from registry_testkit import KEYS

pytestmark = pytest.mark.stack

OFFICE = KEYS.headers("registry:read", "registry:write", "registry:verify", region="35.15", subject="dinsos-sidoarjo")
OTHER_OFFICE = KEYS.headers("registry:read", "registry:verify", region="35.16", subject="dinsos-mojokerto")
BORN = date(1948, 8, 17)


def body(name: str, serial: int, **extra) -> dict:
    return {
        "nik": make_nik("35.15.14", BORN, "M", serial), "name": name, "birth_date": BORN.isoformat(), "sex": "M",
        "village_code": "35.15.14.2002", **extra,
    }


async def test_similar_records_are_queued_and_merged_by_a_reviewer(registry):
    first = (await registry.post("/v1/persons", json=body("Mochammad Sholeh", 501), headers=OFFICE)).json()
    second = (await registry.post("/v1/persons", json=body("Mochamad Soleh", 502, ppks=["fakir_miskin"]), headers=OFFICE)).json()
    await registry.post("/v1/persons", json=body("Sutrisno Wibowo", 503), headers=OFFICE)  # same date and place, other name
    queue = (await registry.get("/v1/duplicates", headers=OFFICE)).json()
    pairs = [{c["person_id"], c["other_id"]} for c in queue]
    assert {first["id"], second["id"]} in pairs
    assert len([p for p in pairs if first["id"] in p or second["id"] in p]) == 1, "the unrelated name is not a candidate"
    assert (await registry.get("/v1/duplicates", headers=OTHER_OFFICE)).json() == []

    candidate = next(c for c in queue if {c["person_id"], c["other_id"]} == {first["id"], second["id"]})
    merged = await registry.post(f"/v1/duplicates/{candidate['id']}/merge", json={"keep": first["id"], "note": "same man, KTP checked"}, headers=OFFICE)
    assert merged.status_code == 200, merged.text
    assert merged.json()["id"] == first["id"] and "fakir_miskin" in merged.json()["ppks"]
    gone = (await registry.get(f"/v1/persons/{second['id']}", headers=OFFICE)).json()
    assert gone["status"] == "merged" and gone["merged_into"] == first["id"]
    again = await registry.post(f"/v1/duplicates/{candidate['id']}/dismiss", json={"note": "too late"}, headers=OFFICE)
    assert again.status_code == 409


async def test_dismissed_pair_is_closed(registry):
    a = (await registry.post("/v1/persons", json=body("Ahmad Fauzi", 601), headers=OFFICE)).json()
    b = (await registry.post("/v1/persons", json=body("Ahmad Fauzan", 602), headers=OFFICE)).json()
    queue = (await registry.get("/v1/duplicates", headers=OFFICE)).json()
    candidate = next(c for c in queue if {c["person_id"], c["other_id"]} == {a["id"], b["id"]})
    r = await registry.post(f"/v1/duplicates/{candidate['id']}/dismiss", json={"note": "brothers, twins"}, headers=OFFICE)
    assert r.status_code == 200 and r.json()["status"] == "dismissed"
    assert candidate["id"] not in {c["id"] for c in (await registry.get("/v1/duplicates", headers=OFFICE)).json()}
    bad_keep = await registry.post(f"/v1/duplicates/{candidate['id']}/merge", json={"keep": a["id"]}, headers=OFFICE)
    assert bad_keep.status_code == 409


async def test_a_retried_decision_with_an_idempotency_key_gets_the_first_answer(registry):
    """Issue 12: a retried merge or dismissal got a 409 ("already merged") instead of the first answer."""
    a = (await registry.post("/v1/persons", json=body("Bambang Sutejo", 701), headers=OFFICE)).json()
    b = (await registry.post("/v1/persons", json=body("Bambang Sutedjo", 702), headers=OFFICE)).json()
    c = (await registry.post("/v1/persons", json=body("Bambang Soetedjo", 703), headers=OFFICE)).json()
    queue = (await registry.get("/v1/duplicates", headers=OFFICE)).json()
    ab = next(x for x in queue if {x["person_id"], x["other_id"]} == {a["id"], b["id"]})
    ac = next(x for x in queue if {x["person_id"], x["other_id"]} == {a["id"], c["id"]})
    reviewer = KEYS.headers("registry:read", "registry:verify", region="35.15", subject="dinsos-sidoarjo", user="Reviewer-1")
    key = {**reviewer, "Idempotency-Key": f"dismiss-{ab['id']}"}
    first = await registry.post(f"/v1/duplicates/{ab['id']}/dismiss", json={"note": "cousins"}, headers=key)
    again = await registry.post(f"/v1/duplicates/{ab['id']}/dismiss", json={"note": "cousins"}, headers=key)
    assert (first.status_code, again.status_code) == (200, 200) and again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true" and first.json()["decided_by"] == "reviewer-1"
    key = {**reviewer, "Idempotency-Key": f"merge-{ac['id']}"}
    first = await registry.post(f"/v1/duplicates/{ac['id']}/merge", json={"keep": a["id"]}, headers=key)
    again = await registry.post(f"/v1/duplicates/{ac['id']}/merge", json={"keep": a["id"]}, headers=key)
    assert (first.status_code, again.status_code) == (200, 200) and again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert (await registry.get(f"/v1/persons/{c['id']}", headers=OFFICE)).json()["merged_into"] == a["id"]
