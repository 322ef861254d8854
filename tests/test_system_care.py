"""Care across services, end to end, through the gateway with the demo clients' real tokens.

* A shelter case from intake to closure: the province's console sets up a shelter and its
  staff; the caseworkers' app walks a survivor's case through assessment, an approved plan,
  a stay and a discharge with her consent to economic support; the registry turns that
  discharge into a KUBE enrolment proposal. Nothing of the case (narratives, risk answers,
  violence details, the shelter) reaches the registry or the case's events, and the
  province's console, which holds no staff role, cannot read the case.
* A stranded person found in Surabaya goes home to Makassar along the route the
  homeless-return service plans (the first leg is handed over to the relay partner, Dinsos
  Sulawesi Selatan); the registry records the completed return. A regency office elsewhere
  (Sidoarjo) does not see the case.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from aiokafka import AIOKafkaConsumer

from pilar_kernel.nik import make_nik
from platform_testkit import Platform, converge

pytestmark = pytest.mark.stack

RUN = uuid.uuid4().hex[:6]  # tells this run's shelter, staff and people apart from any other
WIB = timezone(timedelta(hours=7))  # the services' dates are Jawa Timur's local days
CONSOLE = "dinsos-jatim"  # the provincial officers' console
OFFICER = f"officer.{RUN}"  # the officer it names in its tokens
APP = "shelter-app"  # the shelters' caseworker app, which names its staff

# What the caseworker writes into the case, each string distinctive enough to be found
# anywhere it should not be.
CASE_ADDRESS = "Gang Melati 14, Rungkut Lor"
CASE_PHONE = "0812-7730-4415"
CASE_NOTES = "Burn scar on the left forearm; sleeps badly."
REFERRAL_NOTE = "Brought in by Polsek Rungkut after a report at night."
NARRATIVE = "Pushed down the stairs after a quarrel about her wages."
PLAN_GOALS = "Safety planning with her sister in Gresik; trauma counselling; legal aid for the divorce."
SERVICE_OUTCOME = "Trauma counselling, three sessions at the UPT."
CLOSURE_NOTE = "Back with her sister; wants to start a tailoring stall."
SHELTER_NAME = f"Rumah Aman Cempaka {RUN}"
RED_FLAGS = ("threat_to_kill", "strangulation")  # the risk questions answered "yes"
VIOLENCE = ["physical", "psychological"]
CASE_TEXTS = (CASE_ADDRESS, "Melati 14", CASE_PHONE, CASE_NOTES, "forearm", REFERRAL_NOTE, "Polsek", NARRATIVE, "stairs",
              PLAN_GOALS, "Gresik", SERVICE_OUTCOME, CLOSURE_NOTE, "tailoring", SHELTER_NAME, "Cempaka", *RED_FLAGS)


def wib_today() -> date:
    return datetime.now(WIB).date()


def log_paths(platform: Platform, *names: str) -> str:
    return "; logs: " + ", ".join(str(platform.stack.log_path(name)) for name in names)


async def register_person(platform: Platform, headers: dict[str, str], district: str, sex: str, **body) -> tuple[dict, str]:
    """A new registry person with a synthetic NIK of ``district``; returns (record, NIK)."""
    rng = random.Random()
    for _ in range(5):
        born = date(rng.randrange(1975, 2000), rng.randrange(1, 13), rng.randrange(1, 29))
        nik = make_nik(district, born, sex, rng.randrange(5000, 10000))
        r = await platform.call("POST", "/v1/registry/persons", headers=headers, expect=(201, 409),
                       json={"nik": nik, "sex": sex, "birth_date": born.isoformat(), **body})
        if r.status_code == 201:
            return r.json(), nik
    raise AssertionError(f"no free synthetic NIK in {district} after 5 tries: {r.text}")


async def events_on_the_wire(platform: Platform, topic: str, key: str, *, last_type: str) -> list[tuple[str, dict]]:
    """Every event of ``topic`` with Kafka key ``key`` as the broker holds it (type without
    its prefix, payload), read from the beginning until one of type ``last_type`` arrives."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=platform.stack.kafka_bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    seen: list[tuple[str, dict]] = []
    try:
        async def arrived():
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    if record.key == key.encode():
                        ce_type = dict(record.headers)["ce_type"].decode()  # e.g. ...shelter.case.opened.v1
                        seen.append((".".join(ce_type.split(".")[-2:]), json.loads(record.value)))
            return seen if any(t.startswith(last_type + ".") for t, _ in seen) else None

        return await converge(arrived, timeout=60, what=f"{topic} events of {key} up to {last_type}" + log_paths(platform, "shelter"))
    finally:
        await consumer.stop()


