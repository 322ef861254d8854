"""Container health check: GET http://127.0.0.1:$SERVICE_PORT<path> (default /health) must answer 200.

The slim image has no curl, so this uses the standard library. Exit 0 = healthy, 1 = not.
"""

import os
import sys
import urllib.request


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else "/health"
    url = f"http://127.0.0.1:{os.environ.get('SERVICE_PORT', '8000')}{path}"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:  # noqa: S310 (fixed local URL)
            return 0 if response.status == 200 else 1
    except Exception as exc:  # connection refused, timeout, HTTP error: all unhealthy
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
