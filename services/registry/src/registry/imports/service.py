"""Use cases of the bulk import and its background worker.

Upload (:func:`submit`): the file is checked as a whole (UTF-8, CSV, header), cut into
pieces of whole records and stored with its job in the request's transaction, so a job
survives a restart of the process. Nothing about the persons is decided yet.

Worker (:class:`ImportWorker`): claims an unfinished job and applies its pieces, two at a
time by default ("lanes"), each in one transaction that takes the piece (``FOR UPDATE SKIP
LOCKED``), applies it, adds its counts and error lines to the job, and deletes the piece. A
crash rolls back the pieces under way, which the next attempt (by this or another process)
does again; a piece is never applied twice. While the database writes one lane's piece, the
other lane's piece is read and checked (same thread, in turns: see
:func:`prepare_cooperatively`).

Applying a piece: rows are checked (:mod:`.domain`); NIK and phone are sealed and the NIK
hashed; the persons already registered under those NIK hashes are read and locked. A row
whose person does not exist yet is inserted (COPY straight into ``person``); one that
differs from its person updates it (COPY into a temporary table, one ``UPDATE ... FROM``);
one that matches changes nothing. Household memberships follow the row's KK and
relationship. Events go to the outbox in the same transaction (COPY into ``outbox``, rows
exactly like :func:`pilar_kernel.outbox.add_event`'s): ``PersonRegistered`` for inserted
persons, ``PersonMoved`` (regency changed) and ``PersonUpdated`` for changed ones and one
``HouseholdChanged`` per household whose members changed, as the persons module does. An
unchanged row writes nothing, so importing the same file again emits nothing.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import structlog
from asyncpg.pgproto.pgproto import UUID as PgUUID
from sqlalchemy import insert, select, tuple_
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pilar_kernel.auth import Principal
from pilar_kernel.outbox import lane_of
from pilar_kernel.problems import NotFound, Problem
from pilar_kernel.tracecontext import child_traceparent, parse_trace_id

from ..events import SOURCE, HouseholdChanged, PersonMoved, PersonRegistered, PersonUpdated
from ..privacy import Privacy
from . import domain
from .models import DONE, FAILED, QUEUED, ImportJob, ImportPiece

log = structlog.get_logger("registry.imports")

MAX_UPLOAD_BYTES = 512 * 1024 * 1024
MAX_ATTEMPTS = 5
_SLICE = 100  # rows checked between two turns of the event loop
INACTIVE = ("deceased", "merged")


# --------------------------------------------------------------------------- upload


@dataclass(frozen=True)
class _StoredUpload:
    columns: tuple[str, ...]
    total: int
    pieces: list[dict[str, Any]]


def _read_upload(data: bytes) -> _StoredUpload:
    upload = domain.split_upload(domain.decode(data))
    pieces = [
        {"seq": p.seq, "first_row": p.first_row, "row_count": p.row_count, "data": p.text.encode("utf-8"),
         "dup_rows": p.dup_rows, "dup_of": p.dup_of}
        for p in upload.pieces
    ]  # fmt: skip
    return _StoredUpload(columns=upload.columns, total=upload.total, pieces=pieces)


def too_large() -> Problem:
    return Problem(f"the file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB: split it", status=413,
                   type="payload-too-large", title="File too large")  # fmt: skip


def invalid_upload(exc: domain.UploadError) -> Problem:
    return Problem(str(exc), status=422, type="validation-error", title="Invalid input", errors=exc.errors)


async def submit(
    session: AsyncSession, principal: Principal, data: bytes, *, filename: str | None, traceparent: str | None
) -> ImportJob:
    """Check and store an uploaded file as a queued job (in the caller's transaction)."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise too_large()
    if not data.strip():
        raise invalid_upload(domain.UploadError("the file is empty: the first row must name the columns"))
    try:
        # A large file takes seconds to read: keep the event loop free meanwhile.
        stored = await asyncio.to_thread(_read_upload, data)
    except domain.UploadError as exc:
        raise invalid_upload(exc) from None
    job = ImportJob(
        id=uuid.uuid4(),
        owner=principal.subject,
        region=principal.region,
        status=QUEUED,
        filename=filename[:200] if filename else None,
        columns=list(stored.columns),
        size_bytes=len(data),
        pieces=len(stored.pieces),
        total=stored.total,
        traceparent=traceparent,
    )
    session.add(job)
    await session.flush()
    await session.execute(insert(ImportPiece.__table__), [{"job_id": job.id, **p} for p in stored.pieces])
    await session.refresh(job)
    return job


def visible(principal: Principal, job: ImportJob) -> bool:
    """The client that uploaded a job sees it, and so do province-wide clients."""
    return job.owner == principal.subject or principal.region is None


async def get_job(session: AsyncSession, principal: Principal, job_id: uuid.UUID) -> ImportJob:
    job = (await session.execute(select(ImportJob).where(ImportJob.id == job_id))).scalars().first()
    if job is None or not visible(principal, job):
        raise NotFound("no such import")
    return job


async def list_jobs(session: AsyncSession, principal: Principal, *, limit: int, after: list[Any] | None) -> list[ImportJob]:
    stmt = select(ImportJob)
    if principal.region is not None:
        stmt = stmt.where(ImportJob.owner == principal.subject)
    if after:
        try:
            key = (datetime.fromisoformat(after[0]), uuid.UUID(after[1]))
        except (ValueError, TypeError, IndexError):
            raise Problem("cursor is not one this service issued", status=422, type="validation-error", title="Invalid input",
                          errors=[{"field": "query.cursor", "message": "unknown cursor", "rule": "cursor"}]) from None
        stmt = stmt.where(tuple_(ImportJob.created_at, ImportJob.id) < key)
    stmt = stmt.order_by(ImportJob.created_at.desc(), ImportJob.id.desc()).limit(limit + 1)
    return list((await session.execute(stmt)).scalars().all())


def to_out(job: ImportJob) -> dict[str, Any]:
    progress = 1.0 if job.status == DONE else (job.processed / job.total if job.total else 0.0)
    return {
        "id": job.id, "status": job.status, "filename": job.filename, "columns": job.columns,
        "total": job.total, "processed": job.processed, "inserted": job.inserted, "updated": job.updated,
        "unchanged": job.unchanged, "failed": job.failed, "progress": round(progress, 4), "error": job.error,
        "created_at": job.created_at, "started_at": job.started_at, "finished_at": job.finished_at,
        "links": {"self": f"/v1/imports/{job.id}", "errors": f"/v1/imports/{job.id}/errors.csv"},
    }  # fmt: skip


ERRORS_HEADER = ("row", "column", "reason")


async def error_report(session_factory: async_sessionmaker, job_id: uuid.UUID, *, page_size: int = 5_000) -> AsyncIterator[bytes]:
    """The job's error lines as CSV (row, column, reason), in row order, read page by page."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(ERRORS_HEADER)
    yield out.getvalue().encode()
    after = (0, 0)
    while True:
        async with session_factory() as session:
            conn = await _raw(session)
            rows = await conn.fetch(
                "SELECT id, row_no, column_name, reason FROM import_error WHERE job_id = $1 AND (row_no, id) > ($2, $3) "
                "ORDER BY row_no, id LIMIT $4",
                job_id, after[0], after[1], page_size,
            )  # fmt: skip
        if not rows:
            return
        out.seek(0)
        out.truncate()
        writer.writerows((r["row_no"], r["column_name"], r["reason"]) for r in rows)
        yield out.getvalue().encode()
        after = (rows[-1]["row_no"], rows[-1]["id"])


async def _raw(session: AsyncSession) -> asyncpg.Connection:
    """The session's asyncpg connection, for COPY and arrays.

    SQLAlchemy only sends BEGIN before its own first statement: statements sent on this
    connection directly run outside any transaction unless one is opened on it (see
    :func:`_transaction`).
    """
    conn = await session.connection()
    return (await conn.get_raw_connection()).driver_connection


@asynccontextmanager
async def _transaction(session_factory: async_sessionmaker) -> AsyncIterator[asyncpg.Connection]:
    """A pooled asyncpg connection inside an asyncpg transaction (committed on success)."""
    async with session_factory() as session:
        conn = await _raw(session)
        async with conn.transaction():
            yield conn


# --------------------------------------------------------------------------- checking a piece


@dataclass
class Prepared:
    """A piece read, checked and sealed, ready to be written (no database needed to make it)."""

    seq: int
    row_count: int
    rows: list[domain.ParsedRow] = field(default_factory=list)
    errors: list[domain.RowError] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    ids: list[uuid.UUID] = field(default_factory=list)  # fresh ids, used if the person is new
    phone_index: list[str | None] = field(default_factory=list)
    new_records: list[tuple] = field(default_factory=list)  # person COPY records under the fresh ids
    registered: list[bytes] = field(default_factory=list)  # PersonRegistered payloads under the fresh ids


PERSON_COLUMNS = (
    "id", "nik_hash", "nik_enc", "pii_key_id", "name", "name_norm", "birth_place", "birth_date", "sex", "village_code",
    "district_code", "regency_code", "rt", "rw", "street", "phone_enc", "phone_index", "disability_type",
    "disability_severity", "ppks", "decile", "decile_date", "occupation", "employer",
)  # fmt: skip
OUTBOX_COLUMNS = ("topic", "message_key", "lane", "ce_id", "ce_type", "ce_source", "ce_time", "ce_subject", "traceparent", "payload")


def random_uuids(n: int) -> list[uuid.UUID]:
    """``n`` random (version 4) UUIDs from one call to the system's random source.

    They are asyncpg's own UUID class (a ``uuid.UUID``, equal and hashing alike, the type
    asyncpg returns for uuid columns): made from bytes and printed several times faster
    than the standard library's, which counts at a few per imported row.
    """
    raw = bytearray(os.urandom(16 * n))
    raw[6::16] = bytes((b & 0x0F) | 0x40 for b in raw[6::16])  # version 4
    raw[8::16] = bytes((b & 0x3F) | 0x80 for b in raw[8::16])  # RFC 4122 variant
    data = bytes(raw)
    return [PgUUID(data[i : i + 16]) for i in range(0, 16 * n, 16)]


def _preparing(piece: asyncpg.Record | dict[str, Any], ctx: domain.RowContext, privacy: Privacy, out: Prepared) -> Iterator[None]:
    """Fill ``out`` from the piece, yielding every few rows (see :func:`prepare_cooperatively`)."""
    duplicates = dict(zip(piece["dup_rows"] or (), piece["dup_of"] or ()))
    key_id = privacy.cipher.current_key_id
    ids = iter(random_uuids(piece["row_count"]))
    for n, (row_no, cells) in enumerate(domain.read_piece(bytes(piece["data"]).decode("utf-8"), piece["first_row"]), start=1):
        if n % _SLICE == 0:
            yield
        if row_no in duplicates:
            out.errors.append(domain.RowError(row_no, "nik", f"the same NIK is already on row {duplicates[row_no]} of this file"))
            continue
        parsed = domain.parse_row(cells, row_no, ctx)
        if isinstance(parsed, list):
            out.errors.extend(parsed)
            continue
        person_id = next(ids)
        nik_hash = privacy.hash_nik(parsed.nik)
        phone_index = privacy.index_phone(parsed.phone) if parsed.phone else None
        out.rows.append(parsed)
        out.hashes.append(nik_hash)
        out.ids.append(person_id)
        out.phone_index.append(phone_index)
        out.new_records.append((
            person_id, nik_hash, privacy.seal(parsed.nik, person_id), key_id, parsed.name, parsed.name_norm,
            parsed.birth_place, parsed.birth_date, parsed.sex, parsed.village_code, parsed.district_code,
            parsed.regency_code, parsed.rt, parsed.rw, parsed.street,
            privacy.seal(parsed.phone, person_id) if parsed.phone else None, phone_index, parsed.disability_type,
            parsed.disability_severity, parsed.ppks, parsed.decile, parsed.decile_date, parsed.occupation,
            parsed.employer,
        ))  # fmt: skip
        out.registered.append(
            PersonRegistered(
                person_id=person_id, nik_hash=nik_hash, regency_code=parsed.regency_code, provisional=False,
                district_code=parsed.district_code, birth_date=parsed.birth_date, sex=parsed.sex, ppks=parsed.ppks,
                decile=parsed.decile, disability_severity=parsed.disability_severity,
            ).to_json()
        )  # fmt: skip


def prepare(piece: asyncpg.Record | dict[str, Any], ctx: domain.RowContext, privacy: Privacy) -> Prepared:
    """Read and check a stored piece; seal, hash and build the insert records of its valid rows."""
    out = Prepared(seq=piece["seq"], row_count=piece["row_count"])
    for _ in _preparing(piece, ctx, privacy, out):
        pass
    return out


async def prepare_cooperatively(piece: asyncpg.Record | dict[str, Any], ctx: domain.RowContext, privacy: Privacy) -> Prepared:
    """:func:`prepare`, handing the event loop back every few rows.

    Run by one lane while the database writes the other lane's piece, it fills that time in
    the same thread: a second thread would fight this one for the GIL at every socket read.
    """
    out = Prepared(seq=piece["seq"], row_count=piece["row_count"])
    for _ in _preparing(piece, ctx, privacy, out):
        await asyncio.sleep(0)
    return out


# --------------------------------------------------------------------------- writing a piece

_EXISTING = """
    SELECT p.id, p.nik_hash, p.nik_enc IS NULL AS nik_missing, p.status, p.version, p.name, p.birth_place, p.birth_date, p.sex, p.village_code,
           p.district_code, p.regency_code, p.rt, p.rw, p.street, p.phone_index, p.disability_type,
           p.disability_severity, p.ppks, p.decile, p.decile_date, p.occupation, p.employer,
           m.id AS member_id, m.relationship, h.id AS household_id, h.kk_number, h.regency_code AS household_regency
    FROM person p
    LEFT JOIN household_member m ON m.person_id = p.id AND m.valid_to IS NULL
    LEFT JOIN household h ON h.id = m.household_id
    WHERE p.nik_hash = ANY($1::text[])
    ORDER BY p.nik_hash
    FOR UPDATE OF p
