"""HTTP routes of the bulk import (``/v1/imports``). The section below is also the upload's
description in the OpenAPI document (Markdown).

imports
=======

`POST /v1/imports` takes a CSV file of persons, either as the raw body
(`Content-Type: text/csv`; the file name may be given as `?filename=`) or as
`multipart/form-data` with the file in the field `file`. The file is checked as a whole
(UTF-8, well-formed CSV, a header naming known columns), stored, and answered with
`202 Accepted` and the job; a background worker then imports it in pieces of 5,000 rows,
one transaction each. `Idempotency-Key` is honoured: the same key and the same bytes
return the first job again.

**File format**: UTF-8 (a byte-order mark is fine), comma-separated, double quotes around
cells that contain commas, quotes or line breaks. The first row names the columns (any
order; case and surrounding spaces ignored); then one row per person. Blank lines are skipped.

| column | required | format |
|---|---|---|
| `nik` | yes | 16 digits (spaces allowed); must agree with birth date and sex |
| `name` | yes | up to 200 characters |
| `birth_place` | | up to 100 characters |
| `birth_date` | yes | `YYYY-MM-DD`, not in the future |
| `sex` | yes | `L` / `P` as on the KK (also `M` / `F`, `LAKI-LAKI`, `PEREMPUAN`) |
| `kk_number` | yes | 16 digits, starting with the issuing district's code |
| `relationship` | yes | to the head of family: `KEPALA KELUARGA`, `SUAMI`, `ISTRI`, `ANAK`, `MENANTU`, `CUCU`, `ORANG TUA`, `MERTUA`, `FAMILI LAIN`, `PEMBANTU`, `LAINNYA`, or the registry's slugs (`head`, `wife`, `child`...) |
| `village_code` | yes | a current Jawa Timur village: `35.15.14.2001` or `3515142001` |
| `rt`, `rw` | | 1 to 3 digits |
| `street` | | up to 200 characters |
| `phone` | | 8 to 20 digits, spaces or dashes, optional leading `+` |
| `disability_type` | | `physical`, `intellectual`, `mental`, `sensory_sight`, `sensory_hearing`, `sensory_speech`, `multiple` |
| `disability_severity` | | `mild`, `moderate`, `severe`, `bedridden` (needs a type) |
| `ppks` | | PPKS categories separated by `;`: the slugs of `GET /v1/reference/ppks` or their official names |
| `decile` | | DTSEN decile 1-10 (with `decile_date`) |
| `decile_date` | | `YYYY-MM-DD`, the decile's snapshot date (with `decile`) |
| `occupation` | | up to 100 characters |
| `employer` | | up to 200 characters |

`decile` and `decile_date` come as a pair of columns, and `disability_severity` needs the
`disability_type` column. Unknown, repeated or missing required columns refuse the whole
file (422), as do a file that is not UTF-8 or not CSV, and one without rows.

**Upsert on the NIK**: a new NIK registers a person; a known one is updated where the row
differs from the record; a row equal to the record changes nothing and emits no event, so
importing the same file twice is harmless. A column left out of the file leaves that field
of existing persons alone; an empty cell clears it. The row's KK and relationship set the
person's current household membership. A NIK may appear only once per file (later rows
with it are refused). Events are those of the persons API: `PersonRegistered`,
`PersonUpdated` (and `PersonMoved` when the regency changes), `HouseholdChanged`.

**Region**: a regency office's token (region claim `35.xx`) imports only persons living in
its region (other rows are refused) and cannot change persons registered in another region.
Deceased and merged records are not changed.

**Errors**: each broken row is refused alone, with one line per problem in the report
`GET /v1/imports/{id}/errors.csv` (`row,column,reason`; rows are numbered as a spreadsheet
shows them, the header being row 1; the column is empty when the whole row is at fault;
reasons never repeat a NIK, phone number or name). The good rows are imported.

**Progress**: `GET /v1/imports/{id}` gives the status (`queued`, `running`, `done`,
`failed`), the counts (`total`, `processed`, `inserted`, `updated`, `unchanged`, `failed`)
and `progress` (0 to 1). A job is visible to the client that uploaded it and to
province-wide clients; to anyone else it does not exist (404).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request
from fastapi.responses import StreamingResponse

from pilar_kernel.auth import Principal, require_scopes
from pilar_kernel.db import SessionDep
from pilar_kernel.idempotency import idempotent
from pilar_kernel.pagination import decode_cursor, page
from pilar_kernel.problems import Problem
from pilar_kernel.tracecontext import current_traceparent

from .. import access
from ..fields import problem_responses
from . import domain, service
from .schemas import ImportJobOut, ImportJobPage

router = APIRouter(prefix="/v1", tags=["imports"])

Writer = Annotated[Principal, require_scopes(access.WRITE)]
CSV_TYPES = ("text/csv", "application/csv", "text/plain", "application/vnd.ms-excel")

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}, "required": ["file"]}
            },
        },
    }
}


@router.post(
    "/imports",
    status_code=202,
    response_model=ImportJobOut,
    summary="Upload a CSV of persons; it is imported in the background",
    description=__doc__.split("imports\n=======\n", 1)[1],
    openapi_extra=_UPLOAD_BODY,
    responses=problem_responses(413, 415),
)
async def create_import(
    request: Request,
    session: SessionDep,
    principal: Writer,
    background: BackgroundTasks,
    filename: str | None = Query(default=None, max_length=200, description="name of the file (raw text/csv bodies)"),
):
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > service.MAX_UPLOAD_BYTES + 64 * 1024:
        raise service.too_large()
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "multipart/form-data" and media_type not in CSV_TYPES:
        raise Problem("send the file as text/csv or multipart/form-data", status=415, type="unsupported-media-type",
                      title="Unsupported media type")  # fmt: skip

    async def produce():
        body = await request.body()
        data, name = body, filename
        if media_type == "multipart/form-data":
            try:
                data, name = domain.file_from_multipart(body, content_type)
            except domain.UploadError as exc:
                raise service.invalid_upload(exc) from None
        job = await service.submit(session, principal, data, filename=name, traceparent=current_traceparent.get())
        return service.to_out(job)

    worker = getattr(request.app.state, "import_worker", None)
    if worker is not None:
        background.add_task(worker.wake)  # after the commit: start at once rather than at the next poll
    return await idempotent(request, session, principal, produce, status_code=202)


@router.get("/imports", response_model=ImportJobPage, summary="Your imports, newest first (every import for province-wide clients)")
async def list_imports(session: SessionDep, principal: Writer, limit: int = Query(default=20, ge=1, le=200),
                       cursor: str | None = Query(default=None, max_length=500)):
    jobs = await service.list_jobs(session, principal, limit=limit, after=decode_cursor(cursor))
    jobs, next_cursor = page(jobs, limit, lambda j: [j.created_at.isoformat(), str(j.id)])
    return {"items": [service.to_out(j) for j in jobs], "next_cursor": next_cursor}


@router.get("/imports/{import_id}", response_model=ImportJobOut, summary="Status, counts and progress of an import")
async def get_import(import_id: uuid.UUID, session: SessionDep, principal: Writer):
    return service.to_out(await service.get_job(session, principal, import_id))


@router.get(
    "/imports/{import_id}/errors.csv",
    summary="The import's error report: row, column, reason (so far, while it runs)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def import_errors(import_id: uuid.UUID, request: Request, session: SessionDep, principal: Writer):
    job = await service.get_job(session, principal, import_id)
    return StreamingResponse(
        service.error_report(request.app.state.session_factory, job.id),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="import-{job.id}-errors.csv"'},
    )
