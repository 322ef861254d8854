"""The read path of one person: lookup by NIK or provisional id, and get by id.

These are the registry's busiest requests (every service and partner checks a NIK here), so
they skip the ORM session. One prepared query returns the person with the current household,
on a small asyncpg pool of the registry's own:

* one round trip per request. The request session would send ``SELECT 1`` (pool pre-ping),
  ``BEGIN``, the person query, the household query and ``COMMIT``;
* no ``BEGIN``/``COMMIT`` and no pool pre-ping. A single ``SELECT`` is atomic on its own. A
  connection the server has closed is noticed by asyncpg and replaced on the next acquire;
  the rare one that is not (a dropped network path) fails the query, and the read is then
  tried once more on fresh connections;
* no reset query when a connection goes back to the pool: these connections run only plain
  ``SELECT``s, so they never change session state;
* rows are plain records, not ORM objects (no identity map, no change tracking).

Writes, and the audit row of a PII reveal, still go through the ORM session.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg

from pilar_kernel.auth import Principal
from pilar_kernel.db import asyncpg_dsn
from pilar_kernel.problems import NotFound

from .. import access

# Every column a PersonOut needs, with the current household (if any) joined in.
_SELECT = """
SELECT p.id, p.nik_enc, p.phone_enc, p.provisional_id, p.name, p.birth_place, p.birth_date, p.sex,
       p.village_code, p.district_code, p.regency_code, p.rt, p.rw, p.street, p.disability_type,
       p.disability_severity, p.ppks, p.decile, p.decile_date, p.occupation, p.employer, p.status,
       p.deceased_date, p.merged_into, p.domicile_note, p.version, p.created_at, p.updated_at,
       m.household_id, h.kk_number, m.relationship
FROM person p
LEFT JOIN household_member m ON m.person_id = p.id AND m.valid_to IS NULL
LEFT JOIN household h ON h.id = m.household_id
WHERE p.{key} = $1
"""
BY_ID = _SELECT.format(key="id")
BY_NIK_HASH = _SELECT.format(key="nik_hash")
BY_PROVISIONAL_ID = _SELECT.format(key="provisional_id")

# Errors that mean "this connection is gone", after which one more try is safe for a read.
_CONNECTION_LOST = (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError, ConnectionError, OSError)


async def _no_reset(connection: asyncpg.Connection) -> None:
    """Pool ``reset`` hook: nothing to undo (see the module docstring)."""


class PersonReader:
    """Single-person reads on an asyncpg pool, opened on first use and closed at shutdown."""

    def __init__(self, database_url: str, *, max_size: int = 10) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    # min_size=0: the service starts even while the database is still down,
                    # as it does with its SQLAlchemy engine.
                    self._pool = await asyncpg.create_pool(
                        self._dsn, min_size=0, max_size=self._max_size, reset=_no_reset,
                        server_settings={"application_name": "registry-reads"},
                    )  # fmt: skip
        return self._pool

    async def fetch(self, query: str, value: Any) -> asyncpg.Record | None:
        pool = await self._get_pool()
        try:
            return await pool.fetchrow(query, value)
        except _CONNECTION_LOST:
            # The pool may hold more connections from before the outage: retire them all.
            pool.expire_connections()
            return await pool.fetchrow(query, value)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def by_id(self, principal: Principal, person_id: uuid.UUID) -> asyncpg.Record:
        return _visible(principal, await self.fetch(BY_ID, person_id))

    async def by_nik_hash(self, principal: Principal, nik_hash: str) -> asyncpg.Record:
        return _visible(principal, await self.fetch(BY_NIK_HASH, nik_hash))

    async def by_provisional_id(self, principal: Principal, provisional_id: str) -> asyncpg.Record:
        return _visible(principal, await self.fetch(BY_PROVISIONAL_ID, provisional_id))


def _visible(principal: Principal, row: asyncpg.Record | None) -> asyncpg.Record:
    """The row, if it exists and lies in the caller's region; otherwise 404, as for the ORM path."""
    if row is None:
        raise NotFound("no such person")
    access.ensure_region(principal, row["regency_code"])
    return row

