"""The admin API (scope ``gateway:admin``): clients and signing keys. (``/v1/whoami`` comes
from the kernel and answers through the gatekeeper.)

Creating a client does not take an Idempotency-Key on purpose: the replayed response would
have to keep the secret in clear. The client id is the natural key instead (409 on repeat).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Request

from pilar_kernel.auth import Principal, require_scopes
from pilar_kernel.db import SessionDep

from . import clients, keys
from .gatekeeper import ADMIN_SCOPE
from .schemas import CLIENT_ID_PATTERN, ClientChange, ClientCreate, ClientOut, ClientWithSecret, KeyOut
from .state import gateway_of

router = APIRouter(prefix="/v1")
Admin = Annotated[Principal, require_scopes(ADMIN_SCOPE)]
ClientIdPath = Annotated[str, Path(pattern=CLIENT_ID_PATTERN, max_length=63)]


@router.post("/admin/clients", tags=["admin"], status_code=201, response_model=ClientWithSecret, summary="Register an agency system")
async def create_client(body: ClientCreate, request: Request, session: SessionDep, _: Admin) -> dict:
    row, secret = await clients.create(
        session,
        client_id=body.client_id,
        name=body.name,
        scopes=body.scopes,
        region=body.region,
        rate_per_s=body.rate_limit.per_second,
        rate_burst=body.rate_limit.burst,
    )
    gateway_of(request).directory.put(row)
    return {**clients.public_view(row), "client_secret": secret}


@router.get("/admin/clients", tags=["admin"], response_model=list[ClientOut], summary="Every client")
async def list_clients(session: SessionDep, _: Admin) -> list[dict]:
    return [clients.public_view(r) for r in await clients.list_rows(session)]


@router.get("/admin/clients/{client_id}", tags=["admin"], response_model=ClientOut, summary="One client")
async def get_client(client_id: ClientIdPath, session: SessionDep, _: Admin) -> dict:
    return clients.public_view(await clients.get_row(session, client_id))


@router.patch("/admin/clients/{client_id}", tags=["admin"], response_model=ClientOut, summary="Change a client's name, scopes, region or rate limit")
async def change_client(client_id: ClientIdPath, body: ClientChange, request: Request, session: SessionDep, _: Admin) -> dict:
    values: dict = {}
    if body.name is not None:
        values["name"] = body.name
    if body.scopes is not None:
        values["scopes"] = body.scopes
    if body.province_wide:
        values["region"] = None
    elif body.region is not None:
        values["region"] = body.region
    if body.rate_limit is not None:
        values["rate_per_s"] = body.rate_limit.per_second
        values["rate_burst"] = body.rate_limit.burst
    row = await clients.change(session, client_id, **values)
    gateway_of(request).directory.put(row)
    return clients.public_view(row)


@router.post("/admin/clients/{client_id}/rotate-secret", tags=["admin"], response_model=ClientWithSecret, summary="Replace a client's secret")
async def rotate_client_secret(client_id: ClientIdPath, request: Request, session: SessionDep, _: Admin) -> dict:
    row, secret = await clients.rotate_secret(session, client_id)
    gateway_of(request).directory.put(row)
    return {**clients.public_view(row), "client_secret": secret}


@router.post("/admin/clients/{client_id}/revoke", tags=["admin"], response_model=ClientOut, summary="Revoke a client: its tokens stop working at the gateway at once")
async def revoke_client(client_id: ClientIdPath, request: Request, session: SessionDep, _: Admin) -> dict:
    row = await clients.revoke(session, client_id)
    gateway_of(request).directory.put(row)
    return clients.public_view(row)


@router.get("/admin/keys", tags=["admin"], response_model=list[KeyOut], summary="Signing keys and their state")
async def list_keys(session: SessionDep, _: Admin) -> list[dict]:
    return await keys.list_keys(session)


@router.post("/admin/keys/rotate", tags=["admin"], status_code=201, response_model=KeyOut, summary="Add a new signing key (it signs after the activation delay)")
async def rotate_key(
    request: Request,
    session: SessionDep,
    _: Admin,
    activate_in_s: Annotated[float | None, Body(embed=True, ge=0, le=86_400)] = None,
) -> dict:
    gateway = gateway_of(request)
    delay = gateway.settings.key_activation_delay_s if activate_in_s is None else activate_in_s
    kid, _active_from = await keys.rotate(session, gateway.cipher, delay)
    await session.commit()
    await gateway.reload_keys(session)
    return next(k for k in await keys.list_keys(session) if k["kid"] == kid)
