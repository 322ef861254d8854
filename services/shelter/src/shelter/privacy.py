"""Encryption at rest of survivor data (AES-GCM with the kernel's :class:`PiiCipher`).

Every sealed value is bound to its row id and field name as associated data, so a
ciphertext copied onto another case, or into another column, fails to open.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from pilar_kernel.pii import PiiCipher


@dataclass(frozen=True)
class Sealer:
    cipher: PiiCipher

    @classmethod
    def from_settings(cls, settings) -> "Sealer":
        return cls(PiiCipher.from_env_value(settings.pii_key))

    @staticmethod
    def _aad(row_id: uuid.UUID, field: str) -> bytes:
        return row_id.bytes + b"/" + field.encode()

    def seal(self, value: str | None, row_id: uuid.UUID, field: str) -> bytes | None:
        return None if value is None else self.cipher.encrypt(value, aad=self._aad(row_id, field))

    def open(self, blob: bytes | None, row_id: uuid.UUID, field: str) -> str | None:
        return None if blob is None else self.cipher.decrypt(blob, aad=self._aad(row_id, field))

    def seal_json(self, value: Any, row_id: uuid.UUID, field: str) -> bytes:
        return self.cipher.encrypt(json.dumps(value, default=str, sort_keys=True), aad=self._aad(row_id, field))

    def open_json(self, blob: bytes, row_id: uuid.UUID, field: str) -> Any:
        return json.loads(self.cipher.decrypt(blob, aad=self._aad(row_id, field)))


def _sealer(request: Request) -> Sealer:
    return request.app.state.sealer


SealerDep = Annotated[Sealer, Depends(_sealer)]
