"""The audit log against real PostgreSQL: every read and change of a case leaves an entry
(who, when, what, which case) with no survivor data, refused attempts too; the database
refuses to alter or delete entries; each shelter's supervisors read the entries made while
the case was theirs."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shelter_testkit import LOW_RISK, case_in, new_team, open_case

pytestmark = pytest.mark.stack

SECRETS = ("Sri Wahyuni", "3578015705940001", "Kenjeran", "bruises", "Polrestabes", "Beaten")


async def entries(client, team, case_id, **params) -> list[dict]:
    out, cursor = [], None
    while True:
        query = {"case_id": case_id, "limit": 3, **params} | ({"cursor": cursor} if cursor else {})
        r = await client.get(f"/v1/shelters/{team.id}/audit", params=query, headers=team.supervisor.h)
        assert r.status_code == 200, r.text
        out += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if not cursor:
            return out


async def test_every_read_and_change_is_recorded_without_survivor_data(shelter_api):
    c = shelter_api
    team = await new_team(c)
    cw = team.caseworker.h | {"X-Correlation-Id": "audit-test-1"}
    case_id = (await open_case(c, team))["id"]
    await c.get(f"/v1/cases/{case_id}", headers=cw)
    await c.post(f"/v1/cases/{case_id}/incidents", headers=cw, json={
        "violence_types": ["sexual"], "perpetrator_relationship": "step_parent", "regency_code": "35.78", "narrative": "Beaten and abused."})
    await c.get(f"/v1/cases/{case_id}/incidents", headers=cw)
    await c.post(f"/v1/cases/{case_id}/risk-assessments", json={"answers": LOW_RISK}, headers=cw)
    await c.patch(f"/v1/cases/{case_id}", json={"version": 2, "survivor": {"phone": "0812-0000-0000"}}, headers=cw)
    assert (await c.post(f"/v1/cases/{case_id}/plan/approve", json={}, headers=team.supervisor.h)).status_code == 409  # nothing to approve
    assert (await c.get(f"/v1/cases/{case_id}", headers=team.colleague.h)).status_code == 404
    await c.get(f"/v1/cases/{case_id}", headers=team.supervisor.h)

    log = await entries(c, team, case_id)
    assert [(e["action"], e["outcome"], e["user_id"]) for e in log] == [
        ("case.open", "ok", team.caseworker.user),
        ("case.read", "ok", team.caseworker.user),
        ("incident.create", "ok", team.caseworker.user),
        ("incident.list", "ok", team.caseworker.user),
        ("assessment.create", "ok", team.caseworker.user),
        ("case.update", "ok", team.caseworker.user),
        # the refused approval left nothing: its transaction rolled back
        ("case.read", "denied", team.colleague.user),
        ("case.read", "ok", team.supervisor.user),
    ]
    assert all(e["subject"] == "shelter-app" and e["case_id"] == case_id for e in log)
    assert log[1]["correlation_id"] == "audit-test-1" and log[1]["role"] == "caseworker"
    assert log[5]["detail"] == {"fields": ["survivor.phone"]}
    assert [e["at"] for e in log] == sorted(e["at"] for e in log)
    assert not any(s in json.dumps(log) for s in SECRETS + ("0812-0000-0000",))


async def test_the_log_cannot_be_altered(shelter_api):
    team = await new_team(shelter_api)
    case_id = (await open_case(shelter_api, team))["id"]
    for sql in ("UPDATE audit_log SET user_id = 'someone-else' WHERE case_id = CAST(:c AS uuid)",
                "DELETE FROM audit_log WHERE case_id = CAST(:c AS uuid)",
                "TRUNCATE audit_log",
                "DELETE FROM consent WHERE case_id = CAST(:c AS uuid)"):
        with pytest.raises(DBAPIError, match="append-only"):
            async with shelter_api.app.state.session_factory() as s, s.begin():
                await s.execute(text(sql), {"c": case_id})
    assert [e["action"] for e in await entries(shelter_api, team, case_id)] == ["case.open"]


async def test_each_shelter_reads_its_own_part_of_a_transferred_case(shelter_api):
    c = shelter_api
    team, other = await new_team(c), await new_team(c)
    case_id = await case_in(c, team, "intake")
    move = {"caseworker_id": other.caseworker.user, "shelter_id": other.id, "reason": "Closer to her family"}
    assert (await c.post(f"/v1/cases/{case_id}/transfer", json=move, headers=team.supervisor.h)).status_code == 200
    await c.get(f"/v1/cases/{case_id}", headers=other.caseworker.h)
    assert (await c.get(f"/v1/cases/{case_id}", headers=team.caseworker.h)).status_code == 404

    before = [(e["action"], e["outcome"]) for e in await entries(c, team, case_id)]
    assert before == [("case.open", "ok"), ("case.transfer_out", "ok")]
    # The former caseworker's attempt concerns the case as it is now: the new shelter sees it.
    after = [(e["action"], e["outcome"], e["user_id"]) for e in await entries(c, other, case_id)]
    assert after == [("case.transfer_in", "ok", team.supervisor.user), ("case.read", "ok", other.caseworker.user),
                     ("case.read", "denied", team.caseworker.user)]
    r = await c.get(f"/v1/shelters/{other.id}/audit", headers=team.supervisor.h)
    assert r.status_code == 403
