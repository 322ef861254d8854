"""Bulk import of persons from CSV, against real PostgreSQL and Kafka: broken rows refused
alone with a row/column/reason report, upsert on the NIK (a re-import changes nothing and
emits nothing), updates, the region rule, visibility of jobs, and the row rules agreeing
with the persons API's."""

from __future__ import annotations

import asyncio
import csv
import functools
import io
import json
import random
import uuid
from datetime import date

import pytest
from sqlalchemy import func, select, text

from pilar_kernel.nik import make_nik, validate_nik
from pilar_kernel.tables import outbox
from pilar_kernel.testing import eventually
from registry.imports import api as imports_api
from registry.imports import domain
from registry.imports.service import ImportWorker
from registry.persons.domain import check_registration
from registry_testkit import KEYS

pytestmark = pytest.mark.stack

SIDOARJO_VILLAGE = "35.15.14.2001"
SURABAYA_VILLAGE = "35.78.01.1001"
SIDOARJO = KEYS.headers("registry:read", "registry:write", region="35.15", subject="dinsos-sidoarjo")
SURABAYA = KEYS.headers("registry:read", "registry:write", region="35.78", subject="dinsos-surabaya")
PROVINCE = KEYS.headers("registry:read", "registry:write", subject="dinsos-jatim")
PROVINCE_OTHER = KEYS.headers("registry:write", subject="dinsos-jatim-data")

_serial = iter(range(1, 9999))


def person_row(**overrides) -> dict[str, str]:
    born = overrides.pop("born", date(1950, 3, 14))
    sex = overrides.pop("sex", "P")
    row = {
        "nik": make_nik("35.15.14", born, "F" if sex in ("P", "F") else "M", next(_serial)),
        "name": "Siti Aminah",
        "birth_place": "Sidoarjo",
        "birth_date": born.isoformat(),
        "sex": sex,
        "kk_number": "3515140101200001",
        "relationship": "KEPALA KELUARGA",
        "village_code": SIDOARJO_VILLAGE,
        "rt": "003",
        "rw": "001",
        "street": "Jl. Raya Wilayut 12",
        "phone": "0812-3456-7890",
        "disability_type": "",
        "disability_severity": "",
        "ppks": "lansia_telantar;Fakir miskin",
        "decile": "2",
        "decile_date": "2026-07-01",
        "occupation": "petani",
        "employer": "",
    }
    row.update(overrides)
    return row


def to_csv(rows: list[dict[str, str]], columns=domain.COLUMNS) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow([r.get(c, "") for c in columns])
    return out.getvalue().encode()


def household(kk: str, size: int, **common) -> list[dict[str, str]]:
    rels = ["KEPALA KELUARGA", "ISTRI", "ANAK", "ANAK"]
    rows = [person_row(kk_number=kk, relationship=rels[0], sex="L", born=date(1968, 5, 2), name="Slamet Riyadi", **common)]
    rows += [person_row(kk_number=kk, relationship=rels[i], sex="P", born=date(1970 + 10 * i, 1 + i, 9), name=f"Anggota {i}", **common)
             for i in range(1, size)]  # fmt: skip
    return rows


GOOD = household("3515140101200001", 4) + household("3515140101200002", 3, ppks="", decile="", decile_date="") + household("3515140101200003", 3)
BROKEN = [
    # row 12: NIK digits 7-12 are not a date (day 32)
    person_row(nik="3515143213500001"),
    # row 13: a village code that does not exist
    person_row(village_code="35.15.14.9999"),
    # row 14: no name
    person_row(name=""),
    # row 15: lives in Surabaya: not for the Sidoarjo office
    person_row(village_code=SURABAYA_VILLAGE),
    # row 16: the NIK of row 2 again
    person_row(nik=GOOD[0]["nik"], name="Someone Else"),
]
FILE = to_csv(GOOD + BROKEN)


