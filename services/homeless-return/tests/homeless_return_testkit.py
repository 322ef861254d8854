"""Shared by the homeless-return tests: signing keys, migrations, the apps in-process and
request bodies."""

from __future__ import annotations

import json
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
