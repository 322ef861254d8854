"""The role × action matrix, through the API against real PostgreSQL.

Roles: the assigned caseworker, a supervisor of the case's shelter, a colleague caseworker
of the same shelter, a caseworker and a supervisor of another shelter, a province analyst,
a shelter admin, a token whose user is not staff, and a caseworker using a supervisor's scope.
Only the first two reach a case; the others in a shelter get 404 (and the attempt is
audited), the rest 403 before any case is looked at. Approvals and transfers are for the
supervisor alone; the audit log for that shelter's supervisors; statistics for analysts;
facilities for admins.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from shelter_testkit import ADMIN, ANALYST, CLIENT, KEYS, LOW_RISK, case_body, case_in, new_team, staff_headers, unique

pytestmark = pytest.mark.stack

ROLES = ("assigned", "supervisor", "colleague", "other_caseworker", "other_supervisor", "analyst", "admin", "unregistered", "wrong_scope")
IN_SHELTER = {"assigned", "supervisor"}
HIDDEN = {"colleague", "other_caseworker", "other_supervisor"}  # staff who may not know the case exists: 404
NOT_STAFF = {"analyst", "admin", "unregistered", "wrong_scope"}  # refused before any case is read: 403

PLAN = {"goals": "Counselling and school re-entry.", "planned_services": ["psychosocial", "education"]}
SERVICE = {"kind": "education", "provider": "SDN Kenjeran 1", "delivered_on": "2026-01-10", "outcome": "Back at school."}
INCIDENT = {"violence_types": ["neglect"], "perpetrator_relationship": "parent", "regency_code": "35.78", "narrative": "Left alone for days."}
REFERRAL = {"partner_kind": "hospital", "partner_name": "RSUD Dr. Soetomo", "purpose": "Medical check."}

# action: (stage the case must be in, method, path under the case, body, status when allowed, supervisor only)
CASE_ACTIONS = {
    "read": ("intake", "GET", "", None, 200, False),
    "update": ("intake", "PATCH", "", {"version": 1, "survivor": {"notes": "Calmer today."}}, 200, False),
    "history": ("intake", "GET", "/history", None, 200, False),
    "add_incident": ("intake", "POST", "/incidents", INCIDENT, 201, False),
    "list_incidents": ("intake", "GET", "/incidents", None, 200, False),
    "assess": ("intake", "POST", "/risk-assessments", {"answers": LOW_RISK}, 201, False),
    "record_consent": ("intake", "POST", "/consents", {"kind": "services", "granted": True, "given_by": "survivor"}, 201, False),
    "refer": ("intake", "POST", "/referrals", REFERRAL, 201, False),
    "list_referrals": ("intake", "GET", "/referrals", None, 200, False),
    "submit_plan": ("assessment", "POST", "/plan", PLAN, 201, False),
    "approve_plan": ("plan_pending", "POST", "/plan/approve", {}, 200, True),
    "return_plan": ("plan_pending", "POST", "/plan/return", {"note": "Add a safety plan."}, 200, True),
    "add_service": ("in_service", "POST", "/services", SERVICE, 201, False),
    "admit": ("in_service", "POST", "/admission", None, 201, False),
    "discharge": ("admitted", "POST", "/discharge", {}, 200, False),
    "request_closure": ("in_service", "POST", "/closure", {"reason": "referred"}, 200, False),
    "approve_closure": ("closure_pending", "POST", "/closure/approve", None, 200, True),
    "reject_closure": ("closure_pending", "POST", "/closure/reject", None, 200, True),
    "reopen": ("closed", "POST", "/reopen", {"reason": "survivor_request"}, 200, False),
    "transfer": ("intake", "POST", "/transfer", "TRANSFER", 200, True),
}


@pytest.fixture(scope="module")
async def world(shelter_api):
    team, other = await new_team(shelter_api), await new_team(shelter_api)
    headers = {
        "assigned": team.caseworker.h,
        "supervisor": team.supervisor.h,
        "colleague": team.colleague.h,
        "other_caseworker": other.caseworker.h,
        "other_supervisor": other.supervisor.h,
        "analyst": ANALYST,
        "admin": ADMIN,
        "unregistered": staff_headers(unique("ghost"), "caseworker"),
        "wrong_scope": KEYS.headers("shelter:supervisor", subject=CLIENT, user=team.caseworker.user),
    }
    users = {"assigned": team.caseworker.user, "supervisor": team.supervisor.user, "colleague": team.colleague.user,
             "other_caseworker": other.caseworker.user, "other_supervisor": other.supervisor.user}
    return team, other, headers, users


async def audit_outcomes(client, case_id: str, user: str) -> set[str]:
    async with client.app.state.session_factory() as s:
        rows = await s.execute(text("SELECT outcome FROM audit_log WHERE case_id = CAST(:c AS uuid) AND user_id = :u"), {"c": case_id, "u": user})
        return {r[0] for r in rows}


def expected(role: str, allowed: int, supervisor_only: bool) -> int:
    if role in NOT_STAFF:
        return 403
    if role in HIDDEN:
        return 404
    if supervisor_only and role == "assigned":
        return 403
    return allowed


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", list(CASE_ACTIONS))
async def test_case_matrix(shelter_api, world, action, role):
    team, _other, headers, users = world
    stage, method, path, body, allowed, supervisor_only = CASE_ACTIONS[action]
    # Tokens refused before any case is read do not need the case walked to its stage.
    case_id = await case_in(shelter_api, team, "intake" if role in NOT_STAFF else stage)
    if body == "TRANSFER":
        body = {"caseworker_id": team.colleague.user, "reason": "Workload"}
    r = await shelter_api.request(method, f"/v1/cases/{case_id}{path}", json=body, headers=headers[role])
    want = expected(role, allowed, supervisor_only)
    assert r.status_code == want, r.text
    if role in HIDDEN:
        assert r.json()["detail"] == "no such case"
        assert await audit_outcomes(shelter_api, case_id, users[role]) == {"denied"}
    elif want in (200, 201):
        assert "ok" in await audit_outcomes(shelter_api, case_id, users[role])


async def test_lists_show_only_what_each_may_see(shelter_api, world):
    _team, _other, headers, users = world
    team = await new_team(shelter_api)  # a fresh shelter, so its list is short
    mine = await case_in(shelter_api, team, "intake")
    theirs = (await shelter_api.post("/v1/cases", json=case_body() | {"caseworker_id": team.colleague.user}, headers=team.supervisor.h)).json()["id"]
    seen = {}
    for role, h in {"assigned": team.caseworker.h, "colleague": team.colleague.h, "supervisor": team.supervisor.h,
                    "other_supervisor": headers["other_supervisor"], "other_caseworker": headers["other_caseworker"]}.items():
        r = await shelter_api.get("/v1/cases?limit=200", headers=h)
        assert r.status_code == 200
        seen[role] = {c["id"] for c in r.json()["items"]} & {mine, theirs}
    assert seen == {"assigned": {mine}, "colleague": {theirs}, "supervisor": {mine, theirs}, "other_supervisor": set(), "other_caseworker": set()}
    for role in NOT_STAFF:
        assert (await shelter_api.get("/v1/cases", headers=headers[role])).status_code == 403


async def test_a_hidden_case_looks_exactly_like_a_missing_one(shelter_api, world):
    team, _other, headers, _users = world
    case_id = await case_in(shelter_api, team, "intake")
    hidden = await shelter_api.get(f"/v1/cases/{case_id}", headers=headers["colleague"])
    missing = await shelter_api.get(f"/v1/cases/{uuid.uuid4()}", headers=headers["colleague"])
    strip = lambda r: {k: v for k, v in r.json().items() if k != "instance"}  # noqa: E731
    assert hidden.status_code == missing.status_code == 404 and strip(hidden) == strip(missing)


@pytest.mark.parametrize("role", ROLES)
async def test_audit_log_is_for_the_shelters_supervisors(shelter_api, world, role):
    team, _other, headers, _users = world
    r = await shelter_api.get(f"/v1/shelters/{team.id}/audit?limit=5", headers=headers[role])
    assert r.status_code == (200 if role == "supervisor" else 403), r.text


@pytest.mark.parametrize("role", ROLES)
async def test_statistics_are_for_analysts(shelter_api, world, role):
    _team, _other, headers, _users = world
    r = await shelter_api.get("/v1/statistics/cases", headers=headers[role])
    assert r.status_code == (200 if role == "analyst" else 403), r.text


@pytest.mark.parametrize("role", ROLES)
async def test_facilities_and_staff_are_for_admins(shelter_api, world, role):
    team, _other, headers, _users = world
    body = {"name": unique("Shelter"), "kind": "women", "regency_code": "35.15", "capacity": 4}
    r = await shelter_api.post("/v1/shelters", json=body, headers=headers[role])
    assert r.status_code == (201 if role == "admin" else 403), r.text
    r = await shelter_api.post("/v1/staff", json={"user_id": unique("cw"), "name": "X", "role": "caseworker", "shelter_id": team.id},
                               headers=headers[role])
    assert r.status_code == (201 if role == "admin" else 403), r.text
    staff = await shelter_api.get("/v1/staff", headers=headers[role])
    assert staff.status_code == (200 if role in ("admin", "supervisor", "other_supervisor") else 403), staff.text
    if role == "supervisor":
        assert {s["shelter_id"] for s in staff.json()} == {team.id}
