"""HTTP routes of the gateway service (``/v1/...``)."""

from fastapi import APIRouter

from pilar_kernel.auth import PrincipalDep

router = APIRouter(prefix="/v1", tags=["gateway"])


@router.get("/whoami", summary="The calling client as this service sees it")
async def whoami(principal: PrincipalDep) -> dict:
    return {"subject": principal.subject, "scopes": sorted(principal.scopes), "region": principal.region}
