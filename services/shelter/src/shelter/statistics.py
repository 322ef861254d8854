"""De-identified statistics for analysts (``/v1/statistics/...``, scope ``shelter:analyst``).

Only counts and averages leave this module, never a case id or a survivor fact, and every
count of cases or survivors below the threshold (5) is shown as ``"<5"``; an average over
fewer cases than that is withheld. A token with a ``region`` claim sees its region only.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from sqlalchemy import text

from pilar_kernel.auth import Principal, require_scopes
from pilar_kernel.db import SessionDep

from . import access, domain

router = APIRouter(prefix="/v1/statistics", tags=["statistics"])

Analyst = Annotated[Principal, require_scopes(access.ANALYST)]
LOCAL_MONTH = "to_char({col} AT TIME ZONE 'Asia/Jakarta', 'YYYY-MM')"
CaseDimension = Literal["violence_type", "regency", "month"]


def _threshold(request: Request) -> int:
    return request.app.state.settings.small_count_threshold


def _region_filter(principal: Principal, column: str, params: dict) -> str:
    if principal.region is None:
        return ""
    params["region"], params["region_prefix"] = principal.region, principal.region + ".%"
    return f" AND ({column} = :region OR {column} LIKE :region_prefix)"


def _period(column: str, since: date | None, until: date | None, params: dict) -> str:
    sql = ""
    if since:
        params["since"] = since
        sql += f" AND ({column} AT TIME ZONE 'Asia/Jakarta')::date >= :since"
    if until:
        params["until"] = until
        sql += f" AND ({column} AT TIME ZONE 'Asia/Jakarta')::date <= :until"
    return sql


@router.get("/occupancy", summary="Beds and occupied beds per shelter")
async def occupancy(request: Request, session: SessionDep, principal: Analyst):
    params: dict = {}
    sql = "SELECT id, name, kind, regency_code, capacity, occupied FROM shelter WHERE active" + _region_filter(principal, "regency_code", params)
    rows = (await session.execute(text(sql + " ORDER BY name"), params)).all()
    limit = _threshold(request)
    return {"items": [{"shelter_id": r.id, "name": r.name, "kind": r.kind, "regency_code": r.regency_code, "capacity": r.capacity,
                       "occupied": domain.suppress(r.occupied, limit)} for r in rows]}


_CASE_DIMENSIONS = {
    "violence_type": ("vt", "violence_type"),
    "regency": ("c.regency_code", "regency_code"),
    "month": (LOCAL_MONTH.format(col="c.opened_at"), "month"),
}


@router.get("/cases", summary="Cases by violence type, home regency and month opened")
async def cases_by(
    request: Request,
    session: SessionDep,
    principal: Analyst,
    by: list[CaseDimension] = Query(default=["violence_type", "regency", "month"], description="dimensions to group by"),
    since: date | None = Query(default=None, alias="from", ge=date(2000, 1, 1), le=date(2099, 12, 31), description="cases opened on or after this day"),
    until: date | None = Query(default=None, alias="to", ge=date(2000, 1, 1), le=date(2099, 12, 31), description="cases opened on or before this day"),
):
    dims = [d for d in _CASE_DIMENSIONS if d in by]
    params: dict = {}
    source = "shelter_case c"
    if "violence_type" in dims:  # a case counts once under each type among its incidents
        source += " JOIN incident i ON i.case_id = c.id CROSS JOIN LATERAL unnest(i.violence_types) AS vt"
    select_list = ", ".join(f"{_CASE_DIMENSIONS[d][0]} AS {_CASE_DIMENSIONS[d][1]}" for d in dims)
    group = ", ".join(str(n) for n in range(1, len(dims) + 1))
    sql = (
        f"SELECT {select_list + ', ' if dims else ''}count(DISTINCT c.id) AS cases FROM {source} WHERE true"
        + _region_filter(principal, "c.regency_code", params)
        + _period("c.opened_at", since, until, params)
        + (f" GROUP BY {group} ORDER BY {group}" if dims else "")
    )
    rows = (await session.execute(text(sql), params)).mappings().all()
    limit = _threshold(request)
    return {"dimensions": [_CASE_DIMENSIONS[d][1] for d in dims],
            "items": [{**{k: v for k, v in r.items() if k != "cases"}, "cases": domain.suppress(r["cases"], limit)} for r in rows]}


@router.get("/closure-time", summary="Average days from intake to closure, overall and per home regency")
async def closure_time(
    request: Request,
    session: SessionDep,
    principal: Analyst,
    since: date | None = Query(default=None, alias="from", ge=date(2000, 1, 1), le=date(2099, 12, 31), description="cases closed on or after this day"),
    until: date | None = Query(default=None, alias="to", ge=date(2000, 1, 1), le=date(2099, 12, 31), description="cases closed on or before this day"),
):
    params: dict = {}
    where = ("WHERE status = 'closed'" + _region_filter(principal, "regency_code", params) + _period("closed_at", since, until, params))
    days = "extract(epoch FROM closed_at - opened_at) / 86400.0"
    sql = f"SELECT regency_code, count(*) AS n, avg({days}) AS days FROM shelter_case {where} GROUP BY ROLLUP (regency_code) ORDER BY regency_code NULLS FIRST"
    rows = (await session.execute(text(sql), params)).all()
    limit = _threshold(request)

    def cell(n: int, avg) -> dict:
        return {"closed_cases": domain.suppress(n, limit), "average_days": round(float(avg), 1) if n >= limit else None}

    overall = next((cell(r.n, r.days) for r in rows if r.regency_code is None), cell(0, None))
    return {**overall, "by_regency": [{"regency_code": r.regency_code, **cell(r.n, r.days)} for r in rows if r.regency_code is not None]}


@router.get("/referrals", summary="Referrals to partners by outcome (and partner kind)")
async def referrals_by_outcome(
    request: Request,
    session: SessionDep,
    principal: Analyst,
    by_partner: bool = Query(default=False, description="also group by partner kind"),
    since: date | None = Query(default=None, alias="from", ge=date(2000, 1, 1), le=date(2099, 12, 31), description="referrals made on or after this day"),
    until: date | None = Query(default=None, alias="to", ge=date(2000, 1, 1), le=date(2099, 12, 31), description="referrals made on or before this day"),
):
    params: dict = {}
    outcome = "CASE WHEN r.status = 'done' THEN CASE WHEN r.successful THEN 'done_successful' ELSE 'done_unsuccessful' END ELSE r.status END"
    extra = ", r.partner_kind" if by_partner else ""
    sql = (
        f"SELECT {outcome} AS outcome{extra}, count(*) AS referrals FROM referral r JOIN shelter_case c ON c.id = r.case_id WHERE true"
        + _region_filter(principal, "c.regency_code", params)
        + _period("r.created_at", since, until, params)
        + f" GROUP BY 1{', 2' if by_partner else ''} ORDER BY 1{', 2' if by_partner else ''}"
    )
    rows = (await session.execute(text(sql), params)).mappings().all()
    limit = _threshold(request)
    return {"items": [{**{k: v for k, v in r.items() if k != "referrals"}, "referrals": domain.suppress(r["referrals"], limit)} for r in rows]}
