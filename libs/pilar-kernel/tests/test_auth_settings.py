"""Token verification, scopes and region rules; settings refusing default secrets."""

import time

import pytest

from pilar_kernel.auth import Principal, TokenVerifier
from pilar_kernel.problems import Forbidden, Unauthorized
from pilar_kernel.settings import ServiceSettings
from pilar_kernel.testing import TestKeys

KEYS = TestKeys()


def verifier(jwks=None, **kw):
    return TokenVerifier(jwks=jwks or KEYS.jwks, issuer="pilar-gateway", audience="pilar", **kw)


async def test_valid_token_gives_principal_with_scopes_and_region():
    p = await verifier().verify(KEYS.token("dinsos-surabaya", ["registry:read"], region="35.78"))
    assert p.subject == "dinsos-surabaya" and p.scopes == {"registry:read"} and p.region == "35.78"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda t: t[:-4] + ("AAAA" if not t.endswith("AAAA") else "BBBB"), "invalid"),
        (lambda t: "not-a-token", "malformed"),
    ],
)
async def test_tampered_or_garbage_tokens_are_refused(mutate, message):
    with pytest.raises(Unauthorized, match=message):
        await verifier().verify(mutate(KEYS.token("c", ["x"])))


async def test_expired_wrong_audience_and_unknown_key_are_refused():
    with pytest.raises(Unauthorized, match="expired"):
        await verifier(leeway_s=0).verify(KEYS.token("c", ["x"], ttl_s=-5))
    with pytest.raises(Unauthorized, match="(?i)audience"):
        await verifier().verify(KEYS.token("c", ["x"], audience="someone-else"))
    other = TestKeys()
    with pytest.raises(Unauthorized, match="unknown key"):
        await verifier().verify(other.token("c", ["x"]))


class _Clock:
    """Stands in for the time module inside pilar_kernel.auth, shifted by ``ahead`` seconds."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def time(self) -> float:
        return time.time() + self.ahead

    def monotonic(self) -> float:
        return time.monotonic() + self.ahead


async def test_a_verified_token_is_cached_until_it_expires(monkeypatch):
    import pilar_kernel.auth as auth

    clock = _Clock()
    monkeypatch.setattr(auth, "time", clock)
    decoded = []
    real_decode = auth.jwt.decode
    monkeypatch.setattr(auth.jwt, "decode", lambda *a, **kw: decoded.append(1) or real_decode(*a, **kw))
    v = verifier(leeway_s=0)
    token = KEYS.token("c", ["x"], ttl_s=60)
    first = await v.verify(token)
    assert await v.verify(token) is first and len(decoded) == 1  # the second call is answered from the cache
    clock.ahead = 61  # past exp, by this module's clock: verified in full again
    await v.verify(token)
    assert len(decoded) == 2


async def test_a_cached_token_of_a_retired_key_is_refused_after_the_keys_reload(monkeypatch, tmp_path):
    import json

    import pilar_kernel.auth as auth

    clock = _Clock()
    monkeypatch.setattr(auth, "time", clock)
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(KEYS.jwks))
    v = TokenVerifier(jwks_file=jwks_file, issuer="pilar-gateway", audience="pilar")
    token = KEYS.token("c", ["x"], ttl_s=3600)
    assert (await v.verify(token)).subject == "c"
    jwks_file.write_text(json.dumps(TestKeys().jwks))  # the key is retired
    assert (await v.verify(token)).subject == "c"  # until the keys are reloaded (every 5 minutes)
    clock.ahead = 301
    with pytest.raises(Unauthorized, match="unknown key"):
        await v.verify(token)


def test_region_rule_and_scope_check():
    office = Principal("dinsos-sidoarjo", frozenset({"registry:read"}), region="35.15")
    province = Principal("dinsos-jatim", frozenset({"registry:read"}))
    assert office.may_access_region("35.15.14.2001")
    assert office.may_access_region("35.15")
    assert not office.may_access_region("35.16.01")
    assert not office.may_access_region("35.150")  # a prefix of digits is not a region
    assert not office.may_access_region(None)
    assert province.may_access_region("35.78")
    office.require("registry:read")
    with pytest.raises(Forbidden, match="registry:write"):
        office.require("registry:write")


def test_production_refuses_default_secrets(monkeypatch):
    monkeypatch.setenv("PILAR_ENV", "production")
    with pytest.raises(ValueError, match="PILAR_NIK_HASH_KEY"):
        ServiceSettings()
    monkeypatch.setenv("PILAR_NIK_HASH_KEY", "a-real-secret-from-the-vault")
    monkeypatch.setenv("PILAR_PII_KEY", "11" * 32)
    monkeypatch.setenv("PILAR_JWKS_URL", "http://gateway/.well-known/jwks.json")
    assert ServiceSettings().env == "production"


def test_development_accepts_defaults(monkeypatch):
    monkeypatch.setenv("PILAR_ENV", "development")
    assert ServiceSettings().nik_hash_key


def test_minted_token_lifetime_is_short_by_default():
    import jwt

    claims = jwt.decode(KEYS.token("c", ["x"]), options={"verify_signature": False})
    assert 0 < claims["exp"] - int(time.time()) <= 600
