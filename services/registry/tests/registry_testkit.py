"""Shared by the registry's tests: the test signing keys and the migration runner."""

from __future__ import annotations

from pathlib import Path

from pilar_kernel.testing import TestKeys, migrate_database

SERVICE_DIR = Path(__file__).resolve().parents[1]
KEYS = TestKeys()


def migrate(url: str) -> None:
    migrate_database(SERVICE_DIR, url)
