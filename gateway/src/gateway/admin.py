"""Admin command for clients and keys: ``python -m gateway.admin <command>``.

It works on the gateway's database directly (``PILAR_DATABASE_URL``, and ``PILAR_PII_KEY``
for the key store), so it also works while no gateway runs. Running gateways pick changes
up within ``PILAR_DIRECTORY_REFRESH_S`` (5 s); a revoked client's tokens stop there.

    create-client ID --name NAME --scopes "registry:read registry:write" [--region 35.15]
                     [--rate PER_SECOND] [--burst N]
    rotate-secret ID          print a new secret (the old one stops working)
    revoke ID                 revoke for good (also disables its webhooks)
    list                      every client, without secrets
    rotate-key [--activate-in SECONDS]
    keys                      signing keys and their state

Secrets are printed on standard output once, for the operator to hand over; never logged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import structlog

from pilar_kernel.db import make_engine, make_session_factory
from pilar_kernel.pii import PiiCipher
from pilar_kernel.problems import Problem

from . import clients, keys
from .settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gateway.admin", description="Manage the gateway's clients and signing keys.")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create-client", help="register an agency system and print its secret")
    create.add_argument("client_id")
    create.add_argument("--name", required=True)
    create.add_argument("--scopes", required=True, help="space- or comma-separated")
    create.add_argument("--region", help="a regency/city code such as 35.15; omit for province-wide")
    create.add_argument("--rate", type=float, help="requests per second (default: the gateway's)")
    create.add_argument("--burst", type=int, help="bucket size (default: the gateway's)")
    for name, text in (("rotate-secret", "print a new secret for a client"), ("revoke", "revoke a client for good")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("client_id")
    sub.add_parser("list", help="every client (no secrets)")
    rotate = sub.add_parser("rotate-key", help="add a new signing key")
    rotate.add_argument("--activate-in", type=float, help="seconds before it signs (default PILAR_KEY_ACTIVATION_DELAY_S)")
    sub.add_parser("keys", help="signing keys and their state")
    return parser


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    engine = make_engine(settings.database_url, pool_size=1)
    sessions = make_session_factory(engine)
    cipher = PiiCipher.from_env_value(settings.pii_key)
    try:
        async with sessions() as session, session.begin():
            if args.command == "create-client":
                scopes = [s for s in args.scopes.replace(",", " ").split() if s]
                row, secret = await clients.create(
                    session, client_id=args.client_id, name=args.name, scopes=scopes, region=args.region,
                    rate_per_s=args.rate, rate_burst=args.burst,
                )
                print(_json({**clients.public_view(row), "client_secret": secret}))
            elif args.command == "rotate-secret":
                row, secret = await clients.rotate_secret(session, args.client_id)
                print(_json({"client_id": row.client_id, "client_secret": secret}))
            elif args.command == "revoke":
                row = await clients.revoke(session, args.client_id)
                print(_json(clients.public_view(row)))
            elif args.command == "list":
                rows = await clients.list_rows(session)
                for r in rows:
                    view = clients.public_view(r)
                    print(f"{view['client_id']:<28} {view['status']:<8} {view['region'] or 'province':<9} {' '.join(view['scopes'])}")
            elif args.command == "rotate-key":
                delay = settings.key_activation_delay_s if args.activate_in is None else args.activate_in
                kid, active_from = await keys.rotate(session, cipher, delay)
                print(_json({"kid": kid, "active_from": active_from}))
            elif args.command == "keys":
                for k in await keys.list_keys(session):
                    print(f"{k['kid']:<18} {k['state']:<9} {k['origin']:<10} active from {k['active_from']:%Y-%m-%d %H:%M:%S%z}")
        return 0
    except Problem as exc:
        print(f"error: {exc.detail or exc.title}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Log lines go to standard error; standard output carries only the command's answer.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    return asyncio.run(run(args, Settings()))


if __name__ == "__main__":
    raise SystemExit(main())