@pytest.fixture(scope="module")
async def imports(registry):
    """The registry with the imports router and a worker this module starts and stops."""
    app = registry.app
    if not any(getattr(r, "path", None) == "/v1/imports" for r in app.routes):
        app.include_router(imports_api.router)  # until app.py wires it
    for supervisor in getattr(app.state, "workers", ()):
        if getattr(supervisor, "name", None) == "import_worker":  # wired into the app: stop it,
            await supervisor.stop()  # so that the tests decide when jobs run
    registry.worker = None
    yield registry
    if registry.worker is not None:
        await registry.worker[0].stop()
        await registry.worker[1]


async def start_worker(client) -> None:
    if client.worker is None:
        worker = ImportWorker(client.app.state.session_factory, client.app.state.privacy, poll_interval_s=0.1, retry_backoff_s=0.1)
        client.worker = (worker, asyncio.create_task(worker.run()))


async def submit(client, body: bytes = FILE, headers=SIDOARJO, **kw):
    r = await client.post("/v1/imports", content=body, headers={**headers, "Content-Type": "text/csv", **kw.pop("extra", {})}, **kw)
    assert r.status_code == 202, r.text
    return r.json()


async def finished(client, job_id: str, headers=SIDOARJO) -> dict:
    async def done():
        job = (await client.get(f"/v1/imports/{job_id}", headers=headers)).json()
        return job if job["status"] in ("done", "failed") else None

    job = await eventually(done, timeout=60)
    assert job["status"] == "done", job
    return job


async def outbox_count(client, ce_type_suffix: str | None = None) -> int:
    async with client.app.state.session_factory() as s:
        stmt = select(func.count()).select_from(outbox)
        if ce_type_suffix:
            stmt = stmt.where(outbox.c.ce_type.endswith(ce_type_suffix))
        return (await s.execute(stmt)).scalar_one()