"""

_UPDATE_TABLE = "import_person_update"
_UPDATE_COLUMNS = (
    "id", "name", "name_norm", "birth_place", "birth_date", "sex", "village_code", "district_code", "regency_code", "rt",
    "rw", "street", "phone_enc", "phone_index", "phone_changed", "disability_type", "disability_severity", "ppks",
    "decile", "decile_date", "occupation", "employer",
)  # fmt: skip
_CREATE_UPDATE_TABLE = f"""
    CREATE TEMP TABLE {_UPDATE_TABLE} (
        id uuid, name text, name_norm text, birth_place text, birth_date date, sex text, village_code text,
        district_code text, regency_code text, rt text, rw text, street text, phone_enc bytea, phone_index text,
        phone_changed boolean, disability_type text, disability_severity text, ppks text[], decile integer,
        decile_date date, occupation text, employer text
    ) ON COMMIT DELETE ROWS
"""
_SET = ", ".join(f"{c} = u.{c}" for c in _UPDATE_COLUMNS if c not in ("id", "phone_enc", "phone_index", "phone_changed"))
_APPLY_UPDATES = f"""
    UPDATE person p SET {_SET},
        phone_enc = CASE WHEN u.phone_changed THEN u.phone_enc ELSE p.phone_enc END,
        phone_index = CASE WHEN u.phone_changed THEN u.phone_index ELSE p.phone_index END,
        version = p.version + 1, updated_at = now()
    FROM {_UPDATE_TABLE} u WHERE p.id = u.id
