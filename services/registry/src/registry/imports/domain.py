"""Rules of the bulk import, with no I/O: the CSV's columns, splitting an upload into pieces
of whole records, reading and checking one row, and what an imported row changes.

A row passes exactly when the persons API would accept the same person
(:func:`registry.persons.domain.check_registration`), plus the import's own rules: the
columns that must be filled, the cell formats, and the uploader's region. The checks are
written out here (with caches for region codes and a short path for valid NIKs) because
they run a million times per large file; ``test_imports`` holds them to
``check_registration``'s verdicts.

Row numbers are those a spreadsheet shows: the header is row 1, the first person row 2
(a quoted cell spanning lines still makes one row). Error reasons never repeat a NIK,
phone number or name.
"""

from __future__ import annotations

import csv
import email.message
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Any

from pilar_kernel import regions
from pilar_kernel.auth import Principal
from pilar_kernel.nik import validate_nik

from ..persons.domain import DISABILITY_SEVERITIES, DISABILITY_TYPES, PPKS_CATEGORIES, RELATIONSHIPS, normalise_name

# -- the file ----------------------------------------------------------------------------

COLUMNS = (
    "nik", "name", "birth_place", "birth_date", "sex", "kk_number", "relationship", "village_code", "rt", "rw",
    "street", "phone", "disability_type", "disability_severity", "ppks", "decile", "decile_date", "occupation",
    "employer",
)  # fmt: skip
REQUIRED = ("nik", "name", "birth_date", "sex", "kk_number", "relationship", "village_code")
# Columns that only make sense together: a header with one of them must have the other.
PAIRED = (("decile", "decile_date"), ("disability_severity", "disability_type"))
# Person fields a re-import compares (and PersonUpdated names), in alphabetical order.
COMPARED = (
    "birth_date", "birth_place", "decile", "decile_date", "disability_severity", "disability_type", "employer", "name",
    "occupation", "phone", "ppks", "rt", "rw", "sex", "street", "village_code",
)  # fmt: skip

ROWS_PER_PIECE = 5_000
MAX_LENGTHS = {"name": 200, "birth_place": 100, "street": 200, "occupation": 100, "employer": 200}

# As offices write them on the KK, besides the registry's own slugs.
SEXES = {"m": "M", "l": "M", "lk": "M", "laki-laki": "M", "laki laki": "M", "f": "F", "p": "F", "pr": "F", "perempuan": "F"}
RELATIONSHIP_LABELS = {
    "kepala keluarga": "head", "suami": "husband", "istri": "wife", "anak": "child", "menantu": "child_in_law",
    "cucu": "grandchild", "orang tua": "parent", "orangtua": "parent", "mertua": "parent_in_law",
    "famili lain": "other_relative", "pembantu": "household_help", "lainnya": "other",
}  # fmt: skip
_RELATIONSHIPS = {**{r: r for r in RELATIONSHIPS}, **RELATIONSHIP_LABELS}
_PPKS = {**{slug: slug for slug in PPKS_CATEGORIES}, **{name.lower(): slug for slug, name in PPKS_CATEGORIES.items()}}

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_RT_RW = re.compile(r"[0-9]{1,3}")
_PHONE = re.compile(r"\+?[0-9 \-]{8,20}")
_DIGITS16 = re.compile(r"[0-9]{16}")


