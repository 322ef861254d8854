"""Token verification (JWT, asymmetric keys from a JWKS) and the request principal.

The gateway signs short-lived client-credentials tokens; every service verifies them itself
with the gateway's public keys (a JWKS file or URL; keys are picked by ``kid`` so they can
rotate) and enforces scopes and the ``region`` claim (a regency/city office's ``35.xx``).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, Request
from jwt import PyJWK, PyJWKSet

from .problems import Forbidden, Unauthorized

ALGORITHMS = ["EdDSA", "ES256", "RS256"]
# Verified tokens kept per verifier. A client reuses its token for many requests; beyond
# this many distinct tokens the cache starts over.
_VERIFIED_MAX = 10_000


@dataclass(frozen=True)
class Principal:
    """Who is calling: a client system (agency), its scopes and optional region."""

    subject: str
    scopes: frozenset[str]
    region: str | None = None
    claims: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def actor(self) -> str:
        """Who acts: the officer named in the token's ``user`` claim, else the client itself.

        Case-folded, because the gateway accepts a user name in any case and four-eyes rules
        compare actors: ``QA.PREP`` and ``qa.prep`` are one person.
        """
        return str(self.claims.get("user") or self.subject).casefold()

    def has(self, scope: str) -> bool:
        return scope in self.scopes

    def require(self, *scopes: str) -> None:
        missing = [s for s in scopes if s not in self.scopes]
        if missing:
            raise Forbidden(f"missing scope: {', '.join(missing)}", required_scopes=missing)

    def may_access_region(self, code: str | None) -> bool:
        """Province-wide clients (no region) see all; a regency office only its own codes."""
        if self.region is None:
            return True
        if not code:
            return False
        return code == self.region or code.startswith(self.region + ".")


class TokenVerifier:
    def __init__(
        self,
        *,
        jwks_file: str | Path | None = None,
        jwks_url: str | None = None,
        jwks: dict | None = None,
        issuer: str,
        audience: str,
        leeway_s: int = 30,
    ) -> None:
        if not (jwks_file or jwks_url or jwks):
            raise ValueError("a JWKS (file, URL or dict) is required to verify tokens")
        self._file = Path(jwks_file) if jwks_file else None
        self._url = jwks_url
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_s
        self._keys: dict[str, PyJWK] = {}
        self._loaded_at = 0.0
        # token -> (principal, time.time() until which it is valid): parsing the token and
        # checking its signature is most of the CPU a small authenticated request costs.
        self._verified: dict[str, tuple[Principal, float]] = {}
        if jwks:
            self._set(jwks)

    def _set(self, jwks: dict) -> None:
        self._keys = {k.key_id: k for k in PyJWKSet.from_dict(jwks).keys if k.key_id}
        self._loaded_at = time.monotonic()
        self._verified.clear()  # a retired key's tokens must not pass from the cache

    async def _refresh(self, *, force: bool = False) -> None:
        fresh = time.monotonic() - self._loaded_at < (30 if force else 300)
        if self._keys and fresh:
            return
        if self._file is not None:
            self._set(json.loads(self._file.read_text()))
        elif self._url is not None:
            async with httpx.AsyncClient(timeout=5) as client:
                resp = await client.get(self._url)
                resp.raise_for_status()
                self._set(resp.json())

    async def verify(self, token: str) -> Principal:
        cached = self._verified.get(token)
        # A cached token passes while it has not expired and while the keys need no reload
        # (a reload clears the cache), so the answer is the same as a full verification's.
        keys_current = (self._file is None and self._url is None) or time.monotonic() - self._loaded_at < 300
        if cached is not None and keys_current and time.time() < cached[1]:
            return cached[0]
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("malformed token") from exc
        kid = header.get("kid")
        await self._refresh()
        if kid not in self._keys:
            await self._refresh(force=True)  # maybe rotated: reload once
        key = self._keys.get(kid)
        if key is None:
            raise Unauthorized("token signed with an unknown key")
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=ALGORITHMS,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("token expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from exc
        scopes = claims.get("scope", "")
        principal = Principal(
            subject=claims["sub"],
            scopes=frozenset(scopes.split() if isinstance(scopes, str) else scopes),
            region=claims.get("region"),
            claims=claims,
        )
        if len(self._verified) >= _VERIFIED_MAX:
            self._verified.clear()
        # jwt.decode accepts a token until exp + leeway; so does the cache.
        self._verified[token] = (principal, float(claims["exp"]) + self._leeway)
        return principal


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send a bearer token in the Authorization header", headers={"WWW-Authenticate": 'Bearer realm="pilar"'})
    return token.strip()


async def get_principal(request: Request) -> Principal:
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        principal = await verifier.verify(_bearer(request))
    except Unauthorized as exc:
        exc.headers = {"WWW-Authenticate": 'Bearer realm="pilar", error="invalid_token"'}
        raise
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_scopes(*scopes: str):
    """Dependency: the principal, after checking it holds every scope in ``scopes``."""

    async def _dep(principal: PrincipalDep) -> Principal:
        principal.require(*scopes)
        return principal

    _dep.pilar_scopes = scopes  # read by the OpenAPI document (security requirements)
    return Depends(_dep)


# -- keys and tokens (the gateway signs; tests and the local stack mint with dev keys) ----


def _jwk_of(private_key: Ed25519PrivateKey, kid: str) -> dict:
    jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(private_key.public_key()))
    jwk.update({"kid": kid, "use": "sig", "alg": "EdDSA"})
    return jwk


def generate_signing_key() -> tuple[str, bytes, dict]:
    """A new Ed25519 key: (kid, private PEM, public JWK)."""
    key = Ed25519PrivateKey.generate()
    kid = uuid.uuid4().hex[:16]
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return kid, pem, _jwk_of(key, kid)


def write_dev_keys(directory: Path) -> tuple[Path, Path]:
    """Create (once) a development signing key and its JWKS; returns (private PEM, JWKS) paths."""
    directory.mkdir(parents=True, exist_ok=True)
    pem_path, jwks_path, kid_path = directory / "jwt-private.pem", directory / "jwks.json", directory / "jwt-kid"
    if not (pem_path.exists() and jwks_path.exists() and kid_path.exists()):
        kid, pem, jwk = generate_signing_key()
        pem_path.write_bytes(pem)
        pem_path.chmod(0o600)
        kid_path.write_text(kid)
        jwks_path.write_text(json.dumps({"keys": [jwk]}, indent=2))
    return pem_path, jwks_path


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_pem: bytes

    @classmethod
    def from_files(cls, pem_path: Path) -> "SigningKey":
        return cls(kid=(pem_path.parent / "jwt-kid").read_text().strip(), private_pem=pem_path.read_bytes())

    def mint(
        self,
        subject: str,
        scopes: list[str] | set[str] | tuple[str, ...],
        *,
        region: str | None = None,
        ttl_s: int = 600,
        issuer: str = "pilar-gateway",
        audience: str = "pilar",
        **extra: Any,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": issuer,
            "aud": audience,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_s,
            "jti": uuid.uuid4().hex,
            "scope": " ".join(sorted(scopes)),
            **extra,
        }
        if region:
            claims["region"] = region
        return jwt.encode(claims, self.private_pem, algorithm="EdDSA", headers={"kid": self.kid})