"""


@dataclass
class Counts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0


class _Outbox:
    """Outbox rows of one piece, in the order they are added (which is their id order)."""

    def __init__(self, traceparent: str) -> None:
        self.records: list[tuple] = []
        self.traceparent = traceparent
        self.time = datetime.now(UTC)
        self._ids: list[uuid.UUID] = []

    def _ce_id(self) -> uuid.UUID:
        if not self._ids:
            self._ids = random_uuids(1024)
        return self._ids.pop()

    def add(self, event_cls, key: uuid.UUID, payload: bytes) -> None:
        subject = str(key)
        self.records.append(
            (event_cls.topic, subject, lane_of(subject), self._ce_id(), event_cls.ce_type, SOURCE, self.time, subject,
             self.traceparent, payload)
        )  # fmt: skip


def _merged(existing: asyncpg.Record, row: domain.ParsedRow, present: frozenset[str]) -> dict[str, Any]:
    """The person's fields after the row: present columns from the row, the rest as stored."""
    values = {name: existing[name] for name in domain.COMPARED if name != "phone"}
    for name in domain.COMPARED:
        if name in present and name != "phone":
            values[name] = getattr(row, name)
    if "village_code" in present:
        values["district_code"], values["regency_code"] = row.district_code, row.regency_code
    else:
        values["district_code"], values["regency_code"] = existing["district_code"], existing["regency_code"]
    return values