class UploadError(ValueError):
    """The upload as a whole cannot be imported (not CSV, bad header): a 422 with ``errors``."""

    def __init__(self, message: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or [{"field": "body", "message": message, "rule": "import.file"}]


@dataclass(frozen=True, slots=True)
class Piece:
    seq: int
    first_row: int
    row_count: int
    text: str
    dup_rows: list[int]
    dup_of: list[int]


@dataclass(frozen=True, slots=True)
class Upload:
    columns: tuple[str, ...]
    pieces: list[Piece]

    @property
    def total(self) -> int:
        return sum(p.row_count for p in self.pieces)


def decode(data: bytes) -> str:
    """The upload as text: UTF-8, with or without a byte-order mark (as spreadsheets save it)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UploadError(f"the file is not UTF-8 text (bad byte at offset {exc.start}); save it as CSV UTF-8") from None


def read_header(cells: Sequence[str]) -> tuple[str, ...]:
    """The column names of a header row (case and surrounding spaces ignored), or UploadError."""
    names = tuple(c.strip().lower() for c in cells)
    errors = []
    for position, name in enumerate(names, start=1):
        if name not in COLUMNS:
            errors.append({"field": f"header.{name or position}", "message": f"unknown column {name!r} (column {position})", "rule": "import.column"})
    for name in sorted({n for n in names if names.count(n) > 1}):
        errors.append({"field": f"header.{name}", "message": f"column {name!r} appears more than once", "rule": "import.column"})
    for name in REQUIRED:
        if name not in names:
            errors.append({"field": f"header.{name}", "message": f"required column {name!r} is missing", "rule": "import.column"})
    for a, b in PAIRED:
        if (a in names) != (b in names):
            missing = b if a in names else a
            errors.append({"field": f"header.{missing}", "message": f"columns {a!r} and {b!r} go together", "rule": "import.column"})
    if errors:
        raise UploadError("the header row does not name the import's columns", errors)
    return names


def is_blank(cells: Sequence[str]) -> bool:
    """A row of nothing but empty or white-space cells (a blank line, or ``,,,`` from a spreadsheet)."""
    return not cells or (not cells[0].strip() and not "".join(cells).strip())


def normalise_nik_cell(value: str) -> str:
    return "".join(value.split())


def split_upload(text: str, *, rows_per_piece: int = ROWS_PER_PIECE) -> Upload:
    """Check the header and cut the records after it into pieces of ``rows_per_piece`` rows.

    Pieces end on record boundaries (a quoted cell may span lines), so each can be read on
    its own; blank lines are kept for the row numbers but not counted as rows. A NIK seen
    again later in the file is noted on the later row (``dup_rows``/``dup_of``): a file
    holds each person once.
    """
    buffer = io.StringIO(text, newline="")
    offset = 0

    def lines() -> Iterator[str]:
        nonlocal offset
        for line in buffer:
            offset += len(line)
            yield line

    reader = csv.reader(lines())
    row_no = 1
    try:
        header = next(reader, None)
        if header is None or is_blank(header):
            raise UploadError("the file is empty: the first row must name the columns")
        columns = read_header(header)
        nik_at = columns.index("nik")
        seen: dict[int, int] = {}
        pieces: list[Piece] = []
        start, first_row, count = offset, 2, 0
        dup_rows: list[int] = []
        dup_of: list[int] = []
        for cells in reader:
            row_no += 1
            if is_blank(cells):
                continue
            count += 1
            if len(cells) > nik_at:
                nik = normalise_nik_cell(cells[nik_at])
                if _DIGITS16.fullmatch(nik):
                    first = seen.setdefault(int(nik), row_no)
                    if first != row_no:
                        dup_rows.append(row_no)
                        dup_of.append(first)
            if count >= rows_per_piece:
                pieces.append(Piece(len(pieces), first_row, count, text[start:offset], dup_rows, dup_of))
                start, first_row, count, dup_rows, dup_of = offset, row_no + 1, 0, [], []
    except csv.Error as exc:
        raise UploadError(f"row {row_no + 1} is not valid CSV: {exc}") from None
    if count:
        pieces.append(Piece(len(pieces), first_row, count, text[start:offset], dup_rows, dup_of))
    if not pieces:
        raise UploadError("the file has a header but no rows")
    return Upload(columns=columns, pieces=pieces)


def file_from_multipart(body: bytes, content_type: str) -> tuple[bytes, str | None]:
    """The uploaded file of a ``multipart/form-data`` body: its bytes and file name.

    Takes the part named ``file``, or else the first part that carries a file name.
    """
    message = email.message.Message()
    message["content-type"] = content_type
    boundary = message.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise UploadError("multipart body without a boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    chosen: tuple[bytes, str | None] | None = None
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        if content.endswith(b"\r\n"):
            content = content[:-2]
        headers = email.message.Message()
        for line in head.decode("latin-1").strip().split("\r\n"):
            name, _, value = line.partition(":")
            if name:
                headers[name.strip()] = value.strip()
        name = headers.get_param("name", header="content-disposition")
        filename = headers.get_param("filename", header="content-disposition")
        filename = filename if isinstance(filename, str) else None
        if name == "file":
            return content, filename
        if chosen is None and filename is not None:
            chosen = (content, filename)
    if chosen is None:
        raise UploadError("the multipart body has no file part (send the CSV as the field 'file')")
    return chosen


# -- one row -----------------------------------------------------------------------------


@dataclass(slots=True)
class ParsedRow:
    """A valid row, normalised: what the registry stores for the person."""

    row_no: int
    nik: str
    name: str
    birth_date: date
    sex: str
    kk_number: str
    relationship: str
    village_code: str
    district_code: str
    regency_code: str
    birth_place: str | None = None
    rt: str | None = None
    rw: str | None = None
    street: str | None = None
    phone: str | None = None
    disability_type: str | None = None
    disability_severity: str | None = None
    ppks: list[str] = field(default_factory=list)
    decile: int | None = None
    decile_date: date | None = None
    occupation: str | None = None
    employer: str | None = None

    @property
    def name_norm(self) -> str:
        return _name_norm(self.name)


@dataclass(frozen=True, slots=True)
class RowError:
    row_no: int
    column: str  # empty when the whole row is at fault
    reason: str


@dataclass(frozen=True)
class RowContext:
    """What every row of one job is checked against."""

    columns: tuple[str, ...]
    region: str | None  # the uploader's region claim; None = province-wide
    today: date

    @property
    def present(self) -> frozenset[str]:
        return frozenset(self.columns)


@lru_cache(maxsize=65_536)
def _name_norm(name: str) -> str:
    return normalise_name(name)  # names repeat a lot in a file (and it is not cheap)


@lru_cache(maxsize=16_384)
def _village(code: str) -> tuple[str, str, str] | str:
    """(village, district, regency) in dotted form, or why the code is refused."""
    try:
        dotted = regions.normalise(code)
    except ValueError:
        return "not a region code (write it like 35.15.14.2001)"
    region = regions.get(dotted)
    if region is None or region.level != "village":
        return "not a village code of the region data"
    if not region.current:
        return "this village code is no longer in use"
    if not regions.is_jatim(dotted):
        return "the address must be in Jawa Timur"
    parts = dotted.split(".")
    return dotted, ".".join(parts[:3]), ".".join(parts[:2])


@lru_cache(maxsize=65_536)
def _kk_region_known(prefix: str) -> bool:
    return regions.get(prefix) is not None


@lru_cache(maxsize=65_536)
def _nik_region_known(prefix: str) -> bool:
    return all(regions.exists(code) for code in (prefix[:2], prefix[:4], prefix))


@lru_cache(maxsize=1_024)
def in_region(regency_code: str | None, region: str | None) -> bool:
    """The persons API's region rule (:meth:`Principal.may_access_region`) for a regency code."""
    return Principal(subject="", scopes=frozenset(), region=region).may_access_region(regency_code)


def nik_reasons(nik: str, birth_date: date | None, sex: str | None) -> list[str]:
    """Why ``nik`` is not a valid NIK for this birth date and sex (empty when it is).

    The common case (a valid NIK matching the row) is decided here without the kernel's
    full check; anything else goes to :func:`pilar_kernel.nik.validate_nik` for its
    reasons, so the verdict is always the kernel's.
    """
    if (
        birth_date is not None
        and sex is not None
        and _DIGITS16.fullmatch(nik)
        and nik[12:] != "0000"
        and not (birth_date.month == 2 and birth_date.day == 29)
        and nik[6:12] == _nik_date_digits(birth_date, sex)
        and _nik_region_known(nik[:6])
    ):
        return []
    return [e.message for e in validate_nik(nik, birth_date=birth_date, sex=sex)]  # type: ignore[arg-type]


@lru_cache(maxsize=65_536)
def _nik_date_digits(birth_date: date, sex: str) -> str:
    return f"{birth_date.day + (40 if sex == 'F' else 0):02d}{birth_date.month:02d}{birth_date.year % 100:02d}"


# Cells repeat a lot down a file (dates, categories, relationships): their readings are cached.


@lru_cache(maxsize=65_536)
def _iso_date(value: str) -> date | None:
    if not _ISO_DATE.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


@lru_cache(maxsize=1_024)
def _relationship(value: str) -> str | None:
    return _RELATIONSHIPS.get(" ".join(value.lower().split()))


@lru_cache(maxsize=4_096)
def _ppks(value: str) -> tuple[list[str], list[str]]:
    """(sorted slugs, unknown items) of a ``;``-separated PPKS cell."""
    slugs, unknown = set(), []
    for item in value.split(";"):
        item = item.strip()
        if item:
            slug = _PPKS.get(item.lower())
            if slug is None:
                unknown.append(item)
            else:
                slugs.add(slug)
    return sorted(slugs), unknown


_REQUIRED_REASON = "required"
_REGION_REASON = "the address is outside your region {}: a regency office imports only its own residents"


def parse_row(cells: Sequence[str], row_no: int, ctx: RowContext) -> ParsedRow | list[RowError]:
    """Read one data row: the normalised person, or every problem with the row."""
    if len(cells) != len(ctx.columns):
        return [RowError(row_no, "", f"the row has {len(cells)} cells but the header names {len(ctx.columns)} columns")]
    errors: list[RowError] = []
    err = errors.append
    v = dict(zip(ctx.columns, [c.strip() or None for c in cells]))
    get = v.get
    for name in REQUIRED:
        if v[name] is None:
            err(RowError(row_no, name, _REQUIRED_REASON))
    for name, limit in MAX_LENGTHS.items():
        value = get(name)
        if value is not None and len(value) > limit:
            err(RowError(row_no, name, f"longer than {limit} characters"))

    birth_date = sex = None
    if (raw := v["birth_date"]) is not None:
        birth_date = _iso_date(raw)
        if birth_date is None:
            err(RowError(row_no, "birth_date", "not a date written YYYY-MM-DD"))
        elif birth_date > ctx.today:
            err(RowError(row_no, "birth_date", "birth date is in the future"))
            birth_date = None
    if (raw := v["sex"]) is not None:
        sex = SEXES.get(raw.lower())
        if sex is None:
            err(RowError(row_no, "sex", "write L or P (or M or F)"))
    nik = normalise_nik_cell(v["nik"] or "")
    if nik:
        for reason in nik_reasons(nik, birth_date, sex):
            err(RowError(row_no, "nik", reason))

    village = district = regency = None
    if (raw := v["village_code"]) is not None:
        found = _village(raw)
        if isinstance(found, str):
            err(RowError(row_no, "village_code", found))
        else:
            village, district, regency = found
            if not in_region(regency, ctx.region):
                err(RowError(row_no, "village_code", _REGION_REASON.format(ctx.region)))

    kk = normalise_nik_cell(v["kk_number"] or "")
    if kk:
        if not _DIGITS16.fullmatch(kk):
            err(RowError(row_no, "kk_number", "a KK number has 16 digits"))
        elif not _kk_region_known(kk[:6]):
            err(RowError(row_no, "kk_number", "a KK number starts with the code of the district that issued it"))
    relationship = None
    if (raw := v["relationship"]) is not None:
        relationship = _relationship(raw)
        if relationship is None:
            err(RowError(row_no, "relationship", "not a relationship to the head of family (e.g. KEPALA KELUARGA, ISTRI, ANAK, or head, wife, child)"))

    for name in ("rt", "rw"):
        if (raw := get(name)) is not None and not _RT_RW.fullmatch(raw):
            err(RowError(row_no, name, "1 to 3 digits"))
    phone = get("phone")
    if phone is not None and not _PHONE.fullmatch(phone):
        err(RowError(row_no, "phone", "not a phone number (8 to 20 digits, spaces or dashes, optional leading +)"))

    disability_type = get("disability_type")
    if disability_type is not None:
        disability_type = disability_type.lower()
        if disability_type not in DISABILITY_TYPES:
            err(RowError(row_no, "disability_type", f"one of {', '.join(DISABILITY_TYPES)}"))
    severity = get("disability_severity")
    if severity is not None:
        severity = severity.lower()
        if severity not in DISABILITY_SEVERITIES:
            err(RowError(row_no, "disability_severity", f"one of {', '.join(DISABILITY_SEVERITIES)}"))
        elif disability_type is None:
            err(RowError(row_no, "disability_type", "a disability severity needs its type"))

    ppks: list[str] = []
    if (raw := get("ppks")) is not None:
        ppks, unknown = _ppks(raw)
        for item in unknown:
            err(RowError(row_no, "ppks", f"unknown PPKS category {item[:60]!r}"))

    decile = decile_date = None
    if (raw := get("decile")) is not None:
        if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 10:
            decile = int(raw)
        else:
            err(RowError(row_no, "decile", "a DTSEN decile is a whole number from 1 to 10"))
    if (raw := get("decile_date")) is not None:
        decile_date = _iso_date(raw)
        if decile_date is None:
            err(RowError(row_no, "decile_date", "not a date written YYYY-MM-DD"))
    if (get("decile") is None) != (get("decile_date") is None):
        err(RowError(row_no, "decile_date", "a DTSEN decile needs its snapshot date (and the reverse)"))

    if errors:
        return errors
    return ParsedRow(
        row_no=row_no,
        nik=nik,
        name=v["name"],  # type: ignore[arg-type]
        birth_date=birth_date,  # type: ignore[arg-type]
        sex=sex,  # type: ignore[arg-type]
        kk_number=kk,
        relationship=relationship,  # type: ignore[arg-type]
        village_code=village,  # type: ignore[arg-type]
        district_code=district,  # type: ignore[arg-type]
        regency_code=regency,  # type: ignore[arg-type]
        birth_place=get("birth_place"),
        rt=get("rt"),
        rw=get("rw"),
        street=get("street"),
        phone=phone,
        disability_type=disability_type,
        disability_severity=severity,
        ppks=list(ppks),
        decile=decile,
        decile_date=decile_date,
        occupation=get("occupation"),
        employer=get("employer"),
    )


def read_piece(text: str, first_row: int) -> Iterator[tuple[int, list[str]]]:
    """The (row number, cells) of a piece's non-blank records."""
    for offset, cells in enumerate(csv.reader(io.StringIO(text, newline=""))):
        if not is_blank(cells):
            yield first_row + offset, cells


# -- what a row changes ------------------------------------------------------------------


def changed_fields(existing: dict[str, Any], row: ParsedRow, present: frozenset[str], phone_index: str | None) -> list[str]:
    """The person fields (of :data:`COMPARED`) a row changes, alphabetically.

    ``existing`` holds the stored values (``phone_index`` for the phone). Columns absent
    from the file leave their field alone; a present but empty cell clears it.
    ``phone_index`` is the blind index of the row's phone (None when empty).
    """
    out = []
    for name in COMPARED:
        if name not in present:
            continue
        if name == "phone":
            if existing["phone_index"] != phone_index:
                out.append(name)
        elif name == "ppks":
            if sorted(set(existing["ppks"] or ())) != row.ppks:
                out.append(name)
        elif existing[name] != getattr(row, name):
            out.append(name)
    return out


def membership_change(current: tuple[str, str] | None, row: ParsedRow) -> bool:
    """Whether the row moves the person into another KK or changes the relationship."""
    return current != (row.kk_number, row.relationship)


def error_rows(errors: Sequence[RowError]) -> int:
    return len({e.row_no for e in errors})


__all__ = [
    "COLUMNS",
    "COMPARED",
    "REQUIRED",
    "ROWS_PER_PIECE",
    "ParsedRow",
    "Piece",
    "RowContext",
    "RowError",
    "Upload",
    "UploadError",
    "changed_fields",
    "decode",
    "file_from_multipart",
    "in_region",
    "membership_change",
    "nik_reasons",
    "parse_row",
    "read_header",
    "read_piece",
    "split_upload",
]
