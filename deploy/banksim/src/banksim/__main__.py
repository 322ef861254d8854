"""Run the bank simulator: ``python -m banksim --port 8090`` (knobs: ``BANKSIM_*`` variables)."""

from __future__ import annotations

import argparse

import uvicorn


def main() -> None:
    parser = argparse.ArgumentParser(prog="banksim", description="Bank simulator for Pilar's local stack and tests (not a bank).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args()
    uvicorn.run("banksim.app:create_app", factory=True, host=args.host, port=args.port, log_level="warning",
                timeout_keep_alive=65)  # as our services: longer than the clients' idle expiry


if __name__ == "__main__":
    main()
