"""Identity: client-credentials tokens, the JWKS services verify with, key rotation, secret
rotation, revocation, the admin API and command, and the development demo clients."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from urllib.parse import quote

import jwt
import pytest

from pilar_kernel.auth import SigningKey, TokenVerifier, write_dev_keys
from pilar_kernel.problems import Unauthorized

from .conftest import GATEWAY_DIR

pytestmark = pytest.mark.stack


async def service_verifier(gw) -> TokenVerifier:
    """Verify as a service would: with the JWKS the gateway publishes."""
    jwks = (await gw.http.get("/.well-known/jwks.json")).json()
    return TokenVerifier(jwks=jwks, issuer="pilar-gateway", audience="pilar")


async def test_client_credentials_tokens_verify_with_the_published_keys(run_gateway):
    async with run_gateway() as gw:
        secret = await gw.add_client("dinsos-sidoarjo", ["registry:read", "registry:write", "gateway:webhooks"], region="35.15")

        # HTTP Basic (client id and secret form-encoded first, RFC 6749 2.3.1)
        basic = base64.b64encode(f"{quote('dinsos-sidoarjo')}:{quote(secret)}".encode()).decode()
        response = await gw.http.post("/oauth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"})
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] == 600
        assert body["scope"] == "gateway:webhooks registry:read registry:write"

        principal = await (await service_verifier(gw)).verify(body["access_token"])
        assert principal.subject == "dinsos-sidoarjo" and principal.region == "35.15"
        header = jwt.get_unverified_header(body["access_token"])
        assert header["alg"] == "EdDSA" and header["kid"] in {k["kid"] for k in gw.gateway.keyring.jwks()["keys"]}

        # client id and secret in the form, scope narrowed
        response = await gw.http.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "dinsos-sidoarjo",
                                                           "client_secret": secret, "scope": "registry:read"})
        assert response.status_code == 200 and response.json()["scope"] == "registry:read"
        me = await gw.http.get("/v1/whoami", headers={"Authorization": f"Bearer {response.json()['access_token']}"})
        assert me.json() == {"subject": "dinsos-sidoarjo", "scopes": ["registry:read"], "region": "35.15"}


async def test_token_endpoint_refusals_are_oauth_errors(run_gateway):
    async with run_gateway() as gw:
        secret = await gw.add_client("bank-jatim", ["disbursement:read"])
        cases = [
            ({"grant_type": "password", "client_id": "bank-jatim", "client_secret": secret}, None, 400, "unsupported_grant_type"),
            ({"grant_type": "client_credentials"}, ("bank-jatim", "wrong"), 401, "invalid_client"),
            ({"grant_type": "client_credentials"}, ("nobody", secret), 401, "invalid_client"),
            ({"grant_type": "client_credentials", "scope": "registry:pii"}, ("bank-jatim", secret), 400, "invalid_scope"),
            ({"grant_type": "client_credentials", "client_id": "bank-jatim", "client_secret": secret}, ("bank-jatim", secret), 400,
             "invalid_request"),
        ]
        for form, auth, status, error in cases:
            response = await gw.http.post("/oauth/token", data=form, auth=auth)
            assert response.status_code == status, (form, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["error"] == error
        wrong = await gw.http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("bank-jatim", "wrong"))
        assert wrong.headers["www-authenticate"].startswith("Basic")
        as_json = await gw.http.post("/oauth/token", json={"grant_type": "client_credentials"})
        assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"


async def test_a_first_party_app_names_the_officer_and_others_may_not(run_gateway):
    async with run_gateway() as gw:
        app_secret = await gw.add_client("shelter-app", ["shelter:caseworker", "gateway:act-for-users"])
        bank_secret = await gw.add_client("bank-jatim", ["disbursement:read"])
        form = {"grant_type": "client_credentials", "scope": "shelter:caseworker", "user": "cw.rina@uptd-psbr"}
        response = await gw.http.post("/oauth/token", data=form, auth=("shelter-app", app_secret))
        assert response.status_code == 200, response.text
        principal = await (await service_verifier(gw)).verify(response.json()["access_token"])
        assert principal.subject == "shelter-app" and principal.claims["user"] == "cw.rina@uptd-psbr"
        assert principal.scopes == frozenset({"shelter:caseworker"})

        no_user = await gw.http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("shelter-app", app_secret))
        assert "user" not in jwt.decode(no_user.json()["access_token"], options={"verify_signature": False})

        refused = await gw.http.post("/oauth/token", data={"grant_type": "client_credentials", "user": "someone"},
                                     auth=("bank-jatim", bank_secret))
        assert refused.status_code == 400 and "gateway:act-for-users" in refused.json()["error_description"]
        bad = await gw.http.post("/oauth/token", data={**form, "user": "x y"}, auth=("shelter-app", app_secret))
        assert bad.status_code == 400 and bad.json()["error_description"].startswith("user:")


async def test_key_rotation_keeps_old_tokens_valid_and_retires_the_oldest(run_gateway):
    async with run_gateway() as gw:
        admin_secret = await gw.add_client("ops", ["gateway:admin"])
        admin = {"Authorization": f"Bearer {await gw.token('ops', admin_secret)}"}
        secret = await gw.add_client("dinsos-jatim", ["registry:read"])
        first_token = await gw.token("dinsos-jatim", secret)
        first_kid = jwt.get_unverified_header(first_token)["kid"]

        rotated = await gw.http.post("/v1/admin/keys/rotate", json={"activate_in_s": 0}, headers=admin)
        assert rotated.status_code == 201, rotated.text
        second_kid = rotated.json()["kid"]
        second_token = await gw.token("dinsos-jatim", secret)
        assert jwt.get_unverified_header(second_token)["kid"] == second_kid, "new tokens are signed with the new key"
        published = {k["kid"] for k in (await gw.http.get("/.well-known/jwks.json")).json()["keys"]}
        assert published == {first_kid, second_kid}, "current and previous are both published"
        verifier = await service_verifier(gw)
        for token in (first_token, second_token):
            assert (await verifier.verify(token)).subject == "dinsos-jatim"
        assert (await gw.http.get("/v1/whoami", headers={"Authorization": f"Bearer {first_token}"})).status_code == 200

        # A pending key is published before it signs.
        pending = await gw.http.post("/v1/admin/keys/rotate", json={"activate_in_s": 3600}, headers=admin)
        third_kid = pending.json()["kid"]
        assert pending.json()["state"] == "pending"
        assert third_kid in {k["kid"] for k in (await gw.http.get("/.well-known/jwks.json")).json()["keys"]}
        assert jwt.get_unverified_header(await gw.token("dinsos-jatim", secret))["kid"] == second_kid

        # Rotating again retires the first key: its tokens (the admin's too) are refused from then on.
        await gw.http.post("/v1/admin/keys/rotate", json={"activate_in_s": 0}, headers=admin)
        assert (await gw.http.get("/v1/admin/keys", headers=admin)).status_code == 401
        admin = {"Authorization": f"Bearer {await gw.token('ops', admin_secret)}"}
        states = {k["kid"]: k["state"] for k in (await gw.http.get("/v1/admin/keys", headers=admin)).json()}
        assert states[first_kid] == "retired" and states[second_kid] == "previous" and states[third_kid] == "pending"
        assert first_kid not in {k["kid"] for k in (await gw.http.get("/.well-known/jwks.json")).json()["keys"]}
        refused = await gw.http.get("/v1/whoami", headers={"Authorization": f"Bearer {first_token}"})
        assert refused.status_code == 401


async def test_secret_rotation_and_revocation_take_effect_at_once(run_gateway):
    async with run_gateway() as gw:
        admin = await gw.bearer("ops", ["gateway:admin"])
        created = await gw.http.post("/v1/admin/clients", headers=admin, json={
            "client_id": "dinsos-malang", "name": "Dinsos Kab. Malang", "scopes": ["registry:read"], "region": "35.07"})
        assert created.status_code == 201, created.text
        old_secret = created.json()["client_secret"]
        assert "secret_hash" not in created.json()
        duplicate = await gw.http.post("/v1/admin/clients", headers=admin, json={
            "client_id": "dinsos-malang", "name": "again", "scopes": ["registry:read"]})
        assert duplicate.status_code == 409

        token = await gw.token("dinsos-malang", old_secret)
        rotated = await gw.http.post("/v1/admin/clients/dinsos-malang/rotate-secret", headers=admin)
        new_secret = rotated.json()["client_secret"]
        refused = await gw.http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("dinsos-malang", old_secret))
        assert refused.status_code == 401, "the old secret stops working"
        await gw.token("dinsos-malang", new_secret)
        bearer = {"Authorization": f"Bearer {token}"}
        assert (await gw.http.get("/v1/whoami", headers=bearer)).status_code == 200, "issued tokens run out on their own"

        revoked = await gw.http.post("/v1/admin/clients/dinsos-malang/revoke", headers=admin)
        assert revoked.json()["status"] == "revoked"
        after = await gw.http.get("/v1/whoami", headers=bearer)
        assert after.status_code == 401 and "revoked" in after.json()["detail"]
        no_token = await gw.http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("dinsos-malang", new_secret))
        assert no_token.status_code == 401


async def test_admin_api_needs_the_admin_scope_and_validates(run_gateway):
    async with run_gateway() as gw:
        agency = await gw.bearer("dinsos-gresik", ["registry:read"], region="35.25")
        assert (await gw.http.get("/v1/admin/clients", headers=agency)).status_code == 403
        assert (await gw.http.get("/v1/admin/clients")).status_code == 401
        admin = await gw.bearer("ops", ["gateway:admin"])
        bad = await gw.http.post("/v1/admin/clients", headers=admin, json={
            "client_id": "Bad Id", "name": "x", "scopes": ["registry"], "region": "36.01"})
        assert bad.status_code == 422
        assert {e["field"] for e in bad.json()["errors"]} == {"body.client_id", "body.region", "body.scopes.0"}
        bad_scope = await gw.http.post("/v1/admin/clients", headers=admin, json={"client_id": "ok-id", "name": "x", "scopes": ["registry"]})
        assert bad_scope.status_code == 422 and bad_scope.json()["errors"][0]["field"] == "body.scopes.0"
        changed = await gw.http.patch("/v1/admin/clients/dinsos-gresik", headers=admin, json={
            "scopes": ["registry:read", "disaster:read"], "rate_limit": {"per_second": 5, "burst": 10}})
        assert changed.status_code == 200
        assert changed.json()["scopes"] == ["disaster:read", "registry:read"]
        assert changed.json()["rate_limit"] == {"per_second": 5.0, "burst": 10}
        listed = {c["client_id"] for c in (await gw.http.get("/v1/admin/clients", headers=admin)).json()}
        assert {"dinsos-gresik", "ops"} <= listed


async def test_admin_command_and_other_processes_changes_reach_a_running_gateway(run_gateway, gateway_database, eventually, capsys):
    from gateway import admin
    from gateway.settings import Settings

    url = gateway_database()
    settings = Settings(env="test", database_url=url)

    async def command(*args: str) -> tuple[int, str, str]:
        code = await admin.run(admin._parser().parse_args(args), settings)
        out, err = capsys.readouterr()
        return code, out, err

    async with run_gateway(database_url=url) as gw:
        # Once as a real process, as an operator runs it.
        created = subprocess.run(
            [sys.executable, "-m", "gateway.admin", "create-client", "disdik-jatim", "--name", "Test agency",
             "--scopes", "registry:read,disaster:read"],
            cwd=GATEWAY_DIR, env={**os.environ, "PILAR_DATABASE_URL": url, "PILAR_ENV": "test"}, capture_output=True, text=True,
            timeout=120,
        )
        assert created.returncode == 0, created.stderr
        secret = json.loads(created.stdout)["client_secret"]
        assert secret not in created.stderr
        token = await gw.token("disdik-jatim", secret)  # the gateway reads the client from the database
        bearer = {"Authorization": f"Bearer {token}"}
        assert (await gw.http.get("/v1/whoami", headers=bearer)).status_code == 200

        code, listed, _ = await command("list")
        assert code == 0 and "disdik-jatim" in listed and secret not in listed

        assert (await command("revoke", "disdik-jatim"))[0] == 0

        async def refused() -> bool:
            return (await gw.http.get("/v1/whoami", headers=bearer)).status_code == 401

        await eventually(refused, timeout=5)  # within the directory refresh, not the token lifetime

        code, _, err = await command("rotate-secret", "nobody")
        assert code == 1 and "no client nobody" in err

        code, out, _ = await command("rotate-key", "--activate-in", "0")
        kid = json.loads(out[out.rindex("{\n"):])["kid"]  # after the app's own log lines

        async def published() -> bool:
            return kid in {k["kid"] for k in (await gw.http.get("/.well-known/jwks.json")).json()["keys"]}

        await eventually(published, timeout=5)
        code, out, _ = await command("keys")
        assert f"{kid}" in out and "current" in out


async def test_development_key_file_and_demo_clients(run_gateway, tmp_path):
    pem, jwks_file = write_dev_keys(tmp_path)
    file_key = SigningKey.from_files(pem)
    async with run_gateway(env="development", jwt_private_key_file=str(pem), jwks_file=str(jwks_file), seed_demo_clients=True) as gw:
        # The local stack's key signs, so services reading that JWKS file accept gateway tokens.
        demo = json.loads((tmp_path / "demo-clients.json").read_text())
        assert set(demo) == {"pilar-admin", "dinsos-jatim", "dinsos-sidoarjo", "dinsos-bojonegoro", "shelter-app", "bank-jatim"}
        assert oct((tmp_path / "demo-clients.json").stat().st_mode & 0o777) == "0o600"
        token = await gw.token("dinsos-sidoarjo", demo["dinsos-sidoarjo"]["client_secret"])
        assert jwt.get_unverified_header(token)["kid"] == file_key.kid
        service = TokenVerifier(jwks_file=jwks_file, issuer="pilar-gateway", audience="pilar")
        assert (await service.verify(token)).region == "35.15"

        # Tokens minted with that key for a known client pass; for an unknown one, not.
        ok = file_key.mint("dinsos-jatim", ["registry:read"])
        assert (await gw.http.get("/v1/whoami", headers={"Authorization": f"Bearer {ok}"})).status_code == 200
        stranger = file_key.mint("someone-else", ["registry:read"])
        assert (await gw.http.get("/v1/whoami", headers={"Authorization": f"Bearer {stranger}"})).status_code == 401

        # A rotation in development also updates the JWKS file the services read.
        admin = {"Authorization": f"Bearer {await gw.token('pilar-admin', demo['pilar-admin']['client_secret'])}"}
        kid = (await gw.http.post("/v1/admin/keys/rotate", json={"activate_in_s": 0}, headers=admin)).json()["kid"]
        assert {k["kid"] for k in json.loads(jwks_file.read_text())["keys"]} == {file_key.kid, kid}
        fresh = await gw.token("bank-jatim", demo["bank-jatim"]["client_secret"])
        reloaded = TokenVerifier(jwks_file=jwks_file, issuer="pilar-gateway", audience="pilar")
        assert (await reloaded.verify(fresh)).subject == "bank-jatim"
        with pytest.raises(Unauthorized):
            await reloaded.verify(SigningKey(kid="other", private_pem=file_key.private_pem).mint("x", []))
        # An older version's demo client with other scopes is brought up to date at the next start.
        await gw.http.patch("/v1/admin/clients/bank-jatim", json={"scopes": ["disbursement:read"]}, headers=admin)
    # A restart keeps the same demo secrets (nothing rotated behind the developer's back).
    before = json.loads((tmp_path / "demo-clients.json").read_text())
    async with run_gateway(database_url=gw.app.state.settings.database_url, env="development", jwt_private_key_file=str(pem),
                           jwks_file=str(jwks_file), seed_demo_clients=True) as again:
        assert json.loads((tmp_path / "demo-clients.json").read_text()) == before
        bank = (await again.http.get("/v1/admin/clients/bank-jatim", headers=admin)).json()
        assert "disbursement:bank-callback" in bank["scopes"]


async def test_malformed_identities_are_4xx_not_server_errors(run_gateway):
    """A client id no client can have (NUL, spaces, too long) never reaches the database."""
    async with run_gateway() as gw:
        for client_id in ("a\u0000b", "Bad Id", "x" * 300):
            response = await gw.http.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": client_id,
                                                                "client_secret": "s"})
            assert response.status_code == 401 and response.json()["error"] == "invalid_client", response.text
        admin = await gw.bearer("ops-malformed", ["gateway:admin"])
        bad = await gw.http.get("/v1/admin/clients/Bad%20Id", headers=admin)
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "path.client_id", bad.text
        scope = await gw.http.post("/v1/admin/clients", headers=admin, json={"client_id": "ok-id2", "name": "x", "scopes": ["a:b\u0000"]})
        assert scope.status_code == 422, scope.text
