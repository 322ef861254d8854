"""The run command's promise: every service and the gateway start as processes under
uvicorn against the real stack, migrate, report ready, and refuse calls without a token."""

from __future__ import annotations

import httpx
import pytest

from pilar_devstack import PLATFORM
from pilar_kernel.auth import SigningKey

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def platform(platform_stack):
    return platform_stack


@pytest.mark.parametrize("name", [c.name for c in PLATFORM])
def test_component_is_ready_and_guards_its_api(platform, name):
    base = platform.url(name)
    ready = httpx.get(f"{base}/ready", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "migrations": "ok", "kafka": "ok"}
    assert httpx.get(f"{base}/health").json()["service"] == name
    assert "pilar_http_requests_total" in httpx.get(f"{base}/metrics").text

    denied = httpx.get(f"{base}/v1/whoami")
    assert denied.status_code == 401 and denied.headers["content-type"] == "application/problem+json"

    key = SigningKey.from_files(platform.secrets_dir / "jwt-private.pem")
    token = key.mint("dinsos-sidoarjo", ["registry:read"], region="35.15")
    me = httpx.get(f"{base}/v1/whoami", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text
    assert me.json() == {"subject": "dinsos-sidoarjo", "scopes": ["registry:read"], "region": "35.15"}
