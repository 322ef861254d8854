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