async def errors_report(client, job_id: str, headers=SIDOARJO) -> list[dict[str, str]]:
    r = await client.get(f"/v1/imports/{job_id}/errors.csv", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv") and "attachment" in r.headers["content-disposition"]
    return list(csv.DictReader(io.StringIO(r.text)))


async def test_broken_rows_are_reported_and_the_good_ones_imported(imports):
    before = await outbox_count(imports)
    job = await submit(imports)
    # Stored, nothing applied until a worker runs: the job survives a restart in between.
    assert (job["status"], job["total"], job["processed"]) == ("queued", 15, 0)
    await start_worker(imports)
    job = await finished(imports, job["id"])
    assert {k: job[k] for k in ("total", "processed", "inserted", "updated", "unchanged", "failed", "progress")} == {
        "total": 15, "processed": 15, "inserted": 10, "updated": 0, "unchanged": 0, "failed": 5, "progress": 1.0,
    }  # fmt: skip

    report = await errors_report(imports, job["id"])
    by_row = {}
    for line in report:
        by_row.setdefault(int(line["row"]), []).append((line["column"], line["reason"]))
    assert sorted(by_row) == [12, 13, 14, 15, 16]
    assert ("nik", "NIK digits 7-12 are not a real birth date (DDMMYY, with 40 added to the day for women)") in by_row[12]
    assert by_row[13] == [("village_code", "not a village code of the region data")]
    assert by_row[14] == [("name", "required")]
    assert by_row[15][0][0] == "village_code" and "outside your region 35.15" in by_row[15][0][1]
    assert by_row[16] == [("nik", "the same NIK is already on row 2 of this file")]
    assert all(GOOD[0]["nik"] not in line["reason"] for line in report)

    # The good rows are persons, with their households, and their events are in the outbox.
    found = await imports.post("/v1/persons/lookup", json={"nik": GOOD[4]["nik"]}, headers=SIDOARJO)
    assert found.status_code == 200, found.text
    person = found.json()
    assert (person["sex"], person["regency_code"], person["household"]["relationship"]) == ("M", "35.15", "head")
    assert person["ppks"] == [] and person["decile"] is None and person["nik_masked"]
    members = (await imports.get(f"/v1/households/{person['household']['household_id']}", headers=SIDOARJO)).json()["members"]
    assert [m["relationship"] for m in members] == ["head", "wife", "child"]
    first = (await imports.post("/v1/persons/lookup", json={"nik": GOOD[0]["nik"]}, headers=SIDOARJO)).json()
    assert first["name"] == "Slamet Riyadi" and first["ppks"] == ["fakir_miskin", "lansia_telantar"]
    assert await outbox_count(imports) - before == 10 + 3  # 10 PersonRegistered, 3 HouseholdChanged
    async with imports.app.state.session_factory() as s:
        rows = (await s.execute(
            select(outbox.c.ce_type, outbox.c.payload, outbox.c.lane, outbox.c.ce_source, outbox.c.traceparent)
            .where(outbox.c.message_key == first["id"])
        )).all()  # fmt: skip
        raw = (await s.execute(text("SELECT nik_enc, phone_enc FROM person WHERE id = CAST(:i AS uuid)").bindparams(i=first["id"]))).one()
    assert [r.ce_type.split(".")[-2] for r in rows] == ["registered"] and rows[0].ce_source == "/pilar/registry"
    assert GOOD[0]["nik"].encode() not in rows[0].payload and b"Slamet" not in rows[0].payload
    assert GOOD[0]["nik"].encode() not in raw.nik_enc and b"3456" not in raw.phone_enc
    # The stored ciphertexts open under the person's id (the persons API can reveal them).
    privacy = imports.app.state.privacy
    assert privacy.open(raw.nik_enc, uuid.UUID(first["id"])) == GOOD[0]["nik"]


async def test_reimporting_the_same_file_changes_nothing_and_emits_nothing(imports):
    await start_worker(imports)
    before = await outbox_count(imports)
    job = await finished(imports, (await submit(imports))["id"])
    assert (job["inserted"], job["updated"], job["unchanged"], job["failed"]) == (0, 0, 10, 5)
    assert await outbox_count(imports) == before
    found = (await imports.post("/v1/persons/lookup", json={"nik": GOOD[1]["nik"]}, headers=SIDOARJO)).json()
    assert found["version"] == 1


async def test_a_changed_row_updates_its_person_and_emits_one_person_updated(imports):
    await start_worker(imports)
    rows = [dict(r) for r in GOOD]
    rows[1].update(decile="1", decile_date="2026-10-01", phone="")
    before = await outbox_count(imports)
    job = await finished(imports, (await submit(imports, to_csv(rows)))["id"])
    assert (job["inserted"], job["updated"], job["unchanged"], job["failed"]) == (0, 1, 9, 0)
    person = (await imports.post("/v1/persons/lookup", json={"nik": rows[1]["nik"]}, headers=SIDOARJO)).json()
    assert (person["decile"], person["decile_date"], person["phone"], person["version"]) == (1, "2026-10-01", None, 2)
    assert await outbox_count(imports) == before + 1
    async with imports.app.state.session_factory() as s:
        last = (await s.execute(select(outbox.c.ce_type, outbox.c.payload, outbox.c.message_key).order_by(outbox.c.id.desc()).limit(1))).one()
    assert last.ce_type.endswith("person.updated.v1") and last.message_key == person["id"]
    assert json.loads(last.payload)["changed"] == ["decile", "decile_date", "phone"]


async def test_a_column_left_out_leaves_the_field_alone_and_households_follow_the_kk(imports):
    await start_worker(imports)
    moved = dict(GOOD[3], kk_number="3515140101200009", relationship="KEPALA KELUARGA")
    columns = [c for c in domain.COLUMNS if c not in ("phone", "occupation")]
    before_hh = await outbox_count(imports, "household.changed.v1")
    job = await finished(imports, (await submit(imports, to_csv([moved], columns)))["id"])
    assert (job["updated"], job["failed"]) == (1, 0)
    person = (await imports.post("/v1/persons/lookup", json={"nik": moved["nik"]}, headers=SIDOARJO)).json()
    assert person["household"]["relationship"] == "head" and person["phone"] is not None and person["version"] == 1
    assert await outbox_count(imports, "household.changed.v1") == before_hh + 2  # left one KK, joined another
    history = (await imports.get(f"/v1/persons/{person['id']}/households", headers=SIDOARJO)).json()
    assert [(h["kk_number"], h["valid_to"] is None) for h in history] == [("3515140101200001", False), ("3515140101200009", True)]


async def test_only_the_owner_and_province_wide_clients_see_a_job(imports):
    job = await submit(imports)
    for path in (f"/v1/imports/{job['id']}", f"/v1/imports/{job['id']}/errors.csv"):
        assert (await imports.get(path, headers=SURABAYA)).status_code == 404
        assert (await imports.get(path, headers=PROVINCE_OTHER)).status_code == 200
    listed = (await imports.get("/v1/imports", headers=SURABAYA)).json()["items"]
    assert job["id"] not in {j["id"] for j in listed}
    assert job["id"] in {j["id"] for j in (await imports.get("/v1/imports?limit=200", headers=SIDOARJO)).json()["items"]}
    assert (await imports.get(f"/v1/imports/{job['id']}", headers=KEYS.headers("registry:read", subject="dinsos-sidoarjo"))).status_code == 403


async def test_a_regency_office_cannot_change_persons_registered_elsewhere(imports):
    await start_worker(imports)
    # Registered by the province with a Surabaya address; Sidoarjo's file claims them.
    theirs = person_row(village_code=SURABAYA_VILLAGE, kk_number="3578010101200001")
    await finished(imports, (await submit(imports, to_csv([theirs]), headers=PROVINCE))["id"], headers=PROVINCE)
    job = await finished(imports, (await submit(imports, to_csv([dict(theirs, village_code=SIDOARJO_VILLAGE)])))["id"])
    assert (job["updated"], job["failed"]) == (0, 1)
    report = await errors_report(imports, job["id"])
    assert [(r["row"], r["column"], r["reason"]) for r in report] == [("2", "nik", "a person with this NIK is registered outside your region")]


async def test_multipart_upload_and_idempotency_key(imports):
    csv_file = to_csv([person_row(kk_number="3515140101200004")])
    boundary = "pilar-test-boundary"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nkantor\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"kantor-sidoarjo.csv\"\r\n"
        "Content-Type: text/csv\r\n\r\n"
    ).encode() + csv_file + f"\r\n--{boundary}--\r\n".encode()
    headers = {**SIDOARJO, "Idempotency-Key": "upload-1", "Content-Type": f"multipart/form-data; boundary={boundary}"}
    first = await imports.post("/v1/imports", content=body, headers=headers)
    assert first.status_code == 202, first.text
    assert (first.json()["filename"], first.json()["total"]) == ("kantor-sidoarjo.csv", 1)
    again = await imports.post("/v1/imports", content=body, headers=headers)
    assert again.status_code == 202 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    other = await imports.post("/v1/imports", content=body.replace(b"kantor\r\n", b"lain\r\n"), headers=headers)
    assert other.status_code == 422
    # httpx's own multipart encoding (a random boundary) works too
    r = await imports.post("/v1/imports", files={"file": ("x.csv", csv_file, "text/csv")}, headers=SIDOARJO)
    assert r.status_code == 202 and r.json()["filename"] == "x.csv"