async def write_piece(
    conn: asyncpg.Connection, job: asyncpg.Record, prep: Prepared, privacy: Privacy, ctx: domain.RowContext
) -> tuple[Counts, list[domain.RowError]]:
    """Apply a checked piece inside the caller's transaction. Returns its counts and error lines."""
    counts = Counts()
    errors = list(prep.errors)
    present = ctx.present
    outbox = _Outbox(child_traceparent(job["traceparent"]))
    existing = {r["nik_hash"]: r for r in await conn.fetch(_EXISTING, prep.hashes)} if prep.hashes else {}

    new_records: list[tuple] = []
    updates: list[tuple] = []
    memberships: list[tuple[uuid.UUID, domain.ParsedRow]] = []  # (person id, row) joining the row's KK
    closes: list[int] = []  # current memberships to end
    left: dict[uuid.UUID, str | None] = {}  # households someone left: id → regency
    completions: list[tuple[uuid.UUID, bytes]] = []  # provisional records given their NIK
    for i, row in enumerate(prep.rows):
        old = existing.get(prep.hashes[i])
        if old is None:
            new_records.append(prep.new_records[i])
            outbox.add(PersonRegistered, prep.ids[i], prep.registered[i])
            memberships.append((prep.ids[i], row))
            counts.inserted += 1
            continue
        if not domain.in_region(old["regency_code"], job["region"]):
            errors.append(domain.RowError(row.row_no, "nik", "a person with this NIK is registered outside your region"))
            continue
        changed = domain.changed_fields(dict(old), row, present, prep.phone_index[i])
        if old["nik_missing"]:
            # A provisional record opened from another service's report kept only this NIK's hash: the row completes it.
            changed = sorted([*changed, "nik"])
        membership = (old["kk_number"], old["relationship"]) if old["kk_number"] is not None else None
        joins = domain.membership_change(membership, row)
        if not changed and not joins:
            counts.unchanged += 1
            continue
        if old["status"] in INACTIVE:
            errors.append(domain.RowError(row.row_no, "nik", f"the person's record is {old['status']} and cannot be changed"))
            continue
        person_id = old["id"]
        if old["nik_missing"]:
            completions.append((person_id, privacy.seal(row.nik, person_id)))
        if changed:
            values = _merged(old, row, present)
            phone_changed = "phone" in changed
            updates.append((
                person_id, values["name"], domain.normalise_name(values["name"]), values["birth_place"],
                values["birth_date"], values["sex"], values["village_code"], values["district_code"],
                values["regency_code"], values["rt"], values["rw"], values["street"],
                privacy.seal(row.phone, person_id) if phone_changed and row.phone else None,
                prep.phone_index[i] if phone_changed else None, phone_changed, values["disability_type"],
                values["disability_severity"], values["ppks"], values["decile"], values["decile_date"],
                values["occupation"], values["employer"],
            ))  # fmt: skip
            if values["regency_code"] != old["regency_code"]:
                outbox.add(PersonMoved, person_id, PersonMoved(
                    person_id=person_id, nik_hash=old["nik_hash"], regency_code=values["regency_code"],
                    from_regency_code=old["regency_code"], to_regency_code=values["regency_code"],
                ).to_json())  # fmt: skip
            outbox.add(PersonUpdated, person_id, PersonUpdated(
                person_id=person_id, nik_hash=old["nik_hash"], regency_code=values["regency_code"], changed=changed,
                ppks=values["ppks"], decile=values["decile"], disability_severity=values["disability_severity"],
            ).to_json())  # fmt: skip
        if joins:
            if old["member_id"] is not None:
                closes.append(old["member_id"])
                if old["kk_number"] != row.kk_number:
                    left[old["household_id"]] = old["household_regency"]
            memberships.append((person_id, row))
        counts.updated += 1

    if new_records:
        await conn.copy_records_to_table("person", records=new_records, columns=PERSON_COLUMNS)
    if updates:
        if await conn.fetchval(f"SELECT to_regclass('pg_temp.{_UPDATE_TABLE}')") is None:
            await conn.execute(_CREATE_UPDATE_TABLE)
        await conn.copy_records_to_table(_UPDATE_TABLE, records=updates, columns=_UPDATE_COLUMNS)
        await conn.execute(_APPLY_UPDATES)
    if completions:
        await conn.execute(
            "UPDATE person p SET nik_enc = c.enc FROM unnest($1::uuid[], $2::bytea[]) AS c(id, enc) WHERE p.id = c.id AND p.nik_enc IS NULL",
            [c[0] for c in completions], [c[1] for c in completions],
        )
    households = await _join_households(conn, memberships, closes)
    for household_id, regency in left.items():
        households.setdefault(household_id, _Household(regency, created=False))
    await _household_events(conn, outbox, households)
    if outbox.records:
        await conn.copy_records_to_table("outbox", records=outbox.records, columns=OUTBOX_COLUMNS)
    counts.failed = domain.error_rows(errors)
    return counts, errors


