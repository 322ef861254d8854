"""Encryption at rest of the personal data a return case holds (name, health note, family
contact) and the blind index that still lets a repeat claimant be recognised by name and
birth date. The NIK is not here at all: only its platform hash is kept."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from pilar_kernel.pii import BlindIndex, PiiCipher

from .domain import normalise_name


@dataclass(frozen=True)
class Privacy:
    cipher: PiiCipher
    identity: BlindIndex

    @classmethod
    def from_settings(cls, settings) -> "Privacy":
        return cls(cipher=PiiCipher.from_env_value(settings.pii_key), identity=BlindIndex(settings.index_key, field="stranded-identity"))

    def seal(self, value: str | None, case_id: uuid.UUID) -> bytes | None:
        # Bound to the case: a value copied onto another row does not decrypt.
        return None if value is None else self.cipher.encrypt(value, aad=case_id.bytes)

    def open(self, blob: bytes | None, case_id: uuid.UUID) -> str | None:
        return None if blob is None else self.cipher.decrypt(blob, aad=case_id.bytes)

    def identity_index(self, name: str, birth_date: date | None) -> str | None:
        """Digest of the normalised name with the birth date; none without a birth date,
        since a name alone matches too many people."""
        if birth_date is None:
            return None
        return self.identity.of(f"{normalise_name(name)}|{birth_date.isoformat()}")