# -- shelter case to KUBE -------------------------------------------------------------------


async def test_shelter_case_ends_as_a_kube_proposal_and_its_details_stay_in_the_shelter(platform: Platform):
    console = await platform.headers(CONSOLE, user=OFFICER)

    # The survivor is already in the registry: poor (decile 2), so eligible for KUBE.
    person, nik = await register_person(platform, console, "35.78.02", "F", name="Ratna Kusumawardani", village_code="35.78.02.1001",
                                        decile=2, decile_date=wib_today().replace(day=1).isoformat())
    person_id = person["id"]
    assert person["ppks"] == [] and person["regency_code"] == "35.78"

    # The province's console adds a shelter and its staff; the staff's ids are the `user`
    # the caseworker app names in their tokens.
    shelter = await platform.json("POST", "/v1/shelter/shelters", headers=console, expect=201,
                       json={"name": SHELTER_NAME, "kind": "women", "regency_code": "35.78", "capacity": 6})
    shelter_id = shelter["id"]
    staff = {"caseworker": f"cw-{RUN}", "colleague": f"cw2-{RUN}", "supervisor": f"spv-{RUN}"}
    for who, user in staff.items():
        role = "supervisor" if who == "supervisor" else "caseworker"
        await platform.json("POST", "/v1/shelter/staff", headers=console, expect=201,
                 json={"user_id": user, "name": f"Staff {user}", "role": role, "shelter_id": shelter_id})
    cw = await platform.headers(APP, user=staff["caseworker"], scopes=["shelter:caseworker"])
    colleague = await platform.headers(APP, user=staff["colleague"], scopes=["shelter:caseworker"])
    spv = await platform.headers(APP, user=staff["supervisor"], scopes=["shelter:supervisor"])

    async def occupied() -> int:
        return (await platform.json("GET", f"/v1/shelter/shelters/{shelter_id}", headers=console))["occupied"]

    # Intake: consent to services and to sharing with partners, not yet to registry enrolment.
    receipt = await platform.json("POST", "/v1/shelter/cases", headers=cw, expect=201, json={
        "survivor": {"name": person["name"], "nik": nik, "birth_date": person["birth_date"], "sex": "F", "regency_code": "35.78",
                     "address": CASE_ADDRESS, "phone": CASE_PHONE, "notes": CASE_NOTES},
        "referral_source": "police", "referral_note": REFERRAL_NOTE, "registry_person_id": person_id,
        "consents": [{"kind": k, "granted": True, "given_by": "survivor"} for k in ("services", "partner_sharing")],
    })
    case_id = receipt["id"]
    assert (receipt["status"], receipt["caseworker_id"], receipt["shelter_id"]) == ("intake", staff["caseworker"], shelter_id)
    case_url = f"/v1/shelter/cases/{case_id}"

    questionnaire = await platform.json("GET", "/v1/shelter/risk-questions", headers=cw)
    answers = {q["id"]: "yes" if q["id"] in RED_FLAGS else "no" for q in questionnaire["questions"]}
    assert set(RED_FLAGS) <= set(answers)
    assessed = await platform.json("POST", f"{case_url}/risk-assessments", headers=cw, expect=201, json={"answers": answers})
    assert assessed["level"] == "critical"
    await platform.json("POST", f"{case_url}/incidents", headers=cw, expect=201, json={
        "violence_types": VIOLENCE, "perpetrator_relationship": "spouse", "occurred_on": (date.today() - timedelta(days=3)).isoformat(),
        "regency_code": "35.78", "narrative": NARRATIVE})

    # The plan: written by the caseworker, approved by the supervisor only.
    await platform.json("POST", f"{case_url}/plan", headers=cw, expect=201,
             json={"goals": PLAN_GOALS, "planned_services": ["psychosocial", "legal_aid", "safe_housing"]})
    await platform.call("POST", f"{case_url}/plan/approve", headers=cw, expect=403, json={})
    assert (await platform.json("POST", f"{case_url}/plan/approve", headers=spv, json={}))["status"] == "in_service"
    await platform.json("POST", f"{case_url}/services", headers=cw, expect=201, json={
        "kind": "psychosocial", "provider": "UPT PPA Surabaya", "delivered_on": date.today().isoformat(), "outcome": SERVICE_OUTCOME})

    # A bed, then the discharge: economic support waits for consent to registry enrolment.
    await platform.json("POST", f"{case_url}/admission", headers=cw, expect=201)
    assert await occupied() == 1
    refused = await platform.json("POST", f"{case_url}/discharge", headers=cw, expect=422, json={"economic_support_programme": "KUBE"})
    assert refused["errors"][0]["rule"] == "consent.registry_enrolment"
    assert await occupied() == 1  # the refused discharge left her in her bed
    await platform.json("POST", f"{case_url}/consents", headers=cw, expect=201,
             json={"kind": "registry_enrolment", "granted": True, "given_by": "survivor"})
    stay = await platform.json("POST", f"{case_url}/discharge", headers=cw, json={"economic_support_programme": "KUBE"})
    assert stay["discharged_at"] is not None and stay["economic_support_programme"] == "KUBE"
    assert await occupied() == 0

    # Closure: asked for by the caseworker, approved by the supervisor.
    closing = await platform.json("POST", f"{case_url}/closure", headers=cw, json={"reason": "reintegrated", "note": CLOSURE_NOTE})
    assert closing["status"] == "closure_pending"
    await platform.call("POST", f"{case_url}/closure/approve", headers=cw, expect=403)
    closed = await platform.json("POST", f"{case_url}/closure/approve", headers=spv)
    assert (closed["status"], closed["closure_reason"]) == ("closed", "reintegrated")
    case = await platform.json("GET", case_url, headers=cw)
    assert case["survivor"]["address"] == CASE_ADDRESS and case["registry_person_id"] == person_id
    assert case["consents"]["registry_enrolment"]["granted"] is True

    # Need-to-know: the province's console holds no staff role, not even when it names the
    # caseworker; another caseworker of the same shelter is told the case does not exist.
    for headers in (console, await platform.headers(CONSOLE, user=staff["caseworker"])):
        denied = await platform.call("GET", case_url, headers=headers, expect=(403, 404))
        assert not any(text.lower() in denied.text.lower() for text in CASE_TEXTS + (person["name"],))
    await platform.call("GET", case_url, headers=colleague, expect=404)
    audit = await platform.json("GET", f"/v1/shelter/shelters/{shelter_id}/audit", headers=spv, params={"case_id": case_id, "limit": 500})
    denials = [(e["user_id"], e["action"]) for e in audit["items"] if e["outcome"] == "denied"]
    assert denials == [(staff["colleague"], "case.read")], denials  # the refused attempt is on record

    # The registry turns the consented discharge into a KUBE proposal, made by a neutral proposer.
    async def proposed():
        page = await platform.json("GET", f"/v1/registry/persons/{person_id}/enrolments", headers=console)
        return page["items"] or None

    enrolments = await converge(proposed, timeout=60, what="the registry to propose KUBE" + log_paths(platform, "shelter", "registry"))
    assert [(e["programme_code"], e["status"], e["proposed_by"]) for e in enrolments] == [("KUBE", "proposed", "system:social-referral")]
    enrolment = enrolments[0]
    assert enrolment["regency_code"] == "35.78" and enrolment["reason"] is None

    # Nothing of the case is in the registry's answers about her.
    seen_by_registry = [
        await platform.call("GET", f"/v1/registry/persons/{person_id}", headers=console),
        await platform.call("GET", f"/v1/registry/persons/{person_id}/enrolments", headers=console),
        await platform.call("GET", f"/v1/registry/enrolments/{enrolment['id']}", headers=console),
        await platform.call("GET", "/v1/registry/enrolments", headers=console, params={"person_id": person_id}),
    ]
    registry_text = " ".join(r.text for r in seen_by_registry).lower()
    case_facts = CASE_TEXTS + (case_id, shelter_id, *staff.values(), *VIOLENCE, "spouse", "kekerasan", "shelter", "korban")
    leaked = [text for text in case_facts if text.lower() in registry_text]
    assert leaked == [], f"the registry shows case details: {leaked}"
    record = seen_by_registry[0].json()
    assert record["ppks"] == [] and record["version"] == person["version"]  # no victim category was added

    # The case's events as the broker carries them: coarse facts only; the registry person id
    # travels once, in the consented discharge, which then names no violence.
    events = await events_on_the_wire(platform, "shelter.case", case_id, last_type="closed")
    assert [t for t, _ in events] == ["opened.v1", "admitted.v1", "discharged.v1", "closed.v1"]
    payloads = dict(events)
    assert payloads["discharged.v1"]["economic_support"] == {"person_id": person_id, "programme_code": "KUBE"}
    assert "violence_types" not in payloads["discharged.v1"]
    assert sorted(payloads["closed.v1"]["violence_types"]) == VIOLENCE
    for kind, payload in events:
        text = json.dumps(payload).lower()
        leaked = [t for t in CASE_TEXTS + (person["name"], nik, staff["caseworker"], staff["supervisor"]) if t.lower() in text]
        assert leaked == [], f"{kind} carries case details: {leaked}"
        assert (person_id in text) == (kind == "discharged.v1"), kind