@pytest.mark.parametrize(
    "body, content_type, status, field",
    [
        (b"nik,name,colour\n1,2,3\n", "text/csv", 422, "header.colour"),
        (b"nik,name\n1,2\n", "text/csv", 422, "header.birth_date"),
        (",".join(domain.COLUMNS).encode() + b"\n", "text/csv", 422, "body"),
        (",".join(domain.COLUMNS).encode() + b"\nSiti \xe9\n", "text/csv", 422, "body"),
        (b"{}", "application/json", 415, None),
    ],
)
async def test_the_file_as_a_whole_is_checked_at_upload(imports, body, content_type, status, field):
    r = await imports.post("/v1/imports", content=body, headers={**SIDOARJO, "Content-Type": content_type})
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    if field:
        assert field in {e["field"] for e in r.json()["errors"]}


async def test_a_piece_that_keeps_failing_fails_the_job_after_a_few_attempts(imports):
    if imports.worker is not None:  # this test runs the worker itself, step by step
        await imports.worker[0].stop()
        await imports.worker[1]
        imports.worker = None
    job = await submit(imports, to_csv([person_row(kk_number="3515140101200005")]))
    async with imports.app.state.session_factory() as s, s.begin():  # damage the stored file
        await s.execute(text("UPDATE import_piece SET data = '\\xfffe'::bytea WHERE job_id = CAST(:j AS uuid)").bindparams(j=job["id"]))
    worker = ImportWorker(imports.app.state.session_factory, imports.app.state.privacy, max_attempts=2, retry_backoff_s=0)
    for _ in range(10):  # jobs of earlier tests may come first
        await worker.run_once()
        state = (await imports.get(f"/v1/imports/{job['id']}", headers=SIDOARJO)).json()
        if state["status"] == "failed":
            break
    assert (state["status"], state["processed"]) == ("failed", 0)
    assert "UnicodeDecodeError" in state["error"] and state["finished_at"]
    assert await worker.run_once() is False  # a failed job is not claimed again: nothing to do