@dataclass
class _Household:
    regency_code: str | None
    created: bool  # by this piece: its members are exactly those who joined here
    joined: list[tuple[uuid.UUID, str]] = field(default_factory=list)  # (person id, relationship), in order


async def _join_households(
    conn: asyncpg.Connection, memberships: list[tuple[uuid.UUID, domain.ParsedRow]], closes: list[int]
) -> dict[uuid.UUID, _Household]:
    """End the listed memberships and put each person in their row's KK (created if new,
    locked otherwise, as the persons module does); returns the households joined."""
    if closes:
        await conn.execute("UPDATE household_member SET valid_to = now() WHERE id = ANY($1::bigint[])", closes)
    if not memberships:
        return {}
    first: dict[str, str] = {}
    for _, row in memberships:
        first.setdefault(row.kk_number, row.regency_code)
    kks = sorted(first)
    rows = {r["kk_number"]: (r, True) for r in await conn.fetch(
        "INSERT INTO household (id, kk_number, regency_code) "
        "SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[]) ON CONFLICT (kk_number) DO NOTHING "
        "RETURNING id, kk_number, regency_code",
        random_uuids(len(kks)), kks, [first[k] for k in kks],
    )}  # fmt: skip
    known = [k for k in kks if k not in rows]
    if known:
        for r in await conn.fetch(
            "SELECT id, kk_number, regency_code FROM household WHERE kk_number = ANY($1::text[]) ORDER BY kk_number FOR UPDATE", known
        ):
            rows[r["kk_number"]] = (r, False)
    households: dict[uuid.UUID, _Household] = {}
    records = []
    for person_id, row in memberships:
        r, created = rows[row.kk_number]
        records.append((r["id"], person_id, row.relationship))
        households.setdefault(r["id"], _Household(r["regency_code"], created)).joined.append((person_id, row.relationship))
    await conn.copy_records_to_table("household_member", records=records, columns=("household_id", "person_id", "relationship"))
    return households


