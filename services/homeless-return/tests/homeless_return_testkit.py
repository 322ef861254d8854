"""Shared by the homeless-return tests: signing keys, migrations, the apps in-process and
request bodies."""

from __future__ import annotations

import json
import re
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pilar_kernel.testing import TestKeys, migrate_database, running_app

SERVICE_DIR = Path(__file__).resolve().parents[1]
REGISTRY_DIR = SERVICE_DIR.parent / "registry"
KEYS = TestKeys()

READ, WRITE, VERIFY, ADMIN = "homeless-return:read", "homeless-return:write", "homeless-return:verify", "homeless-return:admin"
PROVINCE = KEYS.headers(READ, WRITE, VERIFY, ADMIN, subject="dinsos-jatim")
SIDOARJO = KEYS.headers(READ, WRITE, VERIFY, region="35.15", subject="dinsos-sidoarjo")
SURABAYA = KEYS.headers(READ, WRITE, VERIFY, region="35.78", subject="dinsos-surabaya")


def migrate(url: str, service_dir: Path = SERVICE_DIR) -> None:
    migrate_database(service_dir, url)


def write_jwks(folder: Path) -> str:
    path = folder / "jwks.json"
    path.write_text(json.dumps(KEYS.jwks))
    return str(path)


@asynccontextmanager
async def homeless_app(url: str, kafka: str, jwks: str, **overrides):
    """The homeless-return app on a migrated database, running its workers; yields a client
    with the app at ``client.app``."""
    from homeless_return.app import create_app
    from homeless_return.settings import Settings

    settings = Settings(env="test", database_url=url, kafka_bootstrap=kafka, jwks_file=jwks, relay_poll_interval_s=0.2,
                        overdue_refresh_s=0.2, **overrides)
    app = create_app(settings)
    async with running_app(app) as client:
        client.app = app
        yield client


def ago(**delta) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


def intake(**overrides) -> dict:
    body = {
        "direction": "outbound",
        "found_at": ago(hours=3),
        "found_place_code": "35.78.01",
        "found_place_note": "Terminal Purabaya",
        "referred_by": "satpol_pp",
        "documents": "none",
        "photo_ref": "photo/2026/0001.jpg",
        "cause": "out_of_money",
        "health_note": "tired, no injuries",
        "name": "Budi Santoso",
        "birth_date": "1988-04-12",
        "sex": "M",
        "origin_code": "63.71",
    }
    body.update(overrides)
    return body


# -- the OpenAPI document as a contract ------------------------------------------------------

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def schema_violations(value, schema: dict, document: dict, at: str = "$") -> list[str]:
    """Where ``value`` breaks an OpenAPI 3.1 schema of ``document`` (the subset FastAPI writes:
    $ref, anyOf, type, enum/const, required, properties, items, additionalProperties and the
    formats date-time, date and uuid). Empty when it conforms."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return schema_violations(value, document["components"]["schemas"][name], document, at)
    if "anyOf" in schema:
        options = [schema_violations(value, option, document, at) for option in schema["anyOf"]]
        return [] if any(not o for o in options) else [f"{at}: matches none of anyOf ({options})"]
    kind = schema.get("type")
    checks = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "object": dict, "array": list, "null": type(None)}
    if kind is not None:
        if (kind in ("integer", "number") and isinstance(value, bool)) or not isinstance(value, checks[kind]):
            return [f"{at}: {value!r} is not {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{at}: {value!r} not in {schema['enum']}"]
    if "const" in schema and value != schema["const"]:
        return [f"{at}: {value!r} is not {schema['const']!r}"]
    out: list[str] = []
    if isinstance(value, str):
        fmt = schema.get("format")
        if fmt == "date-time" and not _RFC3339.match(value):
            out.append(f"{at}: {value!r} is not an RFC 3339 date-time (with an offset)")
        elif fmt == "date" and not _DATE.match(value):
            out.append(f"{at}: {value!r} is not a date")
        elif fmt == "uuid" and not _UUID.match(value):
            out.append(f"{at}: {value!r} is not a uuid")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        out += [f"{at}: {name} is required" for name in schema.get("required", []) if name not in value]
        for name, item in value.items():
            if name in props:
                out += schema_violations(item, props[name], document, f"{at}.{name}")
            elif isinstance(schema.get("additionalProperties"), dict):
                out += schema_violations(item, schema["additionalProperties"], document, f"{at}.{name}")
            elif schema.get("additionalProperties") is False:
                out.append(f"{at}: {name} is not allowed")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            out += schema_violations(item, schema["items"], document, f"{at}.{i}")
    return out


def response_schema(document: dict, path: str, method: str, status: int) -> dict:
    return document["paths"][path][method]["responses"][str(status)]["content"]["application/json"]["schema"]
