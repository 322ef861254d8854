"""Protecting personal data: the platform NIK hash, field encryption and blind indexes.

- :func:`nik_hash` is the platform-wide lookup key for a person. The raw NIK never leaves
  the registry; events carry ``nik_hash`` instead, and a service that receives a NIK from
  a partner hashes it with the same key to find the person locally.
- :class:`PiiCipher` encrypts personal fields at rest with AES-256-GCM, with named keys
  so that keys can be rotated while old ciphertexts stay readable.
- :class:`BlindIndex` gives a keyed, deterministic digest of an encrypted field so it can
  still be looked up by exact value.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pilar_kernel.nik import normalise_nik

__all__ = ["BlindIndex", "PiiCipher", "PiiDecryptError", "nik_hash"]

KEY_LENGTH = 32
NONCE_LENGTH = 12
TAG_LENGTH = 16
FORMAT_VERSION = 1

# Key ids are stored in every ciphertext and written in "id:hex" lists, so keep them short
# and free of the separators ':' and ','.
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class PiiDecryptError(Exception):
    """A ciphertext could not be decrypted: malformed, altered, bound to another record, or
    made with a key this service does not hold."""


def _secret(key: str | bytes, what: str) -> bytes:
    # A str key is used as its UTF-8 bytes exactly as configured, not decoded from hex, so
    # every service handing over the same environment value gets the same key.
    raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if not raw:
        raise ValueError(f"{what} key must not be empty")
    return raw


def nik_hash(nik: str, key: str | bytes) -> str:
    """Return the platform lookup key for a NIK: HMAC-SHA256 of the normalised NIK, as hex.

    Whitespace is removed first, so ``"3515 0141 0190 0001"`` and ``"3515014101900001"``
    hash alike. The NIK is not validated: a partner's mistyped NIK still gets a stable
    hash, which simply matches nobody.
    """
    digits = normalise_nik(nik)
    if not digits:
        raise ValueError("cannot hash an empty NIK")
    return hmac.new(_secret(key, "NIK hash"), digits.encode("utf-8"), hashlib.sha256).hexdigest()


def _aad_bytes(aad: bytes | str) -> bytes:
    return aad.encode("utf-8") if isinstance(aad, str) else bytes(aad)


class PiiCipher:
    """AES-256-GCM encryption of personal fields, with named keys for rotation.

    A ciphertext is laid out as::

        version (1 byte, = 1) | key id length (1 byte) | key id (ASCII) | nonce (12 bytes)
        | ciphertext and 16-byte tag

    New values are always encrypted with the current key; decryption picks the key by the
    id stored in the ciphertext, so values written before a rotation stay readable as long
    as their old key is still configured. The version and key id are authenticated along
    with ``aad``.

    ``aad`` (associated data) binds a ciphertext to its record, for example the person id:
    decrypting with a different ``aad`` fails, so an encrypted value copied onto another
    row is detected rather than silently accepted. Pass the same ``aad`` to both calls.
    A ``str`` aad is used as its UTF-8 bytes.
    """

    def __init__(self, keys: Mapping[str, bytes], current_key_id: str) -> None:
        if not keys:
            raise ValueError("PiiCipher needs at least one key")
        self._aeads: dict[str, AESGCM] = {}
        for key_id, key in keys.items():
            if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
                raise ValueError(
                    f"key id {key_id!r} must be 1-64 characters of letters, digits, '.', '_' or '-'"
                )
            if not isinstance(key, (bytes, bytearray, memoryview)) or len(key) != KEY_LENGTH:
                raise ValueError(f"key {key_id!r} must be exactly {KEY_LENGTH} bytes")
            self._aeads[key_id] = AESGCM(bytes(key))
        if current_key_id not in self._aeads:
            raise ValueError(f"current key id {current_key_id!r} is not among the keys")
        self._current = current_key_id

    @classmethod
    def from_env_value(cls, value: str) -> PiiCipher:
        """Build a cipher from ``"k1:<64 hex>,k0:<64 hex>"``; the first key is the current one.

        A single bare ``<64 hex>`` is accepted too and gets the key id ``k0``.

        Rotate by putting a new key first and keeping the old ones after it until every
        value has been re-encrypted (see :meth:`needs_rotation` and :meth:`rotate`).
        """
        keys: dict[str, bytes] = {}
        entries = [e.strip() for e in value.split(",") if e.strip()]
        if not entries:
            raise ValueError("the PII key list is empty")
        if len(entries) == 1 and ":" not in entries[0]:
            entries = [f"k0:{entries[0]}"]
        for position, entry in enumerate(entries, start=1):
            key_id, sep, hex_key = (part.strip() for part in entry.partition(":"))
            if not sep or not key_id:
                raise ValueError(f"PII key entry {position} is not in the form key_id:hex")
            if key_id in keys:
                raise ValueError(f"PII key id {key_id!r} is listed twice")
            try:
                key = bytes.fromhex(hex_key)
            except ValueError:
                # Never echo the value: it is key material.
                raise ValueError(f"PII key {key_id!r} is not valid hex") from None
            if len(key) != KEY_LENGTH:
                raise ValueError(f"PII key {key_id!r} must be {KEY_LENGTH * 2} hex digits")
            keys[key_id] = key
        return cls(keys, current_key_id=next(iter(keys)))

    @property
    def current_key_id(self) -> str:
        """The id of the key new values are encrypted with."""
        return self._current

    @property
    def key_ids(self) -> frozenset[str]:
        """The ids of every key this cipher can decrypt with."""
        return frozenset(self._aeads)

    def __repr__(self) -> str:
        # Deliberately lists ids only, never key material.
        return f"PiiCipher(current_key_id={self._current!r}, key_ids={sorted(self._aeads)!r})"

    @staticmethod
    def _header(key_id: str) -> bytes:
        encoded = key_id.encode("ascii")
        return bytes((FORMAT_VERSION, len(encoded))) + encoded

    def encrypt(self, plaintext: str, *, aad: bytes | str = b"") -> bytes:
        """Encrypt ``plaintext`` with the current key and a fresh random nonce."""
        header = self._header(self._current)
        nonce = os.urandom(NONCE_LENGTH)
        sealed = self._aeads[self._current].encrypt(
            nonce, plaintext.encode("utf-8"), header + _aad_bytes(aad)
        )
        return header + nonce + sealed

    @staticmethod
    def _split(blob: bytes) -> tuple[bytes, str, bytes, bytes]:
        """Return (header, key id, nonce, sealed) or raise PiiDecryptError."""
        data = bytes(blob)
        if len(data) < 2:
            raise PiiDecryptError("ciphertext is too short")
        if data[0] != FORMAT_VERSION:
            raise PiiDecryptError(f"unknown ciphertext format version {data[0]}")
        id_end = 2 + data[1]
        if data[1] == 0 or len(data) < id_end + NONCE_LENGTH + TAG_LENGTH:
            raise PiiDecryptError("ciphertext is truncated or malformed")
        try:
            key_id = data[2:id_end].decode("ascii")
        except UnicodeDecodeError:
            raise PiiDecryptError("ciphertext has a malformed key id") from None
        nonce = data[id_end : id_end + NONCE_LENGTH]
        return data[:id_end], key_id, nonce, data[id_end + NONCE_LENGTH :]

    def key_id_of(self, blob: bytes) -> str:
        """Return the id of the key ``blob`` was encrypted with (without decrypting it)."""
        return self._split(blob)[1]

    def decrypt(self, blob: bytes, *, aad: bytes | str = b"") -> str:
        """Decrypt ``blob`` with the key named inside it.

        Raises :class:`PiiDecryptError` if the blob is malformed, was altered, was made with
        a different ``aad``, or names a key this cipher does not hold.
        """
        header, key_id, nonce, sealed = self._split(blob)
        aead = self._aeads.get(key_id)
        if aead is None:
            raise PiiDecryptError(f"ciphertext was encrypted with key {key_id!r}, which is not configured")
        try:
            plaintext = aead.decrypt(nonce, sealed, header + _aad_bytes(aad))
        except InvalidTag:
            raise PiiDecryptError(
                "ciphertext failed authentication: it was altered, or the aad does not match "
                "the record it was encrypted for"
            ) from None
        return plaintext.decode("utf-8")

    def needs_rotation(self, blob: bytes) -> bool:
        """Tell whether ``blob`` was encrypted with a key other than the current one."""
        return self.key_id_of(blob) != self._current

    def rotate(self, blob: bytes, *, aad: bytes | str = b"") -> bytes:
        """Re-encrypt ``blob`` under the current key; return it unchanged if already current."""
        if not self.needs_rotation(blob):
            return bytes(blob)
        return self.encrypt(self.decrypt(blob, aad=aad), aad=aad)


class BlindIndex:
    """Keyed digest for exact lookup of an encrypted field (HMAC-SHA256, hex).

    Store ``BlindIndex(key, field="phone").of(phone)`` next to the encrypted phone number
    and search by the digest of the value asked for. Each ``field`` gets its own derived
    key, so equal values in different fields give unrelated digests and cannot be matched
    across columns. The value is digested exactly as given: normalise it first (for
    example one phone-number format) so that equal values really are equal strings.
    """

    def __init__(self, key: str | bytes, *, field: str = "") -> None:
        # Derive a per-field key, so one configured secret serves every field separately.
        self._key = hmac.new(
            _secret(key, "blind index"),
            b"pilar/blind-index/v1\x00" + field.encode("utf-8"),
            hashlib.sha256,
        ).digest()
        self.field = field

    def __repr__(self) -> str:
        return f"BlindIndex(field={self.field!r})"

    def of(self, value: str) -> str:
        """Return the hex digest of ``value`` for this field."""
        return hmac.new(self._key, value.encode("utf-8"), hashlib.sha256).hexdigest()
