"""HTTP routes of the buffer stock: catalogue, warehouses, receipts, requests, shipments,
distribution, alerts and assistive devices per person."""

from __future__ import annotations

import uuid

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request

from pilar_kernel.auth import Principal
from pilar_kernel.db import SessionDep
from pilar_kernel.idempotency import idempotent
from pilar_kernel.problems import problem_responses

from .. import access
from ..fields import IDEMPOTENCY_KEY, ITEM_CODE_PATTERN, RegencyQuery
from . import service
from .schemas import (
    ActionIn,
    AlertOut,
    CancelIn,
    DistributionIn,
    DistributionOut,
    ItemIn,
    ItemOut,
    MinimumIn,
    ReceiptIn,
    ReceiptOut,
    RequestIn,
    RequestOut,
    StockLine,
    WarehouseIn,
    WarehouseOut,
)

router = APIRouter(prefix="/v1", tags=["buffer stock"])


def _w(w) -> dict:
    return WarehouseOut.model_validate(w, from_attributes=True).model_dump()


@router.get("/items", response_model=list[ItemOut], summary="The item catalogue")
async def list_items(session: SessionDep, principal: Principal = access.require(access.READ)):
    return [ItemOut.model_validate(i, from_attributes=True).model_dump() for i in (await service.items(session)).values()]


@router.post("/items", status_code=201, response_model=ItemOut, summary="Add an item to the catalogue", dependencies=[IDEMPOTENCY_KEY])
async def add_item(body: ItemIn, request: Request, session: SessionDep, principal: Principal = access.require(access.ADMIN)):
    async def produce():
        return ItemOut.model_validate(await service.add_item(session, principal, body.model_dump()), from_attributes=True).model_dump()

    return await idempotent(request, session, principal, produce)


@router.post("/warehouses", status_code=201, response_model=WarehouseOut, summary="Register a province, regency or field warehouse",
             responses=problem_responses(404), dependencies=[IDEMPOTENCY_KEY])
async def create_warehouse(body: WarehouseIn, request: Request, session: SessionDep, principal: Principal = access.require(access.ADMIN)):
    async def produce():
        return _w(await service.create_warehouse(session, principal, body.model_dump()))

    return await idempotent(request, session, principal, produce)


@router.get("/warehouses", response_model=list[WarehouseOut],
            summary="Warehouses: a regency office sees its own and the province's")
async def list_warehouses(session: SessionDep, principal: Principal = access.require(access.READ),
                          level: Literal["province", "regency", "field"] | None = Query(default=None),
                          regency_code: RegencyQuery = None):
    return [_w(w) for w in await service.list_warehouses(session, principal, level=level, regency_code=regency_code)]


@router.get("/warehouses/{warehouse_id}/stock", response_model=list[StockLine], summary="Usable stock per item, with minimum levels")
async def warehouse_stock(warehouse_id: uuid.UUID, session: SessionDep, principal: Principal = access.require(access.READ)):
    warehouse = await service.get_warehouse(session, principal, warehouse_id)
    return await service.stock_of(session, warehouse.id)


@router.get("/warehouses/{warehouse_id}/lots", summary="Lots in stock, first expiring first")
async def warehouse_lots(warehouse_id: uuid.UUID, session: SessionDep, principal: Principal = access.require(access.READ)) -> list[dict]:
    warehouse = await service.get_warehouse(session, principal, warehouse_id)
    return [lot.model_dump(exclude={"created_at"}) for lot in await service.lots_of(session, warehouse.id)]


@router.put("/warehouses/{warehouse_id}/minimums/{item_code}", summary="Set an item's minimum level in a warehouse")
async def set_minimum(warehouse_id: uuid.UUID, item_code: Annotated[str, Path(pattern=ITEM_CODE_PATTERN)], body: MinimumIn,
                      session: SessionDep, principal: Principal = access.require(access.ADMIN)) -> dict:
    return {"warehouse_id": warehouse_id, "item_code": item_code,
            "minimum": await service.set_minimum(session, principal, warehouse_id, item_code, body.minimum)}


@router.post("/warehouses/{warehouse_id}/receipts", status_code=201, response_model=ReceiptOut, summary="Receive goods into stock",
             dependencies=[IDEMPOTENCY_KEY])
async def receive(warehouse_id: uuid.UUID, body: ReceiptIn, request: Request, session: SessionDep,
                  principal: Principal = access.require(access.WRITE)):
    async def produce():
        receipt, lots = await service.receive(session, principal, warehouse_id, body.model_dump())
        out = receipt.model_dump(exclude={"received_by", "created_at"})
        out["lots"] = [{"lot_id": l.id, "item_code": l.item_code, "quantity": l.quantity, "expires_on": l.expires_on} for l in lots]
        return out

    return await idempotent(request, session, principal, produce)


