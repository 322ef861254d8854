"""Shared by the registry's tests: the test signing keys and the migration runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pilar_kernel.testing import TestKeys

SERVICE_DIR = Path(__file__).resolve().parents[1]
KEYS = TestKeys()


def migrate(url: str) -> None:
    subprocess.run([sys.executable, "-m", "pilar_kernel.prestart"], cwd=SERVICE_DIR, env={**os.environ, "PILAR_DATABASE_URL": url},
                   check=True, capture_output=True)