async def _household_events(conn: asyncpg.Connection, outbox: _Outbox, households: dict[uuid.UUID, _Household]) -> None:
    """One HouseholdChanged per household whose members changed, with its current members."""
    if not households:
        return
    ids = sorted(households, key=str)
    members = {h: list(households[h].joined) for h in ids if households[h].created}
    read = [h for h in ids if not households[h].created]
    if read:
        for h in read:
            members[h] = []
        for r in await conn.fetch(
            "SELECT household_id, person_id, relationship FROM household_member "
            "WHERE household_id = ANY($1::uuid[]) AND valid_to IS NULL ORDER BY household_id, id",
            read,
        ):
            members[r["household_id"]].append((r["person_id"], r["relationship"]))
    for household_id in ids:
        current = members[household_id]
        head = next((pid for pid, rel in current if rel == "head"), None)
        payload = HouseholdChanged(
            household_id=household_id, regency_code=households[household_id].regency_code,
            member_ids=[pid for pid, _ in current], head_person_id=head,
        ).to_json()  # fmt: skip
        outbox.add(HouseholdChanged, household_id, payload)


# --------------------------------------------------------------------------- the worker

_CLAIM = """
    SELECT id FROM import_job WHERE status IN ('queued', 'running')
    ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED
"""
_JOB = "SELECT * FROM import_job WHERE id = $1"
# The first piece no other transaction holds; the lock lasts until the piece is applied.
_TAKE_PIECE = """
    SELECT seq, first_row, row_count, data, dup_rows, dup_of FROM import_piece WHERE job_id = $1
    ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED
"""
_ANY_PIECE = "SELECT EXISTS (SELECT 1 FROM import_piece WHERE job_id = $1)"
# Counts are added, so pieces applied side by side add up; the piece that completes the
# count finishes the job. A job another lane failed meanwhile stays failed.
_ADVANCE = """
    UPDATE import_job SET
        status = CASE WHEN status = 'failed' THEN status WHEN pieces_done + 1 >= pieces THEN 'done' ELSE 'running' END,
        finished_at = CASE WHEN status = 'failed' THEN finished_at WHEN pieces_done + 1 >= pieces THEN clock_timestamp() END,
        error = CASE WHEN status = 'failed' THEN error END,
        processed = processed + $2, inserted = inserted + $3, updated = updated + $4, unchanged = unchanged + $5,
        failed = failed + $6, pieces_done = pieces_done + 1, attempts = 0, updated_at = clock_timestamp()
    WHERE id = $1
"""
_FINISH = """
    UPDATE import_job SET status = 'done', finished_at = clock_timestamp(), updated_at = clock_timestamp()
    WHERE id = $1 AND status IN ('queued', 'running')
"""
_ERROR_COLUMNS = ("job_id", "row_no", "column_name", "reason")
LANES = 2


