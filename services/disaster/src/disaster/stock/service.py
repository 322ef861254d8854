"""Use cases of the buffer stock. Each runs inside the caller's transaction.

Stock never goes negative, even when shipments race: a command that takes stock locks the
lots of the items it needs (``FOR UPDATE``, in one fixed order: item, expiry, id) before
reading their quantities, so a second shipment waits for the first, then sees what is left
and is refused if that is not enough. ``stock_lot.quantity >= 0`` is the database's last
line of defence. Lock order everywhere: request → lots.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import or_, text, true
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from pilar_kernel import regions
from pilar_kernel.auth import Principal
from pilar_kernel.problems import Conflict, Forbidden, NotFound

from .. import access
from ..events import DistributionRecorded, ItemQuantity, StockBelowMinimum, StockShipped, emit
from ..evacuation.models import EvacuationPoint
from ..incidents import service as incidents
from ..people.models import AffectedHousehold, AffectedPerson, RegistryPerson
from ..places import check_code, invalid
from . import domain
from .models import (
    AssistiveDevice,
    Distribution,
    DistributionLine,
    Item,
    Receipt,
    RequestLine,
    ShipmentLine,
    StockAlert,
    StockLot,
    StockMinimum,
    StockMovement,
    StockRequest,
    Warehouse,
)


def _now() -> datetime:
    return datetime.now(UTC)


# -- catalogue and warehouses ---------------------------------------------------------------


async def items(session: AsyncSession) -> dict[str, Item]:
    return {i.code: i for i in (await session.exec(select(Item).order_by(Item.code))).all()}


async def add_item(session: AsyncSession, principal: Principal, data: dict[str, Any]) -> Item:
    access.ensure_provincial(principal, "the item catalogue")
    if (await session.exec(select(Item.code).where(Item.code == data["code"]))).first():
        raise Conflict("an item with this code exists", errors=[{"field": "code", "message": "already in the catalogue", "rule": "item.unique"}])
    item = Item(**data)
    session.add(item)
    await session.flush()
    return item


def can_read(principal: Principal, warehouse: Warehouse) -> bool:
    """A regency office reads its own warehouses and the province's; a neighbour's do not exist for it."""
    return warehouse.level == "province" or principal.may_access_region(warehouse.regency_code)


def _readable(principal: Principal):
    """SQL filter of the warehouses ``principal`` may read (see :func:`can_read`)."""
    if principal.region is None:
        return true()
    return or_(Warehouse.level == "province", access.in_region(Warehouse.regency_code, principal.region))


def can_keep(principal: Principal, warehouse: Warehouse) -> bool:
    """Province warehouses are kept by the province; the others by their regency (and the province)."""
    if warehouse.level == "province":
        return principal.region is None
    return principal.may_access_region(warehouse.regency_code)


def _ensure_keeper(principal: Principal, warehouse: Warehouse, what: str) -> None:
    if not can_keep(principal, warehouse):
        raise Forbidden(f"only the keeper of warehouse {warehouse.code} may {what}")


async def create_warehouse(session: AsyncSession, principal: Principal, data: dict[str, Any]) -> Warehouse:
    errors = []
    if data["level"] != "province" and not data.get("regency_code"):
        errors.append({"field": "regency_code", "message": f"a {data['level']} warehouse needs its regency", "rule": "warehouse.regency"})
    errors += check_code(data.get("regency_code"), "regency", "regency_code")
    if data["level"] == "field" and data.get("incident_id") is None:
        errors.append({"field": "incident_id", "message": "a field warehouse serves one incident", "rule": "warehouse.incident"})
    if errors:
        raise invalid(errors)
    regency = regions.normalise(data["regency_code"]) if data.get("regency_code") else None
    warehouse = Warehouse(code=data["code"], name=data["name"], level=data["level"], regency_code=regency, incident_id=data.get("incident_id"))
    if data["level"] == "province":
        access.ensure_provincial(principal, "a province warehouse")
    else:
        access.ensure_own_region(principal, regency, "warehouses")
    if warehouse.incident_id is not None:
        await incidents.get_incident(session, principal, warehouse.incident_id)
    if (await session.exec(select(Warehouse.id).where(Warehouse.code == data["code"]))).first():
        raise Conflict("a warehouse with this code exists", errors=[{"field": "code", "message": "already used", "rule": "warehouse.unique"}])
    session.add(warehouse)
    await session.flush()
    return warehouse


async def _load_warehouse(session: AsyncSession, warehouse_id: uuid.UUID) -> Warehouse | None:
    return (await session.exec(select(Warehouse).where(Warehouse.id == warehouse_id))).first()


async def get_warehouse(session: AsyncSession, principal: Principal, warehouse_id: uuid.UUID) -> Warehouse:
    """The warehouse, if ``principal`` may read it (404 otherwise, also for a neighbour's)."""
    warehouse = await _load_warehouse(session, warehouse_id)
    if warehouse is None or not can_read(principal, warehouse):
        raise NotFound("no such warehouse")
    return warehouse


async def list_warehouses(session: AsyncSession, principal: Principal, *, level: str | None, regency_code: str | None) -> list[Warehouse]:
    stmt = select(Warehouse).where(_readable(principal))
    if level:
        stmt = stmt.where(Warehouse.level == level)
    if regency_code:
        stmt = stmt.where(Warehouse.regency_code == regency_code)
    return list((await session.exec(stmt.order_by(Warehouse.code))).all())


async def set_minimum(session: AsyncSession, principal: Principal, warehouse_id: uuid.UUID, item_code: str, minimum: int) -> int:
    warehouse = await get_warehouse(session, principal, warehouse_id)
    _ensure_keeper(principal, warehouse, "set its minimum levels")
    if item_code not in await items(session):
        raise NotFound("no such item in the catalogue")
    await session.execute(text(
        "INSERT INTO stock_minimum (warehouse_id, item_code, minimum) VALUES (:w, :i, :m) "
        "ON CONFLICT (warehouse_id, item_code) DO UPDATE SET minimum = excluded.minimum"), {"w": warehouse.id, "i": item_code, "m": minimum})
    await _check_levels(session, warehouse, [item_code])
    return minimum


async def stock_of(session: AsyncSession, warehouse_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = (await session.execute(text(
        """
        SELECT i.code AS item_code,
               coalesce(sum(l.quantity) FILTER (WHERE l.expires_on IS NULL OR l.expires_on >= current_date), 0) AS on_hand,
               coalesce(sum(l.quantity) FILTER (WHERE l.expires_on < current_date), 0) AS expired,
               min(l.expires_on) FILTER (WHERE l.quantity > 0 AND l.expires_on >= current_date) AS next_expiry,
               m.minimum
        FROM item i
        LEFT JOIN stock_lot l ON l.item_code = i.code AND l.warehouse_id = :w
        LEFT JOIN stock_minimum m ON m.item_code = i.code AND m.warehouse_id = :w
        GROUP BY i.code, m.minimum
        HAVING coalesce(sum(l.quantity), 0) > 0 OR m.minimum IS NOT NULL
        ORDER BY i.code
        """), {"w": warehouse_id})).mappings().all()
    return [{**r, "below_minimum": r["minimum"] is not None and r["on_hand"] < r["minimum"]} for r in rows]


async def lots_of(session: AsyncSession, warehouse_id: uuid.UUID) -> list[StockLot]:
    stmt = select(StockLot).where(StockLot.warehouse_id == warehouse_id, StockLot.quantity > 0)
    return list((await session.exec(stmt.order_by(StockLot.item_code, StockLot.expires_on, StockLot.id))).all())


# -- levels and alerts ----------------------------------------------------------------------


async def _usable(session: AsyncSession, warehouse_id: uuid.UUID, item_code: str) -> int:
    return (await session.execute(text(
        "SELECT CAST(coalesce(sum(quantity), 0) AS bigint) FROM stock_lot WHERE warehouse_id = :w AND item_code = :i "
        "AND (expires_on IS NULL OR expires_on >= current_date)"), {"w": warehouse_id, "i": item_code})).scalar_one()


async def _check_levels(session: AsyncSession, warehouse: Warehouse, item_codes) -> None:
    """Raise an alert (once) for items now below their minimum; resolve the alerts of items back above it."""
    for code in sorted(set(item_codes)):
        minimum = (await session.exec(select(StockMinimum.minimum).where(StockMinimum.warehouse_id == warehouse.id,
                                                                        StockMinimum.item_code == code))).first()
        if minimum is None:
            continue
        on_hand = await _usable(session, warehouse.id, code)
        if on_hand < minimum:
            raised = (await session.execute(text(
                "INSERT INTO stock_alert (warehouse_id, item_code, on_hand, minimum) VALUES (:w, :i, :q, :m) "
                "ON CONFLICT (warehouse_id, item_code) WHERE resolved_at IS NULL DO NOTHING RETURNING raised_at"),
                {"w": warehouse.id, "i": code, "q": on_hand, "m": minimum})).first()
            if raised is not None:
                await emit(session, StockBelowMinimum(warehouse_id=warehouse.id, regency_code=warehouse.regency_code, item_code=code,
                                                      on_hand=on_hand, minimum=minimum, raised_at=raised.raised_at))
        else:
            await session.execute(text(
                "UPDATE stock_alert SET resolved_at = now() WHERE warehouse_id = :w AND item_code = :i AND resolved_at IS NULL"),
                {"w": warehouse.id, "i": code})


async def alerts(session: AsyncSession, principal: Principal, *, open_only: bool) -> list[StockAlert]:
    """Alerts of the warehouses ``principal`` may read: its own and the province's."""
    stmt = select(StockAlert).join(Warehouse, Warehouse.id == StockAlert.warehouse_id).where(_readable(principal))
    if open_only:
        stmt = stmt.where(StockAlert.resolved_at.is_(None))
    return list((await session.exec(stmt.order_by(StockAlert.raised_at.desc(), StockAlert.id.desc()))).all())


# -- receipts -------------------------------------------------------------------------------


def _check_lines(lines: list[dict[str, Any]], catalogue: dict[str, Item], field: str = "lines") -> list[dict[str, str]]:
    errors = []
    seen = set()
    for i, line in enumerate(lines):
        if line["item_code"] not in catalogue:
            errors.append({"field": f"{field}.{i}.item_code", "message": "not in the catalogue", "rule": "item.unknown"})
        if line["item_code"] in seen:
            errors.append({"field": f"{field}.{i}.item_code", "message": "listed twice", "rule": "item.duplicate"})
        seen.add(line["item_code"])
    return errors


async def receive(session: AsyncSession, principal: Principal, warehouse_id: uuid.UUID, data: dict[str, Any]) -> tuple[Receipt, list[StockLot]]:
    warehouse = await get_warehouse(session, principal, warehouse_id)
    _ensure_keeper(principal, warehouse, "receive goods")
    catalogue = await items(session)
    errors = []
    for i, line in enumerate(data["lines"]):
        item = catalogue.get(line["item_code"])
        if item is None:
            errors.append({"field": f"lines.{i}.item_code", "message": "not in the catalogue", "rule": "item.unknown"})
        elif item.perishable and line.get("expires_on") is None:
            errors.append({"field": f"lines.{i}.expires_on", "message": f"{item.name} keeps only until an expiry date: give it", "rule": "lot.expiry"})
        elif line.get("expires_on") is not None and line["expires_on"] < data["received_on"]:
            errors.append({"field": f"lines.{i}.expires_on", "message": "already expired when received", "rule": "lot.expired"})
    if data["received_on"] > date.today():
        errors.append({"field": "received_on", "message": "in the future", "rule": "receipt.date"})
    if errors:
        raise invalid(errors)
    receipt = Receipt(warehouse_id=warehouse.id, received_on=data["received_on"], source=data["source"], reference=data.get("reference"),
                      received_by=access.acting_user(principal))
    session.add(receipt)
    await session.flush()
    lots = []
    for line in data["lines"]:
        lot = StockLot(warehouse_id=warehouse.id, item_code=line["item_code"], expires_on=line.get("expires_on"), quantity=line["quantity"],
                       received_quantity=line["quantity"], receipt_id=receipt.id)
        session.add(lot)
        lots.append(lot)
    await session.flush()
    for lot in lots:
        session.add(StockMovement(lot_id=lot.id, warehouse_id=warehouse.id, item_code=lot.item_code, delta=lot.quantity, kind="receipt",
                                  receipt_id=receipt.id))
    await session.flush()
    await _check_levels(session, warehouse, [line["item_code"] for line in data["lines"]])
    return receipt, lots


# -- taking stock ---------------------------------------------------------------------------


async def _take(session: AsyncSession, warehouse: Warehouse, wanted: dict[str, int], *, kind: str, field: str,
                request_id: uuid.UUID | None = None, distribution_id: uuid.UUID | None = None) -> list[tuple[StockLot, int]]:
    """Lock the warehouse's lots of the wanted items, plan FEFO, decrement. Refuses a shortage with 409."""
    codes = sorted(wanted)
    locked = (await session.exec(
        select(StockLot).where(StockLot.warehouse_id == warehouse.id, StockLot.item_code.in_(codes), StockLot.quantity > 0)
        .order_by(StockLot.item_code, StockLot.expires_on, StockLot.id).with_for_update()
        .execution_options(populate_existing=True)
    )).all()
    by_item: dict[str, list[StockLot]] = defaultdict(list)
    for lot in locked:
        by_item[lot.item_code].append(lot)
    today = date.today()
    shortages = []
    plans: dict[str, list[tuple[uuid.UUID, int]]] = {}
    for code in codes:
        try:
            plans[code] = domain.fefo(code, [domain.Lot(l.id, l.expires_on, l.quantity) for l in by_item[code]], wanted[code], today)
        except domain.Shortage as exc:
            shortages.append({"field": field, "message": str(exc), "rule": "stock.insufficient", "item_code": code,
                              "wanted": exc.wanted, "available": exc.available})
    if shortages:
        raise Conflict(f"not enough stock in {warehouse.code}", errors=shortages)
    lots = {lot.id: lot for lot in locked}
    taken = []
    try:
        for code in codes:
            for lot_id, qty in plans[code]:
                lot = lots[lot_id]
                lot.quantity -= qty
                session.add(lot)
                session.add(StockMovement(lot_id=lot.id, warehouse_id=warehouse.id, item_code=code, delta=-qty, kind=kind,
                                          request_id=request_id, distribution_id=distribution_id))
                taken.append((lot, qty))
        await session.flush()
    except IntegrityError as exc:  # the CHECK constraint: never reached while the locks hold
        raise Conflict(f"not enough stock in {warehouse.code}") from exc
    await _check_levels(session, warehouse, codes)
    return taken


# -- requests -------------------------------------------------------------------------------


async def create_request(session: AsyncSession, principal: Principal, incident_id: uuid.UUID, data: dict[str, Any]) -> StockRequest:
    incident = await incidents.get_incident(session, principal, incident_id)
    incidents.writable(principal, incident)
    if incident.status == "closed":
        raise Conflict("the incident is closed")
    source = await get_warehouse(session, principal, data["from_warehouse_id"])
    target = await get_warehouse(session, principal, data["to_warehouse_id"])
    errors = _check_lines(data["lines"], await items(session))
    if source.id == target.id:
        errors.append({"field": "to_warehouse_id", "message": "the same as the source", "rule": "request.warehouses"})
    if errors:
        raise invalid(errors)
    _ensure_keeper(principal, target, "request goods for it")
    request = StockRequest(incident_id=incident.id, from_warehouse_id=source.id, to_warehouse_id=target.id, note=data.get("note"),
                           requested_by=access.acting_user(principal))
    session.add(request)
    await session.flush()
    for line in data["lines"]:
        session.add(RequestLine(request_id=request.id, item_code=line["item_code"], quantity=line["quantity"]))
    await session.flush()
    return request


async def _request_end(session: AsyncSession, warehouse_id: uuid.UUID) -> Warehouse:
    """One end of a request the caller may see (the foreign key guarantees it exists)."""
    warehouse = await _load_warehouse(session, warehouse_id)
    if warehouse is None:  # never: a foreign key holds it
        raise NotFound("no such warehouse")
    return warehouse


def _visible_requests(principal: Principal):
    """SQL filter: a regency office sees the requests of which it keeps one end (see :func:`can_keep`)."""
    if principal.region is None:
        return true()
    kept = select(Warehouse.id).where(Warehouse.level != "province", access.in_region(Warehouse.regency_code, principal.region))
    return or_(StockRequest.from_warehouse_id.in_(kept), StockRequest.to_warehouse_id.in_(kept))


async def get_request(session: AsyncSession, principal: Principal, request_id: uuid.UUID, *, for_update: bool = False) -> StockRequest:
    """The request, if ``principal`` keeps one of its two warehouses (404 otherwise): a regency
    office does not see what its neighbour asked for, even in an incident they share."""
    stmt = select(StockRequest).where(StockRequest.id == request_id, _visible_requests(principal))
    if for_update:
        stmt = stmt.with_for_update(of=StockRequest)
    request = (await session.exec(stmt)).first()
    if request is None:
        raise NotFound("no such request")
    await incidents.get_incident(session, principal, request.incident_id)
    return request


async def request_lines(session: AsyncSession, request_id: uuid.UUID) -> list[RequestLine]:
    return list((await session.exec(select(RequestLine).where(RequestLine.request_id == request_id).order_by(RequestLine.item_code))).all())


async def shipment_lines(session: AsyncSession, request_id: uuid.UUID) -> list[ShipmentLine]:
    return list((await session.exec(select(ShipmentLine).where(ShipmentLine.request_id == request_id).order_by(ShipmentLine.id))).all())


async def _advance(session: AsyncSession, principal: Principal, request_id: uuid.UUID, action: str, version: int) -> StockRequest | None:
    """Lock the request and check the action may run; None when it is already where the action
    leads (a repeat). The caller sets the new status together with the fields it needs."""
    request = await get_request(session, principal, request_id, for_update=True)
    target = domain.TRANSITIONS[action][1]
    if request.status == target:
        return None
    if request.version != version:
        raise Conflict(f"the request changed since you read it (version {request.version})", current_version=request.version)
    try:
        domain.next_status(action, request.status)
    except domain.IllegalTransition as exc:
        raise Conflict(str(exc)) from exc
    return request


def _moved(request: StockRequest, action: str) -> None:
    request.status = domain.TRANSITIONS[action][1]
    request.version += 1


async def approve(session: AsyncSession, principal: Principal, request_id: uuid.UUID, version: int) -> StockRequest:
    request = await _advance(session, principal, request_id, "approve", version)
    if request is None:
        return await get_request(session, principal, request_id)
    _ensure_keeper(principal, await _request_end(session, request.from_warehouse_id), "approve requests on its stock")
    user = access.acting_user(principal)
    if access.same_actor(user, request.requested_by):
        raise Forbidden("a request is approved by someone other than who made it")
    request.approved_by, request.approved_at = user, _now()
    _moved(request, "approve")
    session.add(request)
    await session.flush()
    return request


async def ship(session: AsyncSession, principal: Principal, request_id: uuid.UUID, version: int) -> StockRequest:
    request = await _advance(session, principal, request_id, "ship", version)
    if request is None:
        return await get_request(session, principal, request_id)
    source = await _request_end(session, request.from_warehouse_id)
    _ensure_keeper(principal, source, "ship from it")
    wanted = {line.item_code: line.quantity for line in await request_lines(session, request.id)}
    taken = await _take(session, source, wanted, kind="shipment_out", field="lines", request_id=request.id)
    for lot, qty in taken:
        session.add(ShipmentLine(request_id=request.id, lot_id=lot.id, item_code=lot.item_code, expires_on=lot.expires_on, quantity=qty))
    request.shipped_by, request.shipped_at = access.acting_user(principal), _now()
    _moved(request, "ship")
    session.add(request)
    await session.flush()
    await emit(session, StockShipped(request_id=request.id, incident_id=request.incident_id, from_warehouse_id=source.id,
                                     to_warehouse_id=request.to_warehouse_id,
                                     items=[ItemQuantity(item_code=c, quantity=q) for c, q in sorted(wanted.items())],
                                     shipped_at=request.shipped_at))
    return request


async def receive_shipment(session: AsyncSession, principal: Principal, request_id: uuid.UUID, version: int) -> StockRequest:
    """The goods arrived: they become lots of the destination, with the expiry dates they left with."""
    request = await _advance(session, principal, request_id, "receive", version)
    if request is None:
        return await get_request(session, principal, request_id)
    target = await _request_end(session, request.to_warehouse_id)
    _ensure_keeper(principal, target, "receive into it")
    for line in await shipment_lines(session, request.id):
        lot = StockLot(warehouse_id=target.id, item_code=line.item_code, expires_on=line.expires_on, quantity=line.quantity,
                       received_quantity=line.quantity, request_id=request.id)
        session.add(lot)
        await session.flush()
        session.add(StockMovement(lot_id=lot.id, warehouse_id=target.id, item_code=line.item_code, delta=line.quantity, kind="shipment_in",
                                  request_id=request.id))
    request.received_by, request.received_at = access.acting_user(principal), _now()
    _moved(request, "receive")
    session.add(request)
    await session.flush()
    await _check_levels(session, target, [line.item_code for line in await request_lines(session, request.id)])
    return request


async def cancel(session: AsyncSession, principal: Principal, request_id: uuid.UUID, version: int, reason: str) -> StockRequest:
    request = await _advance(session, principal, request_id, "cancel", version)
    if request is None:
        return await get_request(session, principal, request_id)
    target = await _request_end(session, request.to_warehouse_id)
    source = await _request_end(session, request.from_warehouse_id)
    if not (can_keep(principal, target) or can_keep(principal, source)):
        raise Forbidden("only the keepers of the two warehouses may cancel the request")
    request.cancel_reason = reason
    _moved(request, "cancel")
    session.add(request)
    await session.flush()
    return request


async def requests_of(session: AsyncSession, principal: Principal, incident_id: uuid.UUID, status: str | None) -> list[StockRequest]:
    stmt = select(StockRequest).where(StockRequest.incident_id == incident_id, _visible_requests(principal))
    if status:
        stmt = stmt.where(StockRequest.status == status)
    return list((await session.exec(stmt.order_by(StockRequest.created_at, StockRequest.id))).all())


async def request_out(session: AsyncSession, request: StockRequest) -> dict[str, Any]:
    out = request.model_dump(exclude={"created_at", "incident"})
    out["lines"] = [{"item_code": l.item_code, "quantity": l.quantity} for l in await request_lines(session, request.id)]
    out["shipment"] = [{"lot_id": s.lot_id, "item_code": s.item_code, "expires_on": s.expires_on, "quantity": s.quantity}
                       for s in await shipment_lines(session, request.id)]
    return out


# -- distribution ---------------------------------------------------------------------------


async def distribute(session: AsyncSession, principal: Principal, incident_id: uuid.UUID, data: dict[str, Any]) -> Distribution:
    incident = await incidents.get_incident(session, principal, incident_id)
    incidents.writable(principal, incident)
    warehouse = await get_warehouse(session, principal, data["warehouse_id"])
    _ensure_keeper(principal, warehouse, "hand out its goods")
    catalogue = await items(session)
    errors = _check_lines(data["lines"], catalogue)
    chosen = [k for k in ("affected_person_id", "household_id", "evacuation_point_id") if data.get(k) is not None]
    if len(chosen) != 1:
        errors.append({"field": "affected_person_id", "message": "name exactly one recipient: a person, a household or an evacuation point",
                       "rule": "distribution.recipient"})
    if data["distributed_on"] > date.today() or data["distributed_on"] < incident.started_on:
        errors.append({"field": "distributed_on", "message": "between the incident's start and today", "rule": "distribution.date"})
    if errors:
        raise invalid(errors)
    regency, person_id = None, data.get("person_id")
    if data.get("affected_person_id"):
        person = (await session.exec(select(AffectedPerson).where(AffectedPerson.id == data["affected_person_id"]))).first()
        if person is None or person.incident_id != incident.id or not principal.may_access_region(person.regency_code):
            raise invalid([{"field": "affected_person_id", "message": "no such affected person in this incident", "rule": "distribution.recipient"}])
        regency, person_id = person.regency_code, person_id or person.person_id
    elif data.get("household_id"):
        household = (await session.exec(select(AffectedHousehold).where(AffectedHousehold.id == data["household_id"]))).first()
        if household is None or household.incident_id != incident.id or not principal.may_access_region(household.regency_code):
            raise invalid([{"field": "household_id", "message": "no such household in this incident", "rule": "distribution.recipient"}])
        regency, person_id = household.regency_code, person_id or household.recipient_person_id
    else:
        point = (await session.exec(select(EvacuationPoint).where(EvacuationPoint.id == data["evacuation_point_id"]))).first()
        if point is None or point.incident_id != incident.id or not principal.may_access_region(point.regency_code):
            raise invalid([{"field": "evacuation_point_id", "message": "no such evacuation point in this incident", "rule": "distribution.recipient"}])
        regency = point.regency_code
    access.ensure_own_region(principal, regency, "distributions")
    assistive = [line for line in data["lines"] if catalogue[line["item_code"]].assistive]
    if assistive:
        if person_id is None:
            raise invalid([{"field": "person_id", "message": "an assistive device is handed to a person known to the registry",
                            "rule": "distribution.assistive_person"}])
        if data.get("evacuation_point_id") is not None:
            raise invalid([{"field": "evacuation_point_id", "message": "assistive devices go to a person, not a point", "rule": "distribution.assistive_person"}])
        known = (await session.exec(select(RegistryPerson.person_id).where(RegistryPerson.person_id == person_id))).first()
        if known is None:
            raise invalid([{"field": "person_id", "message": "not a person the registry has announced", "rule": "distribution.assistive_person"}])
    distribution = Distribution(incident_id=incident.id, warehouse_id=warehouse.id, regency_code=regency,
                                affected_person_id=data.get("affected_person_id"), household_id=data.get("household_id"),
                                evacuation_point_id=data.get("evacuation_point_id"), person_id=person_id,
                                distributed_on=data["distributed_on"], recorded_by=access.acting_user(principal))
    session.add(distribution)
    await session.flush()
    wanted = {line["item_code"]: line["quantity"] for line in data["lines"]}
    await _take(session, warehouse, wanted, kind="distribution", field="lines", distribution_id=distribution.id)
    for code, qty in sorted(wanted.items()):
        session.add(DistributionLine(distribution_id=distribution.id, item_code=code, quantity=qty))
        if catalogue[code].assistive:
            session.add(AssistiveDevice(person_id=person_id, item_code=code, quantity=qty, distribution_id=distribution.id,
                                        given_on=distribution.distributed_on))
    await session.flush()
    await emit(session, DistributionRecorded(
        distribution_id=distribution.id, incident_id=incident.id, warehouse_id=warehouse.id, regency_code=regency,
        affected_person_id=distribution.affected_person_id, household_id=distribution.household_id,
        evacuation_point_id=distribution.evacuation_point_id, person_id=person_id,
        items=[ItemQuantity(item_code=c, quantity=q) for c, q in sorted(wanted.items())], distributed_on=distribution.distributed_on,
    ))
    return distribution


async def distribution_out(session: AsyncSession, d: Distribution) -> dict[str, Any]:
    out = d.model_dump(exclude={"created_at", "regency_code"})
    lines = (await session.exec(select(DistributionLine).where(DistributionLine.distribution_id == d.id).order_by(DistributionLine.item_code))).all()
    out["lines"] = [{"item_code": l.item_code, "quantity": l.quantity} for l in lines]
    return out


async def distributions_of(session: AsyncSession, principal: Principal, incident_id: uuid.UUID) -> list[Distribution]:
    rows = (await session.exec(select(Distribution).where(Distribution.incident_id == incident_id)
                               .order_by(Distribution.distributed_on, Distribution.id))).all()
    return [d for d in rows if principal.may_access_region(d.regency_code)]


async def assistive_devices(session: AsyncSession, principal: Principal, person_id: uuid.UUID) -> list[AssistiveDevice]:
    """The devices handed to a registry person. A regency office sees those handed out in its
    region, and all of them when the registry places the person in its region (it looks after
    the person now); a neighbour's hand-outs to a neighbour's resident do not exist for it."""
    stmt = select(AssistiveDevice).where(AssistiveDevice.person_id == person_id)
    if principal.region is not None:
        lives_here = (await session.exec(select(RegistryPerson.regency_code).where(RegistryPerson.person_id == person_id))).first()
        if not principal.may_access_region(lives_here):
            handed_here = select(Distribution.id).where(access.in_region(Distribution.regency_code, principal.region))
            stmt = stmt.where(AssistiveDevice.distribution_id.in_(handed_here))
    return list((await session.exec(stmt.order_by(AssistiveDevice.given_on, AssistiveDevice.id))).all())
