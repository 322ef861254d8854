"""Encryption at rest and blind indexes for the registry's personal data.

NIK and phone are stored AES-GCM encrypted (key id kept in the value, for rotation), bound to
their person id as associated data so a value cannot be copied to another row. Exact lookup
uses keyed HMACs: ``nik_hash`` (platform-wide key, also carried in events) and a phone index
(registry key).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from pilar_kernel.nik import normalise_nik
from pilar_kernel.pii import BlindIndex, PiiCipher, nik_hash

from .persons.domain import normalise_phone


@dataclass(frozen=True)
class Privacy:
    cipher: PiiCipher
    nik_key: str
    phone_index: BlindIndex

    @classmethod
    def from_settings(cls, settings) -> "Privacy":
        return cls(
            cipher=PiiCipher.from_env_value(settings.pii_key),
            nik_key=settings.nik_hash_key,
            phone_index=BlindIndex(settings.index_key, field="phone"),
        )

    def hash_nik(self, nik: str) -> str:
        return nik_hash(normalise_nik(nik), self.nik_key)

    def index_phone(self, phone: str) -> str:
        return self.phone_index.of(normalise_phone(phone))

    def seal(self, value: str, person_id: uuid.UUID) -> bytes:
        return self.cipher.encrypt(value, aad=person_id.bytes)

    def open(self, blob: bytes | None, person_id: uuid.UUID) -> str | None:
        return None if blob is None else self.cipher.decrypt(blob, aad=person_id.bytes)


async def _privacy(request: Request) -> Privacy:
    # async on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a thread
    # hand-off on every request for what is an attribute read.
    return request.app.state.privacy


PrivacyDep = Annotated[Privacy, Depends(_privacy)]
