"""Token signing keys: kept in the database, published as a JWKS, rotated without downtime.

* A key file (``PILAR_JWT_PRIVATE_KEY_FILE`` with ``jwt-kid`` beside it, given by the local
  stack and by compose) is imported once into the database; without one, the gateway
  generates a key on first start.
* ``rotate`` adds a new key that is published at once but signs only after
  ``key_activation_delay_s``, so every verifier has reloaded the JWKS before it meets a
  token signed with it. The key it replaces stays published (tokens it signed are still
  valid); older keys are retired, and a retired key's private half is erased.
* Private keys are encrypted at rest with the PII key (AES-256-GCM, bound to the key id).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import structlog
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from pilar_kernel.auth import SigningKey, TokenVerifier, generate_signing_key
from pilar_kernel.pii import PiiCipher

from .models import signing_keys

log = structlog.get_logger("gateway.keys")

KEYS_LOCK = "SELECT pg_advisory_xact_lock(hashtext('gateway.signing_keys'))"


def public_jwk(private_pem: bytes, kid: str) -> dict:
    key = serialization.load_pem_private_key(private_pem, password=None)
    jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": kid, "use": "sig", "alg": "EdDSA"})
    return jwk


def _aad(kid: str) -> str:
    return f"gateway.signing-key:{kid}"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class StoredKey:
    kid: str
    public_jwk: dict
    active_from: datetime
    signer: SigningKey | None


async def bootstrap(session: AsyncSession, cipher: PiiCipher, key_file: str | None) -> None:
    """Import the key file (once) and make sure there is a key to sign with."""
    await session.execute(text(KEYS_LOCK))
    if key_file:
        signer = SigningKey.from_files(Path(key_file))
        known = (await session.execute(select(signing_keys.c.kid).where(signing_keys.c.kid == signer.kid))).first()
        if known is None:
            await _insert(session, cipher, signer.kid, signer.private_pem, origin="file", active_from=_now())
            log.info("signing key imported from file", kid=signer.kid)
    usable = (
        await session.execute(
            select(signing_keys.c.kid).where(signing_keys.c.retired_at.is_(None), signing_keys.c.private_key.is_not(None)).limit(1)
        )
    ).first()
    if usable is None:
        kid, pem, _ = generate_signing_key()
        await _insert(session, cipher, kid, pem, origin="generated", active_from=_now())
        log.info("signing key generated", kid=kid)
    await _retire_old(session)


async def rotate(session: AsyncSession, cipher: PiiCipher, activate_in_s: float) -> tuple[str, datetime]:
    """A new signing key, active after ``activate_in_s``; returns its kid and activation time."""
    await session.execute(text(KEYS_LOCK))
    kid, pem, _ = generate_signing_key()
    active_from = _now() + timedelta(seconds=max(0.0, activate_in_s))
    await _insert(session, cipher, kid, pem, origin="generated", active_from=active_from)
    await _retire_old(session)
    log.info("signing key rotated", kid=kid, active_from=active_from.isoformat())
    return kid, active_from


async def _insert(session: AsyncSession, cipher: PiiCipher, kid: str, pem: bytes, *, origin: str, active_from: datetime) -> None:
    await session.execute(
        signing_keys.insert().values(
            kid=kid,
            private_key=cipher.encrypt(pem.decode(), aad=_aad(kid)),
            public_jwk=public_jwk(pem, kid),
            origin=origin,
            active_from=active_from,
        )
    )


async def _retire_old(session: AsyncSession) -> None:
    """Keep every pending key and the two newest active ones (current and the one it replaced)."""
    rows = (
        await session.execute(
            select(signing_keys.c.kid, signing_keys.c.active_from)
            .where(signing_keys.c.retired_at.is_(None))
            .order_by(signing_keys.c.active_from.desc(), signing_keys.c.created_at.desc())
        )
    ).all()
    now = _now()
    active = [r.kid for r in rows if r.active_from <= now]
    retire = active[2:]
    if retire:
        await session.execute(
            update(signing_keys).where(signing_keys.c.kid.in_(retire)).values(retired_at=now, private_key=None)
        )
        log.info("signing keys retired", kids=retire)


async def list_keys(session: AsyncSession) -> list[dict]:
    rows = (await session.execute(select(signing_keys).order_by(signing_keys.c.active_from.desc()))).all()
    now = _now()
    out = []
    current_seen = False
    for r in rows:
        if r.retired_at is not None:
            state = "retired"
        elif r.active_from > now:
            state = "pending"
        elif not current_seen:
            state, current_seen = "current", True
        else:
            state = "previous"
        out.append({"kid": r.kid, "origin": r.origin, "state": state, "created_at": r.created_at,
                    "active_from": r.active_from, "retired_at": r.retired_at})
    return out


class KeyRing:
    """The published keys of this process, reloaded from the database now and then."""

    def __init__(self, cipher: PiiCipher, *, issuer: str, audience: str) -> None:
        self._cipher = cipher
        self._issuer = issuer
        self._audience = audience
        self._keys: list[StoredKey] = []  # newest activation first
        self._fingerprint: tuple[str, ...] = ()
        self.verifier: TokenVerifier | None = None

    async def load(self, session: AsyncSession) -> bool:
        """Read the keys not retired; returns True when the published set changed."""
        rows = (
            await session.execute(
                select(signing_keys)
                .where(signing_keys.c.retired_at.is_(None))
                .order_by(signing_keys.c.active_from.desc(), signing_keys.c.created_at.desc())
            )
        ).all()
        keys = []
        for r in rows:
            signer = None
            if r.private_key is not None:
                pem = self._cipher.decrypt(r.private_key, aad=_aad(r.kid)).encode()
                signer = SigningKey(kid=r.kid, private_pem=pem)
            keys.append(StoredKey(r.kid, dict(r.public_jwk), r.active_from, signer))
        fingerprint = tuple(k.kid for k in keys)
        self._keys = keys
        if fingerprint == self._fingerprint and self.verifier is not None:
            return False
        self._fingerprint = fingerprint
        self.verifier = TokenVerifier(jwks=self.jwks(), issuer=self._issuer, audience=self._audience)
        return True

    def jwks(self) -> dict:
        return {"keys": [k.public_jwk for k in self._keys]}

    def current(self) -> StoredKey:
        now = _now()
        for key in self._keys:
            if key.active_from <= now and key.signer is not None:
                return key
        # Only pending keys (a clock skew right after a first rotation): sign with the oldest.
        for key in reversed(self._keys):
            if key.signer is not None:
                return key
        raise RuntimeError("the gateway has no signing key (run the gateway once to create one)")

    def mint(self, subject: str, scopes: list[str], *, region: str | None, ttl_s: int, user: str | None = None) -> str:
        extra = {"user": user} if user else {}
        return self.current().signer.mint(subject, scopes, region=region, ttl_s=ttl_s, issuer=self._issuer,
                                          audience=self._audience, **extra)


def export_jwks_file(path: str, jwks: dict) -> None:
    """Rewrite a JWKS file that services read (development only), atomically and only on change."""
    target = Path(path)
    body = json.dumps(jwks, indent=2)
    try:
        if target.exists() and target.read_text() == body:
            return
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(body)
        os.replace(tmp, target)
        log.info("development JWKS file updated", keys=len(jwks["keys"]))
    except OSError as exc:
        log.warning("cannot update the development JWKS file", error=str(exc))
