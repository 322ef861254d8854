"""Done-when: an incident from declaration to recovery against real PostgreSQL and Kafka, with
the registry and the disbursement service running beside the disaster service.

Rapid assessment of known and unknown persons (the known are flagged as disaster victims in
the registry, the unknown become provisional registrations there), evacuation, Tagana
deployments, a racing shipment, distribution (an assistive device to a registry person) and
emergency cash paid exactly once per household."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import text

from disaster_testkit import (
    KEYS,
    LUMAJANG,
    LUMAJANG_ADMIN,
    PROVINCE,
    READER,
    REPO,
    TODAY,
    approved_request,
    beside,
    declare,
    migrate,
    ok,
    problem,
    receive,
    scalar,
    warehouse,
    write_jwks,
)
from pilar_kernel.nik import make_nik
from pilar_kernel.pii import nik_hash
from pilar_kernel.settings import DEV_SECRET
from pilar_kernel.testing import eventually, running_app

pytestmark = pytest.mark.stack

REGISTRY = KEYS.headers("registry:read", "registry:write", subject="dinsos-jatim", user="registrar")
_D = ("disbursement:read",)
DISB_ADMIN = KEYS.headers(*_D, "disbursement:programme-admin", subject="dinsos-jatim", user="admin-1")
DISB_PREPARER = KEYS.headers(*_D, "disbursement:prepare", subject="dinsos-jatim", user="officer-a")
DISB_APPROVER = KEYS.headers(*_D, "disbursement:approve", subject="dinsos-jatim", user="kabid-linjamsos")


@contextlib.asynccontextmanager
async def platform(new_database, kafka_bootstrap, jwks):
    """Registry, disbursement and disaster services, each on its own database, with the two new
    consumers running beside their services until those wire them in."""
    from disaster_testkit import disaster_app
    from disbursement.app import create_app as disbursement_app
    from disbursement.relief import api as relief_api
    from disbursement.relief.consumer import relief
    from disbursement.settings import Settings as DisbursementSettings
    from registry.app import create_app as registry_app
    from registry.disasters import consumer as disasters
    from registry.settings import Settings as RegistrySettings

    urls = {name: new_database(name) for name in ("registry", "disbursement", "disaster")}
    for name, url in urls.items():
        migrate(url, REPO / "services" / name)
    common = {"env": "test", "kafka_bootstrap": kafka_bootstrap, "jwks_file": jwks, "relay_poll_interval_s": 0.2}
    reg_app = registry_app(RegistrySettings(database_url=urls["registry"], **common))
    disb_app = disbursement_app(DisbursementSettings(database_url=urls["disbursement"], **common))
    if not any(getattr(r, "path", "") == "/v1/relief-programmes" for r in disb_app.routes):
        disb_app.include_router(relief_api.router)
    async with running_app(reg_app) as registry, running_app(disb_app) as disbursement, \
            disaster_app(urls["disaster"], kafka_bootstrap, jwks) as disaster:
        registry.app, disbursement.app = reg_app, disb_app
        async with beside(registry, disasters.build(reg_app.state.settings), kafka_bootstrap), beside(disbursement, relief, kafka_bootstrap):
            yield registry, disbursement, disaster


async def relief_round(disbursement) -> dict:
    """An open emergency-cash round paid through the post office, and a relief programme on it."""
    code = f"BENCANA_{uuid.uuid4().hex[:6].upper()}"
    ok(await disbursement.post("/v1/programmes", json={"code": code, "name": "Santunan korban bencana"}, headers=DISB_ADMIN), 201)
    ok(await disbursement.put(f"/v1/programmes/{code}/budgets/{TODAY.year}", json={"amount": 1_000_000_000}, headers=DISB_ADMIN))
    rnd = ok(await disbursement.post("/v1/rounds", headers=DISB_PREPARER, json={
        "programme_code": code, "year": TODAY.year, "stage": 1, "amount": 5_000_000, "ceiling": 100_000_000,
        "period_start": date(TODAY.year, 1, 1).isoformat(), "period_end": date(TODAY.year, 12, 31).isoformat(), "channel": "post"}), 201)
    # A round needs a payee to be approved: one person enrolled in the programme.
    from disbursement_testkit import add_payables

    await add_payables(disbursement.app.state.session_factory, code, 1, regency="35.08", active_from=date(TODAY.year, 1, 1))
    rnd = ok(await disbursement.post(f"/v1/rounds/{rnd['id']}/snapshot", headers=DISB_PREPARER))
    rnd = ok(await disbursement.post(f"/v1/rounds/{rnd['id']}/approve", headers=DISB_APPROVER,
                                     json={"sk_number": "188/77/KPTS/013/2026", "snapshot_version": rnd["snapshot_version"]}))
    rnd = ok(await disbursement.post(f"/v1/rounds/{rnd['id']}/disburse", headers=DISB_PREPARER))
    assert rnd["status"] == "disbursing"
    ok(await disbursement.post("/v1/relief-programmes", headers=DISB_ADMIN, json={
        "name": "Santunan rumah rusak 2026", "round_id": rnd["id"], "incident_categories": ["natural"],
        "amount_moderate": 2_000_000, "amount_heavy": 5_000_000}), 201)
    return rnd


async def test_an_incident_from_declaration_to_recovery(new_database, kafka_bootstrap, tmp_path_factory):
    jwks = write_jwks(tmp_path_factory.mktemp("keys"))
    async with platform(new_database, kafka_bootstrap, jwks) as (registry, disbursement, disaster):
        # -- the registry knows a family; the disaster service learns of them from its events
        kk = "3508011122330001"
        head_nik, wife_nik = make_nik("35.08.01", date(1972, 8, 17), "M", 11), make_nik("35.08.01", date(1978, 2, 3), "F", 12)
        head = ok(await registry.post("/v1/persons", headers=REGISTRY, json={
            "nik": head_nik, "name": "Slamet Riyadi", "sex": "M", "birth_date": "1972-08-17", "village_code": "35.08.01.2001",
            "kk_number": kk, "relationship": "head"}), 201)
        wife = ok(await registry.post("/v1/persons", headers=REGISTRY, json={
            "nik": wife_nik, "name": "Sri Wahyuni", "sex": "F", "birth_date": "1978-02-03", "village_code": "35.08.01.2001",
            "kk_number": kk, "relationship": "wife", "ppks": ["fakir_miskin"]}), 201)
        await eventually(lambda: scalar(disaster, "SELECT count(*) = 2 FROM registry_person WHERE nik_hash IS NOT NULL AND household_id IS NOT NULL"),
                         timeout=60)
        rnd = await relief_round(disbursement)

        # -- declaration: alert, then emergency response
        inc = await declare(disaster, status="alert", started=TODAY - timedelta(days=12), headers=LUMAJANG)
        inc = ok(await disaster.post(f"/v1/incidents/{inc['id']}/status", headers=LUMAJANG, json={
            "version": 1, "status": "emergency_response", "decree_number": "188/45/KPTS/427.12/2026", "authority": "regent",
            "effective_from": (TODAY - timedelta(days=11)).isoformat(), "effective_until": (TODAY + timedelta(days=3)).isoformat()}))

        # -- evacuation point and rapid assessment
        point = ok(await disaster.post(f"/v1/incidents/{inc['id']}/evacuation-points", headers=LUMAJANG, json={
            "name": "SDN Sumberwuluh 1", "village_code": "35.08.01.2001", "capacity": 120, "opened_on": (TODAY - timedelta(days=11)).isoformat()}), 201)
        known = ok(await disaster.post(f"/v1/incidents/{inc['id']}/households", headers=LUMAJANG, json={
            "kk_number": kk, "village_code": "35.08.01.2001", "damage_level": "heavy", "displaced": True, "members": [
                {"nik": head_nik, "name": "Slamet Riyadi", "sex": "M", "birth_date": "1972-08-17", "relationship": "head", "condition": "injured",
                 "evacuation_point_id": point["id"], "vulnerabilities": ["disabled"]},
                {"nik": wife_nik, "name": "Sri Wahyuni", "sex": "F", "birth_date": "1978-02-03", "relationship": "wife",
                 "evacuation_point_id": point["id"]},
                {"name": "Dimas", "sex": "M", "birth_date": "2016-04-01", "relationship": "child", "vulnerabilities": ["child"],
                 "evacuation_point_id": point["id"]},
            ]}), 201)
        assert known["registry_household_id"] is not None and known["recipient_person_id"] == head["id"]
        assert [m["person_id"] for m in known["members"]] == [head["id"], wife["id"], None]
        stranger_nik = make_nik("35.08.02", date(1990, 1, 9), "M", 55)
        unknown = ok(await disaster.post(f"/v1/incidents/{inc['id']}/households", headers=LUMAJANG, json={
            "village_code": "35.08.01.2002", "damage_level": "moderate", "displaced": True, "members": [
                {"nik": stranger_nik, "name": "Paijo Santoso", "sex": "M", "birth_date": "1990-01-09", "relationship": "head"},
                {"name": "Mbah Sarinah", "sex": "F", "relationship": "parent", "condition": "missing", "vulnerabilities": ["elderly"]},
            ]}), 201)
        assert unknown["recipient_person_id"] is None

        # -- the registry: the known are flagged, the unknown become provisional records
        async def registry_state():
            async with registry.app.state.session_factory() as s:
                rows = (await s.execute(text("SELECT name, ppks, provisional_id, nik_hash, domicile_note FROM person ORDER BY name"))).all()
            return rows if len(rows) == 5 and all("korban_bencana_alam" in r.ppks for r in rows) else None

        rows = {r.name: r for r in await eventually(registry_state, timeout=60)}
        assert rows["Sri Wahyuni"].ppks == ["fakir_miskin", "korban_bencana_alam"]
        for name in ("Dimas", "Paijo Santoso", "Mbah Sarinah"):
            assert rows[name].provisional_id.startswith("PRV-")
            assert str(inc["id"]) in rows[name].domicile_note
        # The provisional record keeps the NIK hash the field team had (never the NIK).
        assert rows["Paijo Santoso"].nik_hash == nik_hash(stranger_nik, DEV_SECRET)
        assert rows["Dimas"].nik_hash is None and rows["Mbah Sarinah"].nik_hash is None
        r = ok(await registry.get(f"/v1/persons/{head['id']}", headers=REGISTRY))
        assert "korban_bencana_alam" in r["ppks"]

        # -- the disaster service links the members the registry opened records for (issue 12: it
        # could not, and the household nobody knew stayed unpaid for good); the household is
        # announced again with its new recipient
        async def linked():
            h = ok(await disaster.get(f"/v1/households/{unknown['id']}", headers=READER))
            return h if h["recipient_person_id"] is not None and all(m["person_id"] for m in h["members"]) else None

        relinked = await eventually(linked, timeout=60)
        paijo = next(m for m in relinked["members"] if m["name"] == "Paijo Santoso")
        assert relinked["version"] == 2 and relinked["recipient_person_id"] == paijo["person_id"] is not None
        assert all(m["person_id"] is not None for m in relinked["members"])
        assert ok(await registry.get(f"/v1/persons/{paijo['person_id']}", headers=REGISTRY))["name"] == "Paijo Santoso"
        dimas = ok(await disaster.get(f"/v1/households/{known['id']}", headers=READER))
        assert dimas["version"] == 1 and dimas["recipient_person_id"] == head["id"]  # the head still receives: not announced again

        # -- emergency cash: one payment for each household, the second once its head is known
        async def grants():
            rows = ok(await disbursement.get("/v1/relief-grants", params={"incident_id": inc["id"]}, headers=DISB_PREPARER))
            return rows if len(rows) == 2 and all(g["status"] == "paid" for g in rows) else None

        by_household = {g["household_id"]: g for g in await eventually(grants, timeout=60)}
        paid, late = by_household[known["id"]], by_household[unknown["id"]]
        assert (paid["status"], paid["amount"], paid["person_id"]) == ("paid", 5_000_000, head["id"])
        assert (late["status"], late["amount"], late["person_id"], late["household_version"]) == ("paid", 2_000_000, paijo["person_id"], 2)
        # Re-assessed (announced again), and the household event delivered anew: still one payment.
        ok(await disaster.patch(f"/v1/households/{known['id']}", json={"version": 1, "member_count": 4}, headers=LUMAJANG))
        await eventually(lambda: _applied(disbursement, known["id"], 2), timeout=60)
        payments = ok(await disbursement.get("/v1/payments", params={"round_id": rnd["id"]}, headers=DISB_PREPARER))["items"]
        payments = [p for p in payments if p["regency_code"] == "35.08" and p["person_id"] == head["id"]]
        assert [p["amount"] for p in payments] == [5_000_000]
        # The post office pays it.
        export = ok(await disbursement.post(f"/v1/rounds/{rnd['id']}/post-exports", headers=DISB_PREPARER), 201)
        lines = (await disbursement.get(f"/v1/post-exports/{export['id']}/file", headers=DISB_PREPARER)).text.splitlines()[1:]
        line = next(l for l in lines if payments[0]["id"] in l)
        result = f"instruction_id,status,reason,reference,reported_at,returned_amount\n{line.split(',')[0]},succeeded,,POS-1,{datetime.now(UTC).isoformat()},\n"
        ok(await disbursement.post(f"/v1/post-exports/{export['id']}/results", content=result, headers=DISB_PREPARER))
        payment = ok(await disbursement.get(f"/v1/payments/{payments[0]['id']}", headers=DISB_PREPARER))
        assert payment["status"] == "succeeded"

        # -- evacuation headcount, kitchen, Tagana
        ok(await disaster.post(f"/v1/evacuation-points/{point['id']}/headcounts", headers=LUMAJANG, json={
            "reported_at": datetime.now(UTC).isoformat(), "total": 85, "elderly": 12, "disabled": 3, "children": 20, "pregnant": 2}), 201)
        ok(await disaster.put(f"/v1/evacuation-points/{point['id']}/kitchen/{TODAY.isoformat()}", json={"portions": 255}, headers=LUMAJANG))
        for i, (rank, hours) in enumerate((("madya", 40), ("muda", 24))):
            v = ok(await disaster.post("/v1/volunteers", headers=LUMAJANG_ADMIN, json={
                "member_number": f"TGN-3508-{inc['id'][:4]}-{i}", "name": f"Relawan {i}", "rank": rank, "regency_code": "35.08"}), 201)
            d = ok(await disaster.post(f"/v1/incidents/{inc['id']}/deployments", headers=LUMAJANG, json={
                "volunteer_id": v["id"], "role": "public_kitchen", "started_on": (TODAY - timedelta(days=10)).isoformat()}), 201)
            ok(await disaster.patch(f"/v1/deployments/{d['id']}", json={"version": 1, "ended_on": TODAY.isoformat(), "hours": hours}, headers=LUMAJANG))

        # -- buffer stock: a racing shipment, receipt at the regency, distribution
        province = await warehouse(disaster)
        lumajang = await warehouse(disaster, "regency", "35.08", headers=LUMAJANG_ADMIN)
        await receive(disaster, province["id"], [{"item_code": "family_kit", "quantity": 100}, {"item_code": "wheelchair", "quantity": 5}])
        first = await approved_request(disaster, inc["id"], province["id"], lumajang["id"],
                                       [{"item_code": "family_kit", "quantity": 60}, {"item_code": "wheelchair", "quantity": 2}])
        second = await approved_request(disaster, inc["id"], province["id"], lumajang["id"], [{"item_code": "family_kit", "quantity": 60}])
        results = await asyncio.gather(*[disaster.post(f"/v1/stock-requests/{rq['id']}/ship", json={"version": rq["version"]}, headers=PROVINCE)
                                         for rq in (first, second)])
        assert sorted(r.status_code for r in results) == [200, 409]
        shipped = next(r.json() for r in results if r.status_code == 200)
        ok(await disaster.post(f"/v1/stock-requests/{shipped['id']}/receive", json={"version": shipped["version"]}, headers=LUMAJANG))
        ok(await disaster.post(f"/v1/incidents/{inc['id']}/distributions", headers=LUMAJANG, json={
            "warehouse_id": lumajang["id"], "household_id": known["id"], "distributed_on": TODAY.isoformat(),
            "lines": [{"item_code": "family_kit", "quantity": 1}]}), 201)
        ok(await disaster.post(f"/v1/incidents/{inc['id']}/distributions", headers=LUMAJANG, json={
            "warehouse_id": lumajang["id"], "evacuation_point_id": point["id"], "distributed_on": TODAY.isoformat(),
            "lines": [{"item_code": "family_kit", "quantity": 20}]}), 201)
        if shipped["id"] == first["id"]:  # the wheelchair travelled with the shipment that won
            ok(await disaster.post(f"/v1/incidents/{inc['id']}/distributions", headers=LUMAJANG, json={
                "warehouse_id": lumajang["id"], "affected_person_id": known["members"][0]["id"], "distributed_on": TODAY.isoformat(),
                "lines": [{"item_code": "wheelchair", "quantity": 1}]}), 201)
            devices = ok(await disaster.get("/v1/assistive-devices", params={"person_id": head["id"]}, headers=READER))
            assert [(d["item_code"], d["quantity"]) for d in devices] == [("wheelchair", 1)]

        # -- transition and recovery
        version = inc["version"]
        for status, days_ago in (("transition", 3), ("recovery", 0)):
            version = ok(await disaster.post(f"/v1/incidents/{inc['id']}/status", headers=LUMAJANG, json={
                "version": version, "status": status, "decree_number": f"188/{status}/2026", "authority": "regent",
                "effective_from": (TODAY - timedelta(days=days_ago)).isoformat()}))["version"]

        stats = ok(await disaster.get(f"/v1/incidents/{inc['id']}/statistics", headers=READER))
        assert stats["status"] == "recovery"
        assert (stats["households"]["households"], stats["households"]["heavy"], stats["households"]["moderate"]) == (2, 1, 1)
        assert (stats["persons"]["persons"], stats["displaced"], stats["persons"]["matched_to_registry"]) == (5, 5, 5)
        assert stats["casualties"] == {"dead": 0, "missing": 1, "injured": 1}
        assert (stats["evacuation"]["headcount"], stats["evacuation"]["kitchen_portions"]) == (85, 255)
        assert {s["item_code"]: s["quantity"] for s in stats["stock_distributed"]}["family_kit"] == 21
        assert (stats["volunteers"]["volunteers"], stats["volunteers"]["hours"]) == (2, 64)
        # A regency office elsewhere sees nothing of it.
        from disaster_testkit import SURABAYA

        assert (await disaster.get(f"/v1/incidents/{inc['id']}/statistics", headers=SURABAYA)).status_code == 404


async def test_held_emergency_cash_is_paid_to_a_recipient_named_by_hand_under_four_eyes(new_database, kafka_bootstrap, tmp_path_factory):
    """Issue 12: a household none of whose members can receive (here a child alone) stayed
    unpaid, with no way to name a recipient. One officer names a registry person with a
    reason, another confirms; the held grant is paid once, retries included."""
    jwks = write_jwks(tmp_path_factory.mktemp("keys"))
    async with platform(new_database, kafka_bootstrap, jwks) as (registry, disbursement, disaster):
        uncle_nik = make_nik("35.08.01", date(1969, 5, 20), "M", 21)
        uncle = ok(await registry.post("/v1/persons", headers=REGISTRY, json={
            "nik": uncle_nik, "name": "Kasiman", "sex": "M", "village_code": "35.08.01.2003"}), 201)
        assert uncle["birth_date"] == "1969-05-20"  # from the NIK
        await eventually(lambda: scalar(disaster, "SELECT count(*) = 1 FROM registry_person WHERE person_id = :p", p=uncle["id"]), timeout=60)
        await relief_round(disbursement)
        inc = await declare(disaster, status="emergency_response", started=TODAY - timedelta(days=2), headers=LUMAJANG)
        alone = ok(await disaster.post(f"/v1/incidents/{inc['id']}/households", headers=LUMAJANG, json={
            "village_code": "35.08.01.2003", "damage_level": "heavy", "displaced": True, "members": [
                {"name": "Budi", "sex": "M", "birth_date": "2015-09-09", "relationship": "child", "vulnerabilities": ["child"]},
                {"name": "Pak Darmo", "sex": "M", "relationship": "head", "condition": "dead"}]}), 201)

        async def held():
            rows = ok(await disbursement.get("/v1/relief-grants", params={"incident_id": inc["id"]}, headers=DISB_PREPARER))
            return rows[0] if rows else None

        grant = await eventually(held, timeout=60)
        assert (grant["status"], grant["reason"]) == ("held", "recipient_unknown")
        # The child becomes a provisional registry person and is linked; a child does not receive cash.
        await eventually(lambda: scalar(disaster, "SELECT count(*) = 1 FROM affected_person WHERE household_id = :h AND person_id IS NOT NULL",
                                        h=alone["id"]), timeout=60)
        assert ok(await disaster.get(f"/v1/households/{alone['id']}", headers=READER))["recipient_person_id"] is None

        officer_a = KEYS.headers("disaster:read", "disaster:write", "disaster:approve", region="35.08", subject="bpbd-lumajang", user="Tini.W")
        officer_a_upper = KEYS.headers("disaster:read", "disaster:approve", region="35.08", subject="bpbd-lumajang", user="TINI.W")
        officer_b = KEYS.headers("disaster:read", "disaster:approve", region="35.08", subject="bpbd-lumajang", user="kalaksa-bpbd")
        elsewhere = KEYS.headers("disaster:read", "disaster:write", "disaster:approve", region="35.78", subject="dinsos-surabaya", user="x")
        path = f"/v1/households/{alone['id']}/recipient-assignments"
        reason = {"reason": "uncle and guardian of the orphaned child, confirmed by the village head"}
        # Bad names are refused naming the field; another regency's office does not see the household.
        problem(await disaster.post(path, headers=officer_a, json={"person_id": str(uuid.uuid4()), **reason}), 422, "recipient.unknown")
        problem(await disaster.post(path, headers=officer_a, json={"person_id": uncle["id"], "reason": "short"}), 422)
        problem(await disaster.post(path, headers=elsewhere, json={"person_id": uncle["id"], **reason}), 404)
        proposal = ok(await disaster.post(path, headers={**officer_a, "Idempotency-Key": "name-uncle"}, json={"person_id": uncle["id"], **reason}), 201)
        assert (proposal["status"], proposal["proposed_by"]) == ("proposed", "tini.w")
        # Proposing is not paying.
        assert (await held())["status"] == "held"
        confirm = f"/v1/recipient-assignments/{proposal['id']}/confirm"
        for same in (officer_a, officer_a_upper):
            problem(await disaster.post(confirm, headers=same), 403, "recipient.four_eyes")
        problem(await disaster.post(confirm, headers=LUMAJANG_ADMIN), 403)  # no approve scope
        problem(await disaster.post(confirm, headers=elsewhere), 404)
        keyed = {**officer_b, "Idempotency-Key": f"confirm-{proposal['id']}"}
        first = await disaster.post(confirm, headers=keyed)
        again = await disaster.post(confirm, headers=keyed)
        assert (first.status_code, again.status_code) == (200, 200), first.text
        assert again.json() == first.json() and again.headers.get("Idempotent-Replayed") == "true"
        assert (first.json()["recipient_person_id"], first.json()["version"]) == (uncle["id"], 2)
        problem(await disaster.post(confirm, headers=officer_b), 409, "recipient.decided")
        history = ok(await disaster.get(path, headers=READER))
        assert [(a["status"], a["proposed_by"], a["confirmed_by"]) for a in history] == [("confirmed", "tini.w", "kalaksa-bpbd")]

        async def paid():
            g = await held()
            return g if g["status"] == "paid" else None

        grant = await eventually(paid, timeout=60)
        assert (grant["person_id"], grant["amount"], grant["household_version"]) == (uncle["id"], 5_000_000, 2)
        payments = ok(await disbursement.get("/v1/payments", params={"person_id": uncle["id"]}, headers=DISB_PREPARER))["items"]
        assert [p["amount"] for p in payments] == [5_000_000]
        # A re-assessment keeps the recipient named by hand and pays nothing twice.
        ok(await disaster.patch(f"/v1/households/{alone['id']}", json={"version": 2, "member_count": 3}, headers=LUMAJANG))
        assert ok(await disaster.get(f"/v1/households/{alone['id']}", headers=READER))["recipient_person_id"] == uncle["id"]
        await eventually(lambda: scalar(disbursement, "SELECT count(*) >= 3 FROM inbox WHERE consumer = 'disbursement.relief'"), timeout=60)
        payments = ok(await disbursement.get("/v1/payments", params={"person_id": uncle["id"]}, headers=DISB_PREPARER))["items"]
        assert len(payments) == 1


async def _applied(client, household_id: str, version: int) -> bool:
    """The relief consumer has seen this version of the household's event (applied or ignored)."""
    async with client.app.state.session_factory() as s:
        n = (await s.execute(text("SELECT count(*) FROM inbox WHERE consumer = 'disbursement.relief' AND topic = 'disaster.household'"))).scalar_one()
    return n >= 4  # two first assessments, the second announced again with its recipient, and the re-assessment
