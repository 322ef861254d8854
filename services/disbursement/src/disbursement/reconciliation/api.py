"""HTTP routes of reconciliation: bank statements (``/v1/statements``) and round totals."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from pilar_kernel.auth import Principal, require_scopes
from pilar_kernel.db import SessionDep
from pilar_kernel.idempotency import idempotent
from pilar_kernel.problems import Problem

from .. import access
from ..payments.files import decode
from . import service
from .schemas import LineOutcome, RoundTotals, StatementLineOut, StatementLinePage, StatementOut

router = APIRouter(prefix="/v1", tags=["reconciliation"])

Reader = Annotated[Principal, require_scopes(access.READ)]
Preparer = Annotated[Principal, access.provincial(access.PREPARE)]


@router.post("/statements", status_code=201, response_model=StatementOut,
             summary="Import a bank statement (CSV: value_date,bank_reference,instruction_id,debit,credit,description) and match it",
             openapi_extra={"requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}, "required": True}})
async def import_statement(request: Request, session: SessionDep, principal: Preparer,
                           account: str | None = Query(default=None, max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$",
                                                      description="the bank account the statement is of")):
    content, errors = decode(await request.body(), "statement", "statement")
    if errors:
        raise Problem(errors[0]["message"], status=422, type="validation-error", title="Invalid statement", errors=errors)

    async def produce():
        return StatementOut.model_validate(await service.import_statement(session, principal, content, account)).model_dump()

    return await idempotent(request, session, principal, produce)


@router.get("/statements/{statement_id}", response_model=StatementOut, summary="A statement's matching report")
async def get_statement(statement_id: uuid.UUID, session: SessionDep, principal: Preparer):
    return StatementOut.model_validate(await service.get_statement(session, statement_id))


@router.get("/statements/{statement_id}/lines", response_model=StatementLinePage,
            summary="A statement's lines and how each matched (filter outcome=unmatched, amount_mismatch...)")
async def statement_lines(statement_id: uuid.UUID, session: SessionDep, principal: Preparer, outcome: LineOutcome | None = None,
                          limit: int = Query(default=100, ge=1, le=1000), cursor: str | None = None):
    items, next_cursor = await service.list_lines(session, statement_id, outcome=outcome, limit=limit, cursor=cursor)
    return {"items": [StatementLineOut.model_validate(line) for line in items], "next_cursor": next_cursor}


@router.get("/rounds/{round_id}/totals", response_model=RoundTotals,
            summary="Planned, queued, sent, paid, failed, returned, cancelled and the remaining budget (a regency office: its region)")
async def round_totals(round_id: uuid.UUID, session: SessionDep, principal: Reader):
    return await service.round_totals(session, round_id, principal.region)
