"""Encryption at rest for tokens and other secrets (Fernet: AES-128-CBC + HMAC)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from audiencesync.errors import NotSetUpError

KEY_FILE_NAME = "secret.key"


class SecretBox:
    """Encrypts and decrypts short strings with the home's key."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)
        self._digest_key = hashlib.sha256(b"audiencesync keyed digest\0" + key).digest()

    def digest(self, value: str) -> str:
        """A keyed hash (HMAC-SHA256, hex) of ``value``: the same for every process that
        shares the key, useless to anyone without it (for tokens used as keys in shared
        tables: the rate budget)."""
        return hmac.new(self._digest_key, value.encode("utf-8"), hashlib.sha256).hexdigest()

    @classmethod
    def from_passphrase(cls, passphrase: str) -> SecretBox:
        """A box keyed by AUDIENCESYNC_SECRET_KEY (any string; hashed to a Fernet key)."""
        digest = hashlib.sha256(passphrase.encode("utf-8")).digest()
        return cls(base64.urlsafe_b64encode(digest))

    @classmethod
    def from_key_file(cls, home: Path, *, create: bool) -> SecretBox:
        """A box keyed by ``home/secret.key``, created owner-readable-only when asked."""
        path = home / KEY_FILE_NAME
        if not path.exists():
            if not create:
                raise NotSetUpError(
                    f"the secret key file {path} is missing: restore it, or set "
                    "AUDIENCESYNC_SECRET_KEY to the key this home was set up with."
                )
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(Fernet.generate_key())
        return cls(path.read_bytes().strip())

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise NotSetUpError(
                "a stored secret cannot be decrypted with this key: set AUDIENCESYNC_SECRET_KEY "
                "(or restore secret.key) to the key the home was set up with."
            ) from None