def test_row_rules_agree_with_the_persons_api():
    """Whatever parse_row accepts, check_registration accepts, and the reverse (for the rules both have)."""
    rng = random.Random(7)
    ctx = domain.RowContext(columns=domain.COLUMNS, region=None, today=date.today())
    variants = [
        {}, {"nik": "3515143213500001"}, {"nik": "3599144101500001"}, {"sex": "L"}, {"birth_date": "1951-03-14"},
        {"village_code": "35.15.14.9999"}, {"village_code": "31.71.01.1001"}, {"village_code": "3515142001"},
        {"ppks": "not_a_category"}, {"decile": "3", "decile_date": ""}, {"decile": "", "decile_date": ""},
        {"disability_severity": "severe"}, {"disability_severity": "severe", "disability_type": "physical"},
        {"kk_number": "9999990101200001"}, {"birth_date": "2999-01-01"}, {"nik": "3515145403500000"},
    ]  # fmt: skip
    for change in variants:
        row = person_row(ppks="lansia_telantar;fakir_miskin", nik="3515145403500001")
        row.update(change)
        parsed = domain.parse_row([row[c] for c in domain.COLUMNS], 2, ctx)
        data = {
            "nik": row["nik"], "birth_date": date.fromisoformat(row["birth_date"]), "sex": {"L": "M", "P": "F"}[row["sex"]],
            "village_code": row["village_code"], "ppks": [p for p in row["ppks"].split(";") if p],
            "decile": int(row["decile"]) if row["decile"] else None,
            "decile_date": date.fromisoformat(row["decile_date"]) if row["decile_date"] else None,
            "disability_type": row["disability_type"] or None, "disability_severity": row["disability_severity"] or None,
            "kk_number": row["kk_number"], "relationship": "head",
        }  # fmt: skip
        assert isinstance(parsed, domain.ParsedRow) == (not check_registration(data)), (change, parsed, check_registration(data))
    # The short path for valid NIKs gives the kernel's verdict.
    for _ in range(3000):
        born = date(rng.randint(1925, 2024), rng.randint(1, 12), rng.randint(1, 28))
        sex = rng.choice("MF")
        nik = make_nik(rng.choice(["35.15.14", "35.78.01", "31.71.01"]), born, sex, rng.randint(1, 9999))
        if rng.random() < 0.3:
            i = rng.randrange(16)
            nik = nik[:i] + str(rng.randrange(10)) + nik[i + 1 :]
        given_sex = sex if rng.random() < 0.9 else ("F" if sex == "M" else "M")
        assert (domain.nik_reasons(nik, born, given_sex) == []) == (validate_nik(nik, birth_date=born, sex=given_sex) == [])


