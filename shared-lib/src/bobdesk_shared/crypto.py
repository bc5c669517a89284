"""Secrets at rest: XChaCha20-Poly1305 (PyNaCl) under a key ring.

`CREDENTIALS_KEYS` is `kid:base64key[,kid:base64key...]` with 32-byte keys: the
first key encrypts, every key decrypts, so keys rotate by putting a new one
first and re-encrypting (connections-service's `rotate-keys`). Each sealed value
carries its key id and a random 24-byte nonce, and is bound by associated data
to the record and field it belongs to, so a ciphertext copied onto another
record or field fails to decrypt.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses

from bson import Binary
from nacl import bindings
from nacl.exceptions import CryptoError
from nacl.utils import random

from .config import ConfigError

KEY_BYTES = bindings.crypto_aead_xchacha20poly1305_ietf_KEYBYTES
NONCE_BYTES = bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES


class DecryptionError(Exception):
    """A sealed value cannot be opened: unknown key, tampering, or wrong record/field."""


def associated_data(kind: str, record_id: object, field: str) -> bytes:
    """What binds a ciphertext to its place, e.g. `connection/64b2.../apiKey`."""
    return f"{kind}/{record_id}/{field}".encode()


@dataclasses.dataclass(frozen=True)
class KeyRing:
    keys: tuple[tuple[str, bytes], ...]

    @classmethod
    def parse(cls, value: str) -> KeyRing:
        keys: list[tuple[str, bytes]] = []
        for position, entry in enumerate(filter(None, (e.strip() for e in value.split(","))), start=1):
            kid, sep, encoded = entry.partition(":")
            if not sep or not kid:
                raise ConfigError(f"CREDENTIALS_KEYS entry {position} must be 'kid:base64key'")
            try:
                key = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise ConfigError(f"CREDENTIALS_KEYS key '{kid}' is not valid base64") from None
            if len(key) != KEY_BYTES:
                raise ConfigError(f"CREDENTIALS_KEYS key '{kid}' must be {KEY_BYTES} bytes, got {len(key)}")
            if any(kid == known for known, _ in keys):
                raise ConfigError(f"CREDENTIALS_KEYS names key '{kid}' twice")
            keys.append((kid, key))
        if not keys:
            raise ConfigError("CREDENTIALS_KEYS holds no key")
        return cls(tuple(keys))

    @property
    def primary_kid(self) -> str:
        return self.keys[0][0]

    def _key(self, kid: str) -> bytes:
        for known, key in self.keys:
            if known == kid:
                return key
        raise DecryptionError(f"unknown key id '{kid}'")

    def encrypt(self, plaintext: str, aad: bytes) -> dict:
        kid, key = self.keys[0]
        nonce = random(NONCE_BYTES)
        sealed = bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext.encode(), aad, nonce, key)
        return {"kid": kid, "ct": Binary(nonce + sealed)}

    def decrypt(self, sealed: dict, aad: bytes) -> str:
        try:
            kid, blob = sealed["kid"], bytes(sealed["ct"])
        except (KeyError, TypeError):
            raise DecryptionError("not a sealed value") from None
        key = self._key(kid)
        if len(blob) <= NONCE_BYTES:
            raise DecryptionError("sealed value is truncated")
        try:
            plain = bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                blob[NONCE_BYTES:], aad, blob[:NONCE_BYTES], key
            )
        except CryptoError:
            raise DecryptionError("sealed value failed authentication") from None
        return plain.decode()

    def is_current(self, sealed: dict) -> bool:
        """True when `sealed` is already under the encrypting key."""
        return sealed.get("kid") == self.primary_kid
