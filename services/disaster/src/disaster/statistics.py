"""Figures of one incident: affected, displaced, casualties, evacuation, stock handed out and
volunteers. A regency office gets the figures of its own region only."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from .incidents.models import Incident

# ``:reg`` is null for province-wide callers; otherwise rows outside the region are left out.
_IN_REGION = "(CAST(:reg AS text) IS NULL OR {col} = :reg OR {col} LIKE :reg || '.%')"


async def _one(session: AsyncSession, sql: str, params: dict[str, Any]) -> dict[str, Any]:
    return dict((await session.execute(text(sql), params)).mappings().one())


async def _all(session: AsyncSession, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(r) for r in (await session.execute(text(sql), params)).mappings().all()]


async def of_incident(session: AsyncSession, incident: Incident, region: str | None) -> dict[str, Any]:
    p = {"i": incident.id, "reg": region}
    households = await _one(session, f"""
        SELECT count(*) AS households, coalesce(sum(member_count), 0) AS household_members,
               count(*) FILTER (WHERE displaced) AS displaced_households,
               count(*) FILTER (WHERE damage_level = 'light') AS light,
               count(*) FILTER (WHERE damage_level = 'moderate') AS moderate,
               count(*) FILTER (WHERE damage_level = 'heavy') AS heavy
        FROM affected_household WHERE incident_id = :i AND {_IN_REGION.format(col='regency_code')}""", p)
    persons = await _one(session, f"""
        SELECT count(*) AS persons, count(*) FILTER (WHERE displaced) AS displaced,
               count(*) FILTER (WHERE condition = 'dead') AS dead, count(*) FILTER (WHERE condition = 'missing') AS missing,
               count(*) FILTER (WHERE condition = 'injured') AS injured,
               count(*) FILTER (WHERE person_id IS NOT NULL) AS matched_to_registry,
               count(*) FILTER (WHERE 'elderly' = ANY(vulnerabilities)) AS elderly,
               count(*) FILTER (WHERE 'disabled' = ANY(vulnerabilities)) AS disabled,
               count(*) FILTER (WHERE 'child' = ANY(vulnerabilities)) AS children,
               count(*) FILTER (WHERE 'pregnant' = ANY(vulnerabilities)) AS pregnant
        FROM affected_person WHERE incident_id = :i AND {_IN_REGION.format(col='regency_code')}""", p)
    evacuation = await _one(session, f"""
        WITH points AS (SELECT * FROM evacuation_point WHERE incident_id = :i AND {_IN_REGION.format(col='regency_code')}),
             latest AS (SELECT DISTINCT ON (h.point_id) h.* FROM evacuation_headcount h JOIN points pt ON pt.id = h.point_id
                        ORDER BY h.point_id, h.reported_at DESC, h.id DESC),
             peak AS (SELECT max(total) AS peak FROM evacuation_headcount h JOIN points pt ON pt.id = h.point_id)
        SELECT (SELECT count(*) FROM points) AS points,
               (SELECT count(*) FROM points WHERE closed_on IS NULL) AS open_points,
               (SELECT coalesce(sum(capacity), 0) FROM points WHERE closed_on IS NULL) AS open_capacity,
               coalesce((SELECT sum(l.total) FROM latest l JOIN points pt ON pt.id = l.point_id WHERE pt.closed_on IS NULL), 0) AS headcount,
               coalesce((SELECT sum(elderly) FROM latest), 0) AS elderly,
               coalesce((SELECT sum(disabled) FROM latest), 0) AS disabled,
               coalesce((SELECT sum(children) FROM latest), 0) AS children,
               coalesce((SELECT sum(pregnant) FROM latest), 0) AS pregnant,
               coalesce((SELECT peak FROM peak), 0) AS peak_at_one_point,
               coalesce((SELECT sum(k.portions) FROM kitchen_day k JOIN points pt ON pt.id = k.point_id), 0) AS kitchen_portions""", p)
    stock = await _all(session, f"""
        SELECT l.item_code, CAST(sum(l.quantity) AS bigint) AS quantity, count(DISTINCT d.id) AS distributions
        FROM distribution d JOIN distribution_line l ON l.distribution_id = d.id
        WHERE d.incident_id = :i AND {_IN_REGION.format(col='d.regency_code')}
        GROUP BY l.item_code ORDER BY l.item_code""", p)
    shipped = await _all(session, """
        SELECT s.item_code, CAST(sum(s.quantity) AS bigint) AS quantity FROM shipment_line s JOIN stock_request r ON r.id = s.request_id
        WHERE r.incident_id = :i GROUP BY s.item_code ORDER BY s.item_code""", p)
    volunteers = await _one(session, f"""
        SELECT count(DISTINCT d.volunteer_id) AS volunteers, count(*) AS deployments, coalesce(sum(d.hours), 0) AS hours,
               count(*) FILTER (WHERE d.ended_on IS NULL) AS on_duty
        FROM deployment d JOIN volunteer v ON v.id = d.volunteer_id
        WHERE d.incident_id = :i AND {_IN_REGION.format(col='v.regency_code')}""", p)
    return {
        "incident_id": incident.id,
        "status": incident.status,
        "region": region,
        "households": households,
        "persons": persons,
        "casualties": {k: persons[k] for k in ("dead", "missing", "injured")},
        "displaced": persons["displaced"],
        "evacuation": evacuation,
        "stock_distributed": stock,
        "stock_shipped": shipped if region is None else None,
        "volunteers": volunteers,
    }


async def overview(session: AsyncSession, region: str | None) -> dict[str, Any]:
    """Figures across incidents (``GET /v1/stats``): incidents by status and hazard, and the
    households and persons recorded as affected. A regency office counts the incidents that
    touch its region and only its own households and persons."""
    p = {"reg": region}
    touching = "(CAST(:reg AS text) IS NULL OR CAST(:reg AS text) = ANY(regency_codes))"
    incidents = await _all(session, f"SELECT status, hazard, count(*) AS n FROM incident WHERE {touching} GROUP BY status, hazard", p)
    by_status: dict[str, int] = {}
    by_hazard: dict[str, int] = {}
    for row in incidents:
        by_status[row["status"]] = by_status.get(row["status"], 0) + row["n"]
        by_hazard[row["hazard"]] = by_hazard.get(row["hazard"], 0) + row["n"]
    households = await _one(session, f"""
        SELECT count(*) AS households, coalesce(sum(member_count), 0) AS household_members,
               count(*) FILTER (WHERE displaced) AS displaced_households
        FROM affected_household WHERE {_IN_REGION.format(col='regency_code')}""", p)
    persons = await _one(session, f"""
        SELECT count(*) AS persons, count(*) FILTER (WHERE person_id IS NOT NULL) AS matched_to_registry,
               count(*) FILTER (WHERE condition = 'dead') AS dead, count(*) FILTER (WHERE condition = 'missing') AS missing
        FROM affected_person WHERE {_IN_REGION.format(col='regency_code')}""", p)
    return {"region": region, "incidents": {"total": sum(by_status.values()), "by_status": by_status, "by_hazard": by_hazard},
            "households": households, "persons": persons}
