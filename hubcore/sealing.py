"""Credentials sealed at rest with the operator's Fernet keys (`HUB_CREDENTIALS_KEY`).

Several comma-separated keys form a MultiFernet: the first seals, every one opens, so a
new key goes first and the old ones stay until `hub accounts rotate-key` has re-sealed
every account.
"""

from __future__ import annotations

from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from hubcore.errors import HubError
from hubcore.settings import Settings, SettingsError


class UnreadableCredentials(HubError):
    """Sealed with a key this process does not have, or tampered with. Retriable: the
    operator's fix (adding the key back) needs no change of the request."""

    code = "credentials_unreadable"
    retriable = True


def new_key() -> str:
    """A fresh Fernet key (urlsafe base64 of 32 random bytes)."""
    return Fernet.generate_key().decode()


class CredentialCipher:
    """Seals a credentials dict into one opaque token and opens it again."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise SettingsError("HUB_CREDENTIALS_KEY", "names no key")
        try:
            self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])
        except (ValueError, TypeError):
            # Never echo the value: it is a secret.
            raise SettingsError(
                "HUB_CREDENTIALS_KEY",
                "each key must be 32 url-safe base64-encoded bytes (hub accounts new-key)",
            ) from None

    @classmethod
    def from_settings(cls, settings: Settings) -> CredentialCipher:
        value = settings.require_credentials_key().get_secret_value()
        return cls([part.strip() for part in value.split(",") if part.strip()])

    def seal(self, credentials: dict[str, Any]) -> str:
        return self._fernet.encrypt(orjson.dumps(credentials)).decode()

    def open(self, sealed: str) -> dict[str, Any]:
        try:
            opened: dict[str, Any] = orjson.loads(self._fernet.decrypt(sealed.encode()))
        except InvalidToken:
            raise UnreadableCredentials(
                "stored credentials do not open with HUB_CREDENTIALS_KEY",
                fix="keep the old key in the list until rotate-key has run",
            ) from None
        return opened

    def reseal(self, sealed: str) -> str:
        """The same credentials sealed with the first (newest) key."""
        try:
            return self._fernet.rotate(sealed.encode()).decode()
        except InvalidToken:
            raise UnreadableCredentials(
                "stored credentials do not open with HUB_CREDENTIALS_KEY"
            ) from None
