"""Credentials typed in as `key=value` (the CLI) become the values the connectors use."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hubcore.accounts import Mode, validate_credentials
from hubcore.errors import InvalidInput

POLLING_PLATFORMS = frozenset({"telegram", "email"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def as_bool(value: Any, name: str = "ssl") -> bool:
    """A real bool from a bool or its usual spellings; `InvalidInput` otherwise."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidInput(f"{name} must be true or false, not {value!r}")


def as_port(value: Any, name: str = "port") -> int:
    """A TCP port number from an int or a string."""
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a number, not {value!r}") from None
    if not 0 < port < 65536:
        raise InvalidInput(f"{name} must be between 1 and 65535, not {port}")
    return port


def parse_credentials(platform: str, pairs: Sequence[str]) -> dict[str, Any]:
    """`["key=value", ...]` -> validated credentials. For email, `port` becomes an int and
    `ssl` a bool; `ssl` defaults to true, `port` to 993 (143 without ssl), `mailbox` to
    INBOX."""
    credentials: dict[str, Any] = {}
    for number, pair in enumerate(pairs, 1):
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            # Not echoed: a pair without "=" may be a bare secret.
            raise InvalidInput(f"credential number {number} is not of the form key=value")
        if key in credentials:
            raise InvalidInput(f"credential {key} is given twice")
        credentials[key] = value
    if platform == "email":
        credentials["ssl"] = as_bool(credentials.get("ssl", True))
        credentials["port"] = as_port(credentials.get("port", 993 if credentials["ssl"] else 143))
        credentials.setdefault("mailbox", "INBOX")
    return validate_credentials(platform, credentials)


def check_mode(platform: str, mode: Mode | None) -> None:
    """Email can only be polled; only Telegram and email can be polled."""
    if mode == "webhook" and platform == "email":
        raise InvalidInput("email accounts are polled over IMAP: --mode webhook is not possible")
    if mode == "poll" and platform not in POLLING_PLATFORMS:
        raise InvalidInput(f"{platform} accounts receive webhooks; only telegram and email poll")