@router.get("/stock-alerts", response_model=list[AlertOut], summary="Items below their minimum level")
async def list_alerts(session: SessionDep, principal: Principal = access.require(access.READ), open: bool = Query(default=True)):
    return [a.model_dump() for a in await service.alerts(session, principal, open_only=open)]


@router.post("/incidents/{incident_id}/stock-requests", status_code=201, response_model=RequestOut, summary="Request goods for an incident",
             dependencies=[IDEMPOTENCY_KEY])
async def create_request(incident_id: uuid.UUID, body: RequestIn, request: Request, session: SessionDep,
                         principal: Principal = access.require(access.WRITE)):
    async def produce():
        return await service.request_out(session, await service.create_request(session, principal, incident_id, body.model_dump()))

    return await idempotent(request, session, principal, produce)


@router.get("/incidents/{incident_id}/stock-requests", response_model=list[RequestOut])
async def list_requests(incident_id: uuid.UUID, session: SessionDep, principal: Principal = access.require(access.READ),
                        status: Literal["draft", "approved", "shipped", "received", "cancelled"] | None = Query(default=None)):
    from ..incidents import service as incidents

    await incidents.get_incident(session, principal, incident_id)
    return [await service.request_out(session, r) for r in await service.requests_of(session, principal, incident_id, status)]


@router.get("/stock-requests/{request_id}", response_model=RequestOut)
async def get_request(request_id: uuid.UUID, session: SessionDep, principal: Principal = access.require(access.READ)):
    return await service.request_out(session, await service.get_request(session, principal, request_id))


@router.post("/stock-requests/{request_id}/approve", response_model=RequestOut, summary="Approve a request (not one's own)",
             dependencies=[IDEMPOTENCY_KEY])
async def approve(request_id: uuid.UUID, body: ActionIn, request: Request, session: SessionDep,
                  principal: Principal = access.require(access.APPROVE)):
    async def produce():
        return await service.request_out(session, await service.approve(session, principal, request_id, body.version))

    return await idempotent(request, session, principal, produce, status_code=200)


@router.post("/stock-requests/{request_id}/ship", response_model=RequestOut, summary="Ship an approved request, first expiring first",
             dependencies=[IDEMPOTENCY_KEY])
async def ship(request_id: uuid.UUID, body: ActionIn, request: Request, session: SessionDep, principal: Principal = access.require(access.WRITE)):
    async def produce():
        return await service.request_out(session, await service.ship(session, principal, request_id, body.version))

    return await idempotent(request, session, principal, produce, status_code=200)


@router.post("/stock-requests/{request_id}/receive", response_model=RequestOut, summary="Confirm a shipment arrived",
             dependencies=[IDEMPOTENCY_KEY])
async def receive_shipment(request_id: uuid.UUID, body: ActionIn, request: Request, session: SessionDep,
                           principal: Principal = access.require(access.WRITE)):
    async def produce():
        return await service.request_out(session, await service.receive_shipment(session, principal, request_id, body.version))

    return await idempotent(request, session, principal, produce, status_code=200)


@router.post("/stock-requests/{request_id}/cancel", response_model=RequestOut, summary="Withdraw a draft or approved request",
             dependencies=[IDEMPOTENCY_KEY])
async def cancel(request_id: uuid.UUID, body: CancelIn, request: Request, session: SessionDep,
                 principal: Principal = access.require(access.WRITE)):
    async def produce():
        return await service.request_out(session, await service.cancel(session, principal, request_id, body.version, body.reason))

    return await idempotent(request, session, principal, produce, status_code=200)


@router.post("/incidents/{incident_id}/distributions", status_code=201, response_model=DistributionOut,
             summary="Record goods handed to a person, a household or an evacuation point", dependencies=[IDEMPOTENCY_KEY])
async def distribute(incident_id: uuid.UUID, body: DistributionIn, request: Request, session: SessionDep,
                     principal: Principal = access.require(access.WRITE)):
    async def produce():
        return await service.distribution_out(session, await service.distribute(session, principal, incident_id, body.model_dump()))

    return await idempotent(request, session, principal, produce)


@router.get("/incidents/{incident_id}/distributions", response_model=list[DistributionOut])
async def list_distributions(incident_id: uuid.UUID, session: SessionDep, principal: Principal = access.require(access.READ)):
    from ..incidents import service as incidents

    await incidents.get_incident(session, principal, incident_id)
    return [await service.distribution_out(session, d) for d in await service.distributions_of(session, principal, incident_id)]


@router.get("/assistive-devices", summary="Assistive devices handed to a registry person")
async def assistive_devices(person_id: uuid.UUID, session: SessionDep, principal: Principal = access.require(access.READ)) -> list[dict]:
    """A regency office sees the devices handed out in its region, or all of a person the registry places there."""
    return [d.model_dump(exclude={"id"}) for d in await service.assistive_devices(session, principal, person_id)]