def _disconnected(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (OSError, asyncpg.exceptions.ConnectionDoesNotExistError, asyncpg.exceptions.CannotConnectNowError,
                            asyncpg.exceptions.InterfaceError))


class _Lost(Exception):
    """The job is finished or failed (by another lane or worker), or gone."""


class ImportWorker:
    """Processes queued import jobs, one piece per transaction. Run with :meth:`run`; stop with :meth:`stop`.

    A worker applies ``lanes`` pieces of a job at once, each in its own transaction on its own
    connection: while the database writes one piece, the next is read and checked here, and
    the database can work on two pieces at a time. Any number of workers (in one or several
    processes) may run side by side and share a job: each transaction takes the first piece
    nobody holds (``FOR UPDATE SKIP LOCKED``).

    Pieces of one job are independent (a NIK appears once per file). Where two pieces share
    a KK, the second to insert the household waits for the first's commit at the unique KK,
    then joins it like any existing household; every piece inserts and locks households in
    KK order, so two pieces cannot deadlock on them.
    """

    def __init__(
        self, session_factory: async_sessionmaker, privacy: Privacy, *, poll_interval_s: float = 1.0,
        max_attempts: int = MAX_ATTEMPTS, retry_backoff_s: float = 1.0, lanes: int = LANES,
    ) -> None:  # fmt: skip
        self._sessions = session_factory
        self._privacy = privacy
        self._poll = poll_interval_s
        self._max_attempts = max_attempts
        self._backoff = retry_backoff_s
        self._lanes = max(1, lanes)
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()

    async def run(self) -> None:
        structlog.contextvars.clear_contextvars()  # not the request that happened to start the task
        while not self._stopping.is_set():
            try:
                worked = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: try again later
                log.warning("import worker error, backing off", error=str(exc))
                worked = False
            if not worked:
                await self._sleep(self._poll)

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        except TimeoutError:
            pass
        self._wake.clear()

    async def run_once(self) -> bool:
        """Claim one unfinished job and work on it until it is done or lost; False when there was nothing to do."""
        async with _transaction(self._sessions) as conn:
            job_id = await conn.fetchval(_CLAIM)
            if job_id is None:
                return False
            await conn.execute(
                "UPDATE import_job SET status = 'running', started_at = coalesce(started_at, now()), updated_at = now() "
                "WHERE id = $1 AND status = 'queued'",
                job_id,
            )
        return await self.process(job_id)

    async def process(self, job_id: uuid.UUID) -> bool:
        """Apply the job's pieces, ``lanes`` at a time, until none is left to take or the job
        ended (then False if this worker did nothing)."""
        structlog.contextvars.bind_contextvars(import_job=str(job_id))
        try:
            if self._lanes == 1:
                return await self._lane(job_id)
            # A lane that raises (the database went away) cancels the others.
            async with asyncio.TaskGroup() as group:
                lanes = [group.create_task(self._lane(job_id)) for _ in range(self._lanes)]
            return any(lane.result() for lane in lanes)
        except* _Disconnected as group:
            raise group.exceptions[0].__cause__ from None  # the run loop backs off
        finally:
            structlog.contextvars.unbind_contextvars("import_job")

    async def _lane(self, job_id: uuid.UUID) -> bool:
        """Apply pieces one after the other until none is free; True if any was applied (or failed)."""
        progressed = False
        while not self._stopping.is_set():
            try:
                applied = await self._step(job_id)
            except _Lost:
                return progressed
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if _disconnected(exc):  # the database is away: not the piece's fault
                    raise _Disconnected() from exc
                if not await self._record_failure(job_id, exc):
                    return True
                await self._sleep(self._backoff)
                continue
            if not applied:
                return progressed
            progressed = True
        return progressed

    async def _step(self, job_id: uuid.UUID) -> bool:
        """Take, apply and delete one piece in one transaction; False when no piece is free."""
        async with _transaction(self._sessions) as conn:
            job = await conn.fetchrow(_JOB, job_id)
            if job is None or job["status"] in (DONE, FAILED):
                raise _Lost
            piece = await conn.fetchrow(_TAKE_PIECE, job_id)
            if piece is None:
                # None left at all (a job stopped between its last piece and its status): finish it.
                # Otherwise the rest are held by other lanes or workers, which finish the job.
                if not await conn.fetchval(_ANY_PIECE, job_id):
                    await conn.execute(_FINISH, job_id)
                return False
            ctx = domain.RowContext(columns=tuple(job["columns"]), region=job["region"], today=date.today())
            prep = await prepare_cooperatively(piece, ctx, self._privacy)
            counts, errors = await write_piece(conn, job, prep, self._privacy, ctx)
            if errors:
                await conn.copy_records_to_table(
                    "import_error", records=[(job_id, e.row_no, e.column, e.reason) for e in errors], columns=_ERROR_COLUMNS
                )
            await conn.execute("DELETE FROM import_piece WHERE job_id = $1 AND seq = $2", job_id, piece["seq"])
            await conn.execute(_ADVANCE, job_id, prep.row_count, counts.inserted, counts.updated, counts.unchanged, counts.failed)
        log.info("import piece applied", seq=prep.seq, inserted=counts.inserted, updated=counts.updated,
                 unchanged=counts.unchanged, failed=counts.failed, trace_id=parse_trace_id(job["traceparent"]))  # fmt: skip
        return True

    async def _record_failure(self, job_id: uuid.UUID, exc: Exception) -> bool:
        """Count a failed attempt; the job fails after ``max_attempts``. True to try again."""
        log.warning("import piece failed", error=repr(exc)[:500])
        message = f"internal error while importing ({type(exc).__name__}); the rows processed so far are imported"
        async with _transaction(self._sessions) as conn:
            attempts = await conn.fetchval(
                "UPDATE import_job SET attempts = attempts + 1, error = $2, updated_at = clock_timestamp(), "
                "status = CASE WHEN attempts + 1 >= $3 THEN 'failed' ELSE status END, "
                "finished_at = CASE WHEN attempts + 1 >= $3 THEN clock_timestamp() END "
                "WHERE id = $1 RETURNING attempts",
                job_id, message, self._max_attempts,
            )  # fmt: skip
        return attempts is not None and attempts < self._max_attempts


class _Disconnected(Exception):
    """A lane lost the database (the original error is the cause)."""


def import_worker(app) -> ImportWorker:
    """The worker factory for ``ServiceSpec.workers``: the app's sessions and privacy keys.

    The worker is kept as ``app.state.import_worker`` so that an upload can wake it at once.
    """
    worker = ImportWorker(app.state.session_factory, app.state.privacy, lanes=app.state.settings.import_lanes)
    app.state.import_worker = worker
    return worker


__all__ = ["ImportWorker", "error_report", "get_job", "list_jobs", "import_worker", "prepare", "submit", "to_out", "write_piece"]
