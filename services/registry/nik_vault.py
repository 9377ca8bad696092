"""Keeping the NIK protected: a keyed digest to find duplicates, AES-GCM to reveal it to an authorised officer."""

from __future__ import annotations

import hmac
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_AAD = b"berdaya.registry.nik"


class NikVault:
    def __init__(self, digest_key: bytes, encryption_key: bytes) -> None:
        if len(digest_key) < 32 or len(encryption_key) != 32:
            raise ValueError("NIK keys must be 32 bytes each (base64-encoded in settings)")
        self._digest_key = digest_key
        self._aead = AESGCM(encryption_key)

    def digest(self, nik: str) -> bytes:
        # Keyed, because a plain hash of a NIK is reversible: 12 of its 16 digits are region and birth date.
        return hmac.digest(self._digest_key, nik.encode(), "sha256")

    def partner_key(self, partner_id: str) -> bytes:
        """Each partner's own key for linking NIKs, derived so that no two partners' links can be joined."""
        return hmac.digest(self._digest_key, b"partner-link:" + partner_id.encode(), "sha256")

    def encrypt(self, nik: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, nik.encode(), _AAD)

    def decrypt(self, blob: bytes) -> str:
        return self._aead.decrypt(blob[:12], blob[12:], _AAD).decode()
