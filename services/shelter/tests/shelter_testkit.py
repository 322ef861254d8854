"""Shared by the shelter's tests: keys and tokens, the migration runner, and builders for
shelters, staff and cases in a given state."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pilar_kernel.testing import TestKeys, migrate_database
from shelter.domain import QUESTIONS

SERVICE_DIR = Path(__file__).resolve().parents[1]
KEYS = TestKeys()
CLIENT = "shelter-app"  # the caseworker tool: one client, staff told apart by the `user` claim

ADMIN = KEYS.headers("shelter:admin", subject="dinsos-jatim", user="admin-1")
ANALYST = KEYS.headers("shelter:analyst", subject="dinsos-jatim-analytics", user="analyst-1")
ALL_CONSENTS = [{"kind": k, "granted": True, "given_by": "survivor"} for k in ("services", "partner_sharing", "registry_enrolment")]
LOW_RISK = {q.id: "no" for q in QUESTIONS}


def migrate(url: str, service_dir: Path = SERVICE_DIR) -> None:
    migrate_database(service_dir, url)


def staff_headers(user: str, role: str) -> dict[str, str]:
    return KEYS.headers(f"shelter:{role}", subject=CLIENT, user=user)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Member:
    user: str
    role: str

    @property
    def h(self) -> dict[str, str]:
        return staff_headers(self.user, self.role)


@dataclass
class Team:
    shelter: dict
    caseworker: Member
    colleague: Member
    supervisor: Member
    supervisor2: Member

    @property
    def id(self) -> str:
        return self.shelter["id"]


async def new_shelter(client, *, kind: str = "women", capacity: int = 50, regency: str = "35.78") -> dict:
    r = await client.post("/v1/shelters", json={"name": unique(f"Shelter {kind}"), "kind": kind, "regency_code": regency, "capacity": capacity},
                          headers=ADMIN)
    assert r.status_code == 201, r.text
    return r.json()


async def new_member(client, shelter_id: str, role: str) -> Member:
    user = unique(role)
    r = await client.post("/v1/staff", json={"user_id": user, "name": f"Staff {user}", "role": role, "shelter_id": shelter_id}, headers=ADMIN)
    assert r.status_code == 201, r.text
    return Member(user, role)


async def new_team(client, **shelter) -> Team:
    s = await new_shelter(client, **shelter)
    return Team(s, await new_member(client, s["id"], "caseworker"), await new_member(client, s["id"], "caseworker"),
                await new_member(client, s["id"], "supervisor"), await new_member(client, s["id"], "supervisor"))


def survivor(*, child: bool = False, **overrides) -> dict:
    born = date(date.today().year - (10 if child else 30), 5, 17)
    body = {
        "name": "Sri Wahyuni" if not child else "Dewi Lestari",
        "nik": "3578015705940001",
        "birth_date": born.isoformat(),
        "sex": "F",
        "regency_code": "35.78",
        "address": "Jl. Kenjeran 101, Surabaya",
        "phone": "0812-1111-2222",
        "notes": "Arrived with bruises on both arms.",
    }
    if child:
        body |= {"guardian_name": "Bu Aminah", "guardian_contact": "0813-0000-1111"}
    body.update(overrides)
    return body


def case_body(*, child: bool = False, consents=None, person_id: str | None = None, **survivor_overrides) -> dict:
    givers = "guardian" if child else "survivor"
    consents = ALL_CONSENTS if consents is None else consents
    return {
        "survivor": survivor(child=child, **survivor_overrides),
        "referral_source": "police",
        "referral_note": "Referred by Polrestabes after a report at night.",
        "registry_person_id": person_id,
        "consents": [c | {"given_by": givers} for c in consents],
    }


async def open_case(client, team: Team, **kw) -> dict:
    r = await client.post("/v1/cases", json=case_body(**kw), headers=team.caseworker.h)
    assert r.status_code == 201, r.text
    return r.json()


STAGES = ("intake", "assessment", "plan_pending", "in_service", "admitted", "closure_pending", "closed")


async def case_in(client, team: Team, stage: str, **kw) -> str:
    """A new case of ``team``'s caseworker, walked to ``stage`` through the API."""
    cw, sup = team.caseworker.h, team.supervisor.h
    case_id = (await open_case(client, team, **kw))["id"]
    steps = [
        ("assessment", "POST", "risk-assessments", {"answers": LOW_RISK}, cw),
        ("plan_pending", "POST", "plan", {"goals": "Safety, then counselling and legal aid.", "planned_services": ["psychosocial", "legal_aid"]}, cw),
        ("in_service", "POST", "plan/approve", {}, sup),
    ]
    if stage == "admitted":
        steps.append(("admitted", "POST", "admission", None, cw))
    else:
        steps += [("closure_pending", "POST", "closure", {"reason": "reintegrated"}, cw), ("closed", "POST", "closure/approve", None, sup)]
    target = STAGES.index(stage)
    for name, method, path, body, headers in steps:
        if STAGES.index(name) > target:
            break
        r = await client.request(method, f"/v1/cases/{case_id}/{path}", json=body, headers=headers)
        assert r.status_code in (200, 201), (name, r.text)
    return case_id
