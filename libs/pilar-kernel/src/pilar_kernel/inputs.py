"""Input that PostgreSQL cannot store is refused at the door, naming the field.

A NUL character (``\\u0000``) is valid JSON and a valid Python string, but PostgreSQL's
``text`` cannot hold it: left alone it passes validation and fails at the database as a
server error. This ASGI middleware looks at the path, the query string and JSON bodies
before a route runs and answers 422 problem+json naming the first field that holds one
(``query.name``, ``body.members.0.name``). Non-JSON bodies (CSV uploads) are the
business of the route that parses them.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, unquote

from fastapi.responses import JSONResponse

from .problems import MEDIA_TYPE, Problem

# Bodies above this size are not inspected here (the route's own limits apply).
_MAX_INSPECTED = 8 * 1024 * 1024


def _nul_path(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                return f"{path}.{key.replace(chr(0), '')}"
            found = _nul_path(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_path(item, f"{path}.{index}")
            if found:
                return found
    return None


def _refusal(field: str) -> Problem:
    return Problem(
        f"invalid input: {field}",
        status=422,
        type="validation-error",
        title="Invalid input",
        errors=[{"field": field, "message": "must not contain the NUL character", "rule": "no_nul"}],
    )


class NulGuardMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        field = None
        if "\x00" in unquote(scope.get("raw_path", b"").decode("latin-1")) or "\x00" in scope.get("path", ""):
            field = "path"
        if field is None and scope.get("query_string"):
            for name, value in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True):
                if "\x00" in name or "\x00" in value:
                    field = f"query.{name.replace(chr(0), '')}"
                    break
        if field is not None:
            return await self._refuse(scope, send, field)
        content_type = dict(scope.get("headers", [])).get(b"content-type", b"").split(b";")[0].strip().lower()
        if scope.get("method") not in ("POST", "PUT", "PATCH") or not content_type.endswith(b"json"):
            return await self.app(scope, receive, send)
        # Read the body once, inspect it, and hand the same bytes to the app.
        messages = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if not message.get("more_body") or size > _MAX_INSPECTED:
                break
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
        if size <= _MAX_INSPECTED and (b"\\u0000" in body or b"\x00" in body):
            try:
                field = _nul_path(json.loads(body), "body")
            except (ValueError, UnicodeDecodeError):
                field = None  # not JSON: the route's validation answers
            if field is not None:
                return await self._refuse(scope, send, field)
        pending = list(messages)

        async def replay():
            if pending:
                return pending.pop(0)
            return await receive()

        return await self.app(scope, replay, send)

    async def _refuse(self, scope, send, field: str) -> None:
        problem = _refusal(field)
        response = JSONResponse(problem.body(scope.get("path", "").replace("\x00", "")), status_code=422, media_type=MEDIA_TYPE)
        await response(scope, None, send)
