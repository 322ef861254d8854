"""OAuth2 client credentials (RFC 6749 section 4.4) and the public keys (JWKS).

``POST /oauth/token`` takes a form with ``grant_type=client_credentials`` and the client's
id and secret by HTTP Basic or in the form; ``scope`` may narrow the token to part of the
client's scopes. A trusted first-party application (a client holding
``gateway:act-for-users``, such as the shelter caseworkers' app or the officers' console)
signs its own staff in and may name the officer in ``user``: the token then carries a
``user`` claim, which the services use for four-eyes rules, need-to-know and audit.
Other clients may not name a user. Errors are problem+json that also carry OAuth's ``error`` and
``error_description`` members, so OAuth client libraries understand them.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import parse_qs, unquote_plus

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from pilar_kernel.db import SessionDep
from pilar_kernel.problems import Problem, problem_responses

from . import clients
from .schemas import CLIENT_ID_PATTERN, TokenOut
from .state import gateway_of

router = APIRouter(tags=["identity"])

FORM = "application/x-www-form-urlencoded"
MAX_FORM_BYTES = 8 * 1024
TOKEN_RATE_PER_S, TOKEN_BURST = 1.0, 10
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
ACT_FOR_USERS = "gateway:act-for-users"
USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")


class OAuthError(Problem):
    """An RFC 6749 section 5.2 error as a problem."""

    def __init__(self, error: str, description: str, *, status: int = 400, headers: dict[str, str] | None = None) -> None:
        super().__init__(
            description,
            status=status,
            type=f"oauth-{error.replace('_', '-')}",
            title=f"OAuth error: {error}",
            headers={**NO_STORE, **(headers or {})},
            error=error,
            error_description=description,
        )


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError("invalid_client", "malformed Basic credentials", status=401,
                         headers={"WWW-Authenticate": 'Basic realm="pilar"'}) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError("invalid_client", "malformed Basic credentials", status=401, headers={"WWW-Authenticate": 'Basic realm="pilar"'})
    # RFC 6749 section 2.3.1: both parts are form-encoded before Basic encoding.
    return unquote_plus(client_id), unquote_plus(secret)


async def _form(request: Request) -> dict[str, str]:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM:
        raise OAuthError("invalid_request", f"send the parameters as {FORM}")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise OAuthError("invalid_request", "the form is too large")
    try:
        parsed = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise OAuthError("invalid_request", "the form is not UTF-8") from None
    repeated = [k for k, v in parsed.items() if len(v) > 1]
    if repeated:
        raise OAuthError("invalid_request", f"parameters given more than once: {', '.join(repeated)}")
    return {k: v[0] for k, v in parsed.items()}


TOKEN_FORM_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            FORM: {
                "schema": {
                    "type": "object",
                    "required": ["grant_type"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["client_credentials"]},
                        "scope": {"type": "string", "maxLength": 4000, "pattern": r"^[a-z0-9:\- ]*$",
                                  "description": "space-separated; a subset of the client's scopes"},
                        "user": {"type": "string", "pattern": USER_ID.pattern,
                                 "description": f"the officer acting (clients with {ACT_FOR_USERS} only)"},
                        "client_id": {"type": "string", "pattern": CLIENT_ID_PATTERN, "description": "when not sent by HTTP Basic"},
                        "client_secret": {"type": "string", "minLength": 1, "maxLength": 200, "description": "when not sent by HTTP Basic"},
                    },
                }
            }
        },
    }
}


@router.post(
    "/oauth/token",
    summary="Issue an access token (OAuth2 client credentials)",
    openapi_extra=TOKEN_FORM_SCHEMA,
    responses={
        200: {"description": "access_token, token_type, expires_in, scope", "model": TokenOut},
        # invalid_request, unsupported_grant_type, invalid_scope (400); invalid_client (401);
        # too many attempts for one client id (429, with Retry-After).
        **problem_responses(400, 401, 429),
    },
)
async def token(request: Request, session: SessionDep) -> JSONResponse:
    gateway = gateway_of(request)
    form = await _form(request)
    if form.get("grant_type") != "client_credentials":
        raise OAuthError("unsupported_grant_type", "only grant_type=client_credentials is supported")
    basic = _basic_credentials(request)
    in_form = form.get("client_id") is not None or form.get("client_secret") is not None
    if basic and in_form:
        raise OAuthError("invalid_request", "send the client credentials either by HTTP Basic or in the form, not both")
    client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
    if not client_id or not secret:
        raise OAuthError("invalid_client", "client credentials missing", status=401, headers={"WWW-Authenticate": 'Basic realm="pilar"'})
    if not re.match(CLIENT_ID_PATTERN, client_id) or len(secret) > 200:  # no such client can exist
        raise OAuthError("invalid_client", "unknown client, wrong secret or revoked client", status=401,
                         headers={"WWW-Authenticate": 'Basic realm="pilar"'} if basic else None)
    # Each attempt costs an argon2 verification: a few per second per client id is plenty
    # for a system that needs a token every few minutes, and stops guessing.
    gateway.gatekeeper.limiter.check(f"oauth-token:{client_id}", TOKEN_RATE_PER_S, TOKEN_BURST)
    row = await clients.authenticate(session, client_id, secret)
    if row is None:
        raise OAuthError("invalid_client", "unknown client, wrong secret or revoked client", status=401,
                         headers={"WWW-Authenticate": 'Basic realm="pilar"'} if basic else None)
    granted = set(row.scopes)
    requested = set(form.get("scope", "").split())
    if requested - granted:
        raise OAuthError("invalid_scope", f"not granted to this client: {' '.join(sorted(requested - granted))}")
    scopes = sorted(requested or granted)
    user = form.get("user")
    if user is not None:
        if ACT_FOR_USERS not in granted:
            raise OAuthError("invalid_request", f"only a client holding {ACT_FOR_USERS} may name a user")
        if not USER_ID.match(user):
            raise OAuthError("invalid_request", "user: 1-128 letters, digits or . _ @ -, starting with a letter or digit")
    gateway.directory.put(row)
    ttl = gateway.settings.token_ttl_s
    access_token = gateway.keyring.mint(row.client_id, scopes, region=row.region, ttl_s=ttl, user=user)
    return JSONResponse(
        {"access_token": access_token, "token_type": "Bearer", "expires_in": ttl, "scope": " ".join(scopes)},
        headers=NO_STORE,
    )


@router.get("/.well-known/jwks.json", summary="The public keys that verify the gateway's tokens")
async def jwks(request: Request) -> JSONResponse:
    # Short cache: a new key is published key_activation_delay_s before it signs.
    return JSONResponse(gateway_of(request).keyring.jwks(), headers={"Cache-Control": "public, max-age=30"})
