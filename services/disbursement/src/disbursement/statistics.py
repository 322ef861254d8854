"""Counts and sums for dashboards (``GET /v1/stats``, scope ``disbursement:read``).

A regency/city office sees the figures of its own region only (payments and relief grants
carry the payee's regency); budgets and rounds are the province's and are shown to
province-wide clients only. The gateway's ``/v1/stats/overview`` includes this answer.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from sqlalchemy import text

from pilar_kernel.auth import Principal, require_scopes
from pilar_kernel.db import SessionDep

from . import access

router = APIRouter(prefix="/v1", tags=["statistics"])
Reader = Annotated[Principal, require_scopes(access.READ)]


@router.get("/stats", summary="Payments by status, programme and regency; rounds and budgets (province-wide)")
async def stats(session: SessionDep, principal: Reader) -> dict:
    region = principal.region
    where = "WHERE regency_code = :region" if region else ""
    params = {"region": region} if region else {}

    async def rows(sql: str):
        return (await session.execute(text(sql), params)).all()

    by_status = {s: {"count": n, "amount": int(a)} for s, n, a in await rows(
        f"SELECT status, count(*), coalesce(sum(amount), 0) FROM payment {where} GROUP BY status")}
    by_programme = {
        f"{code}/{year}": {"payments": n, "paid_count": paid, "paid_amount": int(paid_amount)}
        for code, year, n, paid, paid_amount in await rows(
            f"""SELECT programme_code, year, count(*), count(*) FILTER (WHERE status = 'succeeded'),
                       coalesce(sum(amount) FILTER (WHERE status = 'succeeded'), 0)
                FROM payment {where} GROUP BY programme_code, year""")
    }
    by_regency = {
        code or "unknown": {"paid_count": paid, "paid_amount": int(amount)}
        for code, paid, amount in await rows(
            f"""SELECT regency_code, count(*) FILTER (WHERE status = 'succeeded'), coalesce(sum(amount) FILTER (WHERE status = 'succeeded'), 0)
                FROM payment {where} GROUP BY regency_code""")
    }
    relief = {s: {"count": n, "amount": int(a)} for s, n, a in await rows(
        f"SELECT status, count(*), coalesce(sum(amount), 0) FROM relief_grant {where} GROUP BY status")}
    answer: dict = {
        "region": region,
        "payments": {"by_status": by_status, "by_programme_year": by_programme, "by_regency": by_regency},
        "relief_grants": {"by_status": relief},
    }
    if region is None:
        answer["rounds"] = {"by_status": {s: n for s, n in await rows("SELECT status, count(*) FROM payment_round GROUP BY status")}}
        answer["budgets"] = [
            {"programme_code": code, "year": year, "amount": int(amount), "allocated": int(allocated), "remaining": int(amount - allocated)}
            for code, year, amount, allocated in await rows(
                "SELECT programme_code, year, amount, allocated FROM programme_budget ORDER BY programme_code, year")
        ]
    return answer