async def test_pieces_applied_side_by_side_build_the_same_households(imports, monkeypatch):
    """Three lanes, pieces of three rows, families cut across pieces (heads first, then wives,
    then children): every person lands once, every household ends with all its members, and
    the last HouseholdChanged of each household names them all."""
    if imports.worker is not None:  # this test runs its own worker, with three lanes
        await imports.worker[0].stop()
        await imports.worker[1]
        imports.worker = None
    monkeypatch.setattr(domain, "split_upload", functools.partial(domain.split_upload, rows_per_piece=3))
    families = [household(f"35151401012007{k:02d}", 4) for k in range(6)]
    rows = [family[i] for i in range(4) for family in families]  # member i of every family, then member i + 1
    job = await submit(imports, to_csv(rows))
    worker = ImportWorker(imports.app.state.session_factory, imports.app.state.privacy, lanes=3, poll_interval_s=0.1)
    task = asyncio.create_task(worker.run())
    try:
        state = await finished(imports, job["id"])
    finally:
        await worker.stop()
        await task
    assert (state["inserted"], state["failed"], state["processed"]) == (24, 0, 24)
    for family in families:
        head = (await imports.post("/v1/persons/lookup", json={"nik": family[0]["nik"]}, headers=SIDOARJO)).json()
        hh = (await imports.get(f"/v1/households/{head['household']['household_id']}", headers=SIDOARJO)).json()
        assert hh["kk_number"] == family[0]["kk_number"] and len(hh["members"]) == 4
        async with imports.app.state.session_factory() as s:
            last = (await s.execute(text(
                "SELECT payload FROM outbox WHERE ce_type LIKE '%household.changed.v1' AND message_key = :k ORDER BY id DESC LIMIT 1"
            ).bindparams(k=str(hh["id"])))).scalar_one()
        last = json.loads(last)
        assert len(last["member_ids"]) == 4 and last["head_person_id"] == head["id"]


async def test_an_imported_nik_completes_the_provisional_record_that_kept_its_hash(imports):
    """A provisional record opened from a disaster report keeps the NIK's hash (issue 12); an
    import of that NIK completes it (same id, the NIK stored) instead of leaving it without."""
    await start_worker(imports)
    row = person_row(kk_number="3515140101200077", name="Sumarni", ppks="", decile="", decile_date="")
    privacy = imports.app.state.privacy
    person_id = uuid.uuid4()
    async with imports.app.state.session_factory() as s, s.begin():
        await s.execute(text(
            "INSERT INTO person (id, nik_hash, provisional_id, pii_key_id, name, name_norm, sex, village_code, district_code, regency_code, ppks) "
            "VALUES (:id, :h, :prv, 'k', 'Sumarni', 'sumarni', 'F', :v, '35.15.14', '35.15', ARRAY['korban_bencana_alam'])"),
            {"id": person_id, "h": privacy.hash_nik(row["nik"]), "prv": f"PRV-{uuid.uuid4().hex[:10].upper()}", "v": SIDOARJO_VILLAGE})
    job = await finished(imports, (await submit(imports, to_csv([row])))["id"])
    assert (job["inserted"], job["updated"], job["failed"]) == (0, 1, 0), job
    r = await imports.post("/v1/persons/lookup", json={"nik": row["nik"]}, headers=SIDOARJO)
    assert r.status_code == 200 and r.json()["id"] == str(person_id)
    assert r.json()["nik"] == row["nik"][:4] + "*" * 8 + row["nik"][-4:] and r.json()["birth_date"] == row["birth_date"]
    async with imports.app.state.session_factory() as s:
        payload = (await s.execute(select(outbox.c.payload).where(
            outbox.c.message_key == str(person_id), outbox.c.ce_type.like("%person.updated.v1")))).scalar_one()
    assert "nik" in json.loads(payload)["changed"]
