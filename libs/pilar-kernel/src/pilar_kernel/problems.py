"""``application/problem+json`` (RFC 9457) for every error a service returns.

Raise :class:`Problem` (or a subclass) from domain or API code; validation errors from
FastAPI become a 422 whose ``errors`` list names each field (``body.nik``). Unexpected
exceptions become a bare 500 problem: no stack traces or data leak to the client.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_BASE = "https://pilar.dinsos.jatimprov.go.id/problems/"
MEDIA_TYPE = "application/problem+json"

log = structlog.get_logger("pilar.problems")


class Problem(Exception):
    status: int = 400
    type: str = "bad-request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        status: int | None = None,
        type: str | None = None,
        title: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title or self.title)
        self.detail = detail
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type
        if title is not None:
            self.title = title
        self.errors = errors
        self.headers = headers
        self.extensions = extensions

    def body(self, instance: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"type": PROBLEM_BASE + self.type, "title": self.title, "status": self.status}
        if self.detail:
            out["detail"] = self.detail
        if instance:
            out["instance"] = instance
        if self.errors:
            out["errors"] = self.errors
        out.update(self.extensions)
        return out


class NotFound(Problem):
    status, type, title = 404, "not-found", "Not found"


class Conflict(Problem):
    status, type, title = 409, "conflict", "Conflict"


class Unauthorized(Problem):
    status, type, title = 401, "unauthorized", "Authentication required"


class Forbidden(Problem):
    status, type, title = 403, "forbidden", "Not allowed"


class RuleViolation(Problem):
    """A domain rule broken by the input: 422 naming the field and the rule."""

    status, type, title = 422, "validation-error", "The request breaks a rule"

    def __init__(self, field: str, message: str, *, rule: str | None = None) -> None:
        error = {"field": field, "message": message}
        if rule:
            error["rule"] = rule
        super().__init__(f"{field}: {message}", errors=[error])


def problem_response(problem: Problem, request: Request | None = None) -> JSONResponse:
    return JSONResponse(
        problem.body(str(request.url.path) if request else None),
        status_code=problem.status,
        media_type=MEDIA_TYPE,
        headers=problem.headers,
    )


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field(err.get("loc", ())), "message": err.get("msg", "invalid"), "rule": err.get("type")}
            for err in exc.errors()
        ]
        fields = ", ".join(e["field"] for e in errors)
        return problem_response(
            Problem(f"invalid input: {fields}", status=422, type="validation-error", title="Invalid input", errors=errors),
            request,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not-found", 405: "method-not-allowed", 401: "unauthorized", 403: "forbidden"}.get(exc.status_code, "http-error")
        return problem_response(
            Problem(str(exc.detail) if exc.detail else None, status=exc.status_code, type=kind, title=str(exc.detail or kind), headers=getattr(exc, "headers", None)),
            request,
        )

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        # The database's constraints are the last line of defence against races (two
        # requests registering one NIK, paying one person twice): a violation is the
        # client's conflict, not a server error. Services check first for nicer messages.
        code = getattr(exc.orig, "sqlstate", None) or getattr(getattr(exc.orig, "__cause__", None), "sqlstate", None)
        constraint = getattr(getattr(exc.orig, "__cause__", None), "constraint_name", None)
        if code == "23505":
            problem = Conflict("a record with the same unique value already exists", constraint=constraint)
        elif code in ("23503", "23514", "23502"):
            problem = Problem("the request breaks a data rule", status=422, type="constraint-violation", title="Constraint violated", constraint=constraint)
        else:
            log.exception("integrity error", path=request.url.path)
            problem = Problem(status=500, type="internal-error", title="Internal error")
        return problem_response(problem, request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", path=request.url.path)
        return problem_response(Problem(status=500, type="internal-error", title="Internal error"), request)
