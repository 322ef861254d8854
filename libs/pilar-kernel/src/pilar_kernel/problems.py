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
from sqlalchemy.exc import DBAPIError, IntegrityError
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

    @app.exception_handler(DBAPIError)
    async def _data(request: Request, exc: DBAPIError) -> JSONResponse:
        # Safety net behind the schemas' own bounds: a value PostgreSQL cannot store or
        # compare (a number out of range, a character outside UTF-8) is the client's input,
        # refused with 422, not a server error. Anything else is still a 500.
        code = getattr(exc.orig, "sqlstate", None) or getattr(getattr(exc.orig, "__cause__", None), "sqlstate", None)
        cause = getattr(exc.orig, "__cause__", None)
        client_side = type(cause).__name__ == "DataError" and code is None  # asyncpg refused to encode an argument
        if (code and str(code).startswith("22")) or client_side:
            log.warning("data error from input", path=request.url.path, sqlstate=code)
            problem = Problem(
                "a value is outside what the service can store (range or characters)",
                status=422,
                type="validation-error",
                title="Invalid input",
                errors=[{"field": "request", "message": "a value is out of range or holds characters that cannot be stored", "rule": "storable"}],
            )
        else:
            log.exception("database error", path=request.url.path)
            problem = Problem(status=500, type="internal-error", title="Internal error")
        return problem_response(problem, request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", path=request.url.path)
        return problem_response(Problem(status=500, type="internal-error", title="Internal error"), request)


# -- OpenAPI: what every operation may answer ---------------------------------------------

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "An RFC 9457 problem. Validation errors list each field in `errors`.",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 100, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}, "rule": {"type": ["string", "null"]}},
            },
        },
    },
    "additionalProperties": True,
}

STATUS_TEXT = {
    400: "Bad request (a malformed header such as Idempotency-Key)",
    401: "No token, or a token that is not valid",
    403: "The token lacks a scope or the caller may not do this",
    404: "Not found, or not visible to the caller",
    405: "Method not allowed",
    409: "Conflicts with the record's current state",
    413: "Request too large",
    415: "Unsupported media type",
    422: "The request breaks a rule; `errors` names each field",
    429: "Too many requests",
    500: "Internal error",
    502: "Upstream failure",
    503: "Not available now",
    504: "Upstream timed out",
}


def _problem_response(code: int) -> dict[str, Any]:
    return {
        "description": STATUS_TEXT.get(code, "Problem"),
        "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that answers these problem statuses beyond the defaults."""
    return {code: _problem_response(code) for code in codes}


def document_problems(schema: dict[str, Any], *, secured: dict[tuple[str, str], tuple[str, ...] | None]) -> dict[str, Any]:
    """Make an OpenAPI document say what the kernel makes every operation answer.

    ``secured`` maps ``(path, method)`` of operations that need a token to the scopes they
    require (``None`` when only a token). Every operation gets 422 and 500 as problem+json;
    secured ones 401 and 403 and a bearer security requirement; operations with path
    parameters 404; writes 400 (a bad Idempotency-Key) and 409. FastAPI's own 422 body
    (``HTTPValidationError``) is replaced: the services answer problem+json.
    """
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    if secured:
        components.setdefault("securitySchemes", {})["bearer"] = {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token from the gateway's /oauth/token",
        }
    for path, item in schema.get("paths", {}).items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = op.setdefault("responses", {})
            codes = [422, 500]
            key = (path, method.upper())
            if key in secured:
                codes += [401, 403]
                scopes = secured[key]
                op["security"] = [{"bearer": list(scopes or ())}]
                if scopes:
                    note = "Requires scope " + ", ".join(f"`{s}`" for s in scopes) + "."
                    if note not in op.get("description", ""):
                        op["description"] = (op.get("description", "") + "\n\n" + note).strip()
            if "{" in path:
                codes.append(404)
            if method in ("post", "put", "patch", "delete"):
                codes += [400, 409]
            for code in codes:
                responses.setdefault(str(code), _problem_response(code))
            for code, response in list(responses.items()):
                if not (str(code).isdigit() and int(code) >= 400):
                    continue
                content = response.get("content") or {}
                schema_of = (content.get("application/json") or {}).get("schema") or {}
                generic = not content or (set(content) == {"application/json"} and (not schema_of or "HTTPValidationError" in str(schema_of)))
                if generic:
                    responses[code] = {**_problem_response(int(code)), "description": response.get("description") or STATUS_TEXT.get(int(code), "Problem")}
    return schema