# -- return to Makassar ---------------------------------------------------------------------


MAKASSAR = "73.71"
PARTNER_OFFICE = "Dinas Sosial Sulawesi Selatan"  # the relay partner for Sulawesi and the east


async def domicile_note(platform: Platform, person_id: str) -> str | None:
    """The registry's note of where the person lives, as the province's console reads it."""
    person = await platform.json("GET", f"/v1/registry/persons/{person_id}", headers=await platform.headers(CONSOLE, user=OFFICER))
    return person["domicile_note"]


async def test_stranded_person_returns_to_makassar_and_the_registry_records_it(platform: Platform):
    console = await platform.headers(CONSOLE, user=OFFICER)
    sidoarjo = await platform.headers("dinsos-sidoarjo")
    person, nik = await register_person(platform, console, "73.71.02", "M", name="Andi Baso Rahman")
    person_id = person["id"]
    assert person["ppks"] == []

    # The planned route: by sea to the relay partner's Dinsos, ending in Makassar. A place in
    # Sulawesi beyond the partner's province (Kendari) needs a second leg from there.
    route = await platform.json("GET", f"/v1/homeless-return/routes/{MAKASSAR}", headers=console)
    assert route[0]["from_code"] == "35" and route[0]["receiving_office"] == PARTNER_OFFICE and route[-1]["to_code"] == MAKASSAR
    assert [leg["seq"] for leg in route] == list(range(1, len(route) + 1))
    beyond = await platform.json("GET", "/v1/homeless-return/routes/74.71", headers=console)
    assert [(leg["from_code"], leg["to_code"], leg["receiving_office"]) for leg in beyond] == [
        ("35", "73", PARTNER_OFFICE), ("73", "74.71", "Dinas Sosial Sulawesi Tenggara")]

    # Found at Surabaya's port yesterday, out of money after a job offer that was a scam.
    found_at = datetime.now(UTC) - timedelta(hours=30)
    found_day = found_at.astimezone(WIB).date()
    case = await platform.json("POST", "/v1/homeless-return/returns", headers=console, expect=201, json={
        "direction": "outbound", "found_at": found_at.isoformat(), "found_place_code": "35.78",
        "found_place_note": "Pelabuhan Tanjung Perak", "referred_by": "satpol_pp", "documents": "ktp", "cause": "job_scam",
        "health_note": "tired, no injuries", "name": person["name"], "birth_date": person["birth_date"], "sex": "M",
        "origin_code": MAKASSAR, "nik": nik})
    return_id = case["id"]
    assert case["status"] == "reported" and case["nik_known"] is True
    url = f"/v1/homeless-return/returns/{return_id}"

    # The registry's person events reach the service's projection: the NIK links the case to the person.
    async def linked():
        return (await platform.json("GET", url, headers=console))["person_id"] == person_id

    await converge(linked, timeout=60, what="the return to be linked to the registry person" + log_paths(platform, "registry", "homeless-return"))

    in_care = await platform.json("POST", f"{url}/care-stays", headers=console, expect=201,
                       json={"facility_type": "upt", "facility_name": "UPT Pelayanan Sosial Tuna Sosial Surabaya", "admitted_on": found_day.isoformat()})
    assert in_care["status"] == "in_care"
    await platform.json("POST", f"{url}/counselling", headers=console, expect=201,
             json={"held_on": found_day.isoformat(), "counsellor": "Bu Rina", "topic": "job offers and scams"})
    await platform.json("PUT", f"{url}/destination", headers=console, json={
        "destination_code": MAKASSAR, "family_contact_name": "Daeng Ngai", "family_contact_phone": "0852-4100-7788", "family_relationship": "mother"})
    verified = await platform.json("POST", f"{url}/verification", headers=console, json={"note": "Dinsos Sulsel confirmed the family in Makassar"})
    assert verified["status"] == "verified"

    # One booking per leg the route has: a ship first, then overland. Departures and
    # handovers are spread between the day after he was found and a few minutes ago.
    first_departure = found_at + timedelta(hours=4)
    step = (datetime.now(UTC) - timedelta(minutes=5) - first_departure) / (2 * len(route))
    moments = [first_departure + step * i for i in range(2 * len(route))]
    legs = [{"mode": "ship" if leg["seq"] == 1 else "bus", "ticket_cost": 350_000 if leg["seq"] == 1 else 90_000,
             "escort": "Pak Hadi", "departure_at": moments[2 * i].isoformat()} for i, leg in enumerate(route)]
    scheduled = await platform.json("POST", f"{url}/schedule", headers=console, json={"legs": legs})
    assert scheduled["status"] == "scheduled"
    assert [(leg["from_code"], leg["to_code"]) for leg in scheduled["legs"]] == [(leg["from_code"], leg["to_code"]) for leg in route]
    stay_id = in_care["care_stays"][0]["id"]
    await platform.json("PATCH", f"{url}/care-stays/{stay_id}", headers=console, json={"left_on": moments[0].astimezone(WIB).date().isoformat()})

    for i, leg in enumerate(route):
        seq = leg["seq"]
        moving = await platform.json("POST", f"{url}/legs/{seq}/departure", headers=console, json={"departed_at": moments[2 * i].isoformat()})
        assert moving["status"] == "in_transit"
        after = await platform.json("POST", f"{url}/legs/{seq}/handover", headers=console, json={
            "handed_over_at": moments[2 * i + 1].isoformat(), "handover_document_no": f"BAST/{RUN}/{seq}",
            "received_by": f"Officer of {leg['receiving_office']}"})
        assert after["status"] == ("returned" if seq == len(route) else "in_transit")
    done = await platform.json("GET", url, headers=console)
    assert done["status"] == "returned" and done["returned_at"] is not None
    assert done["total_cost"] == sum(leg["ticket_cost"] for leg in legs)
    assert [(leg["status"], leg["handover_document_no"]) for leg in done["legs"]] == [
        ("handed_over", f"BAST/{RUN}/{leg['seq']}") for leg in route]

    # The registry records the completed return: a job scam adds its PPKS category, and the
    # person's domicile note says he went home to Makassar by Simlontar Rek.
    async def recorded():
        record = await platform.json("GET", f"/v1/registry/persons/{person_id}", headers=console)
        return record if record["version"] > person["version"] else None

    record = await converge(recorded, timeout=60, what="the registry to record the return" + log_paths(platform, "homeless-return", "registry"))
    assert record["ppks"] == ["pekerja_migran_bermasalah_sosial"] and record["version"] == person["version"] + 1
    note = await domicile_note(platform, person_id)
    assert note is not None and note.startswith(f"{MAKASSAR} Kota Makassar: returned home by Simlontar Rek on "), note
    assert return_id in note

    # Sidoarjo's office neither finds this Surabaya case nor lists it; the province does.
    await platform.call("GET", url, headers=sidoarjo, expect=404)
    assert (await platform.json("GET", "/v1/homeless-return/returns", headers=sidoarjo, params={"person_id": person_id}))["items"] == []
    listed = await platform.json("GET", "/v1/homeless-return/returns", headers=console, params={"person_id": person_id})
    assert [(c["id"], c["status"]) for c in listed["items"]] == [(return_id, "returned")]
