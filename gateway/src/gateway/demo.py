"""Demo clients for development (never seeded outside ``development`` unless asked).

Their secrets are written to ``demo-clients.json`` beside the JWT key file (the local
stack's git-ignored ``.run/secrets/``, mode 0600), never to a log. A demo client whose
secret is not in that file any more gets a new one at the next start.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import structlog
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from . import clients
from .models import clients as clients_table

log = structlog.get_logger("gateway.demo")

SECRETS_FILE = "demo-clients.json"

# The services' scopes (each service's ``access`` module says what each one allows).
REGISTRY = ["registry:read", "registry:write", "registry:verify", "registry:approve", "registry:programme-admin",
            "registry:pii", "registry:audit"]
DISBURSEMENT = ["disbursement:read", "disbursement:prepare", "disbursement:approve", "disbursement:programme-admin"]
SHELTER_STAFF = ["shelter:caseworker", "shelter:supervisor"]
HOMELESS_RETURN = ["homeless-return:read", "homeless-return:write", "homeless-return:verify", "homeless-return:admin"]
DISASTER = ["disaster:read", "disaster:write", "disaster:approve", "disaster:admin"]
ACT_FOR_USERS = "gateway:act-for-users"

DEMO_CLIENTS: list[dict] = [
    {"client_id": "pilar-admin", "name": "Pilar platform administrators (demo)",
     "scopes": ["gateway:admin", "gateway:webhooks"], "region": None},
    # The provincial officers' console: signs its officers in and names them in each token
    # (``user``), so that the preparer and the approver of a round are told apart.
    {"client_id": "dinsos-jatim", "name": "Dinas Sosial Provinsi Jawa Timur (demo)",
     "scopes": REGISTRY + DISBURSEMENT + HOMELESS_RETURN + DISASTER + ["shelter:admin", "shelter:analyst",
                                                                       "gateway:webhooks", ACT_FOR_USERS],
     "region": None},
    {"client_id": "dinsos-sidoarjo", "name": "Dinas Sosial Kabupaten Sidoarjo (demo)",
     "scopes": ["registry:read", "registry:write", "registry:verify", "disbursement:read", "homeless-return:read",
                "homeless-return:write", "disaster:read", "disaster:write", "gateway:webhooks", ACT_FOR_USERS],
     "region": "35.15"},
    # A second regency office, so that tests can check one office against another's records
    # (the demo flood, warehouse and volunteers of Bojonegoro are its own).
    {"client_id": "dinsos-bojonegoro", "name": "Dinas Sosial Kabupaten Bojonegoro (demo)",
     "scopes": ["registry:read", "registry:write", "registry:verify", "disbursement:read", "homeless-return:read",
                "homeless-return:write", "disaster:read", "disaster:write", "gateway:webhooks", ACT_FOR_USERS],
     "region": "35.22"},
    # The shelters' caseworker app: survivor records are need-to-know per staff member.
    {"client_id": "shelter-app", "name": "UPT shelters' caseworker app (demo)",
     "scopes": SHELTER_STAFF + [ACT_FOR_USERS], "region": None},
    {"client_id": "bank-jatim", "name": "Bank Jatim, payment partner (demo)",
     "scopes": ["disbursement:read", "disbursement:bank-callback", "gateway:webhooks"], "region": None},
]


def secrets_path(key_file: str | None) -> Path | None:
    return Path(key_file).parent / SECRETS_FILE if key_file else None


def _read(path: Path | None) -> dict:
    if path is None or not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write(path: Path, entries: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(entries, handle, indent=2)
    os.replace(tmp, path)


async def seed(session: AsyncSession, key_file: str | None) -> None:
    """Create the demo clients that are missing; make sure their secrets are on file."""
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('gateway.demo_clients'))"))
    path = secrets_path(key_file)
    on_file = _read(path)
    changed = False
    for spec in DEMO_CLIENTS:
        client_id = spec["client_id"]
        row = (await session.execute(select(clients_table).where(clients_table.c.client_id == client_id))).first()
        known_secret = (on_file.get(client_id) or {}).get("client_secret")
        if row is not None and row.revoked_at is not None:
            continue  # an operator revoked it: leave it so
        if row is None:
            row, secret = await clients.create(session, **spec)
        else:
            if sorted(row.scopes) != sorted(spec["scopes"]) or row.region != spec["region"]:
                # The demo clients follow the code: a newer version may grant other scopes.
                row = await clients.change(session, client_id, scopes=spec["scopes"], region=spec["region"])
                changed = True
            if known_secret and await clients.verify_secret(row.secret_hash, known_secret):
                secret = known_secret
            elif path is None:
                continue  # nowhere to put a new secret: leave the client as it is
            else:
                row, secret = await clients.rotate_secret(session, client_id)
        entry = {"client_secret": secret, "scopes": sorted(row.scopes), "region": row.region}
        if on_file.get(client_id) != entry:
            on_file[client_id] = entry
            changed = True
    if changed and path is not None:
        _write(path, on_file)
    log.info("demo clients ready", clients=[c["client_id"] for c in DEMO_CLIENTS],
             secrets_file=str(path) if path else "none (use `python -m gateway.admin rotate-secret`)")
