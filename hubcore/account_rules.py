"""What an account must look like, per platform: the one check behind REST, CLI and demo.

Credentials are typed per platform (contract: Platform accounts); keys not listed are
refused, strings must be non-empty, email's port and ssl accept their usual text
spellings (the CLI types everything as text) and are stored as int and bool.

No field may hold a control character or line break (one in a token ended up in a
request line or header: issue 22); tokens that go into a URL or an HTTP header take only
the characters that can go there, and a callback URL must parse as httpx parses it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from hubcore.errors import InvalidField

Mode = Literal["webhook", "poll"]
MAX_SECRET_CHARS = 4096
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True)
class PlatformRules:
    required: tuple[str, ...]
    modes: tuple[Mode, ...]  # the first is the default
    optional: tuple[str, ...] = ()


# Optional keys after the receiving ones are what sending replies needs (contract:
# "Credentials for sending"); an account without them receives only.
SMTP_KEYS = ("smtpHost", "smtpPort", "smtpUsername", "smtpPassword", "smtpTls")
RULES: dict[str, PlatformRules] = {
    "telegram": PlatformRules(("botToken", "webhookSecret"), ("webhook", "poll")),
    "whatsapp": PlatformRules(("appSecret", "verifyToken"), ("webhook",), ("accessToken",)),
    "slack": PlatformRules(("signingSecret",), ("webhook",), ("botToken",)),
    "email": PlatformRules(
        ("host", "username", "password"), ("poll",), ("port", "ssl", "mailbox", *SMTP_KEYS)
    ),
    "generic": PlatformRules(("secret",), ("webhook",), ("callbackUrl",)),
}
_TEXT_OPTIONAL = frozenset({"accessToken", "botToken", "smtpHost", "smtpUsername", "smtpPassword"})
# C0, DEL, C1 and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Tokens sent in a URL path (Telegram's `bot<token>`) or a `Bearer` header.
_PATH_TOKEN = re.compile(r"^[A-Za-z0-9:_-]+$")
_HEADER_TOKEN = re.compile(r"^[\x21-\x7e]+$")
_TOKEN_SHAPES = {
    ("telegram", "botToken"): (_PATH_TOKEN, "letters, digits, ':', '_' and '-'"),
    ("slack", "botToken"): (_HEADER_TOKEN, "printable ASCII without spaces"),
    ("whatsapp", "accessToken"): (_HEADER_TOKEN, "printable ASCII without spaces"),
}


def as_bool(value: Any, name: str = "credentials.ssl") -> bool:
    """A real bool from a bool or its usual spellings."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    # Never echo the value: a secret pasted into the wrong field would end up in logs.
    raise InvalidField(name, "must be true or false")


def as_port(value: Any, name: str = "credentials.port") -> int:
    """A TCP port number from an int or its decimal text."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidField(name, "must be a number")
    try:
        port = int(value)
    except ValueError:
        raise InvalidField(name, "must be a number") from None
    if not 0 < port < 65536:
        raise InvalidField(name, "must be between 1 and 65535")
    return port


def _text(platform: str, key: str, value: Any) -> str:
    name = f"credentials.{key}"
    if not isinstance(value, str):
        raise InvalidField(name, f"must be a string for {platform}")
    if not value.strip():
        raise InvalidField(name, "must not be empty")
    if len(value) > MAX_SECRET_CHARS:
        raise InvalidField(name, f"must be at most {MAX_SECRET_CHARS} characters")
    if _CONTROL.search(value):
        raise InvalidField(name, "must not contain control characters or line breaks")
    shape = _TOKEN_SHAPES.get((platform, key))
    if shape is not None and not shape[0].match(value):
        raise InvalidField(name, f"may hold only {shape[1]}")
    return value


def check_account(
    platform: str, external_id: str, credentials: dict[str, Any], mode: str | None
) -> tuple[dict[str, Any], Mode]:
    """Normalized credentials and mode of a new account; `InvalidField` naming the field."""
    rules = RULES.get(platform)
    if rules is None:
        known = ", ".join(RULES)
        raise InvalidField("platform", f"unknown platform {platform[:32]!r}", fix=f"use {known}")
    if not external_id or not external_id.strip() or len(external_id) > 512:
        raise InvalidField("externalId", "must be 1 to 512 characters")
    if _CONTROL.search(external_id):
        raise InvalidField("externalId", "must not contain control characters or line breaks")
    if mode is None:
        chosen: Mode = rules.modes[0]
    elif mode in rules.modes:
        chosen = mode
    else:
        raise InvalidField("mode", f"{platform} accounts take mode {' or '.join(rules.modes)}")
    missing = [k for k in rules.required if k not in credentials]
    if missing:
        raise InvalidField(f"credentials.{missing[0]}", f"is required for {platform}")
    allowed = (*rules.required, *rules.optional)
    if credentials.keys() - set(allowed):
        # Unknown keys are not named: one may be a secret pasted in the wrong place.
        raise InvalidField(
            "credentials", f"has keys {platform} does not take (it takes {', '.join(allowed)})"
        )
    clean: dict[str, Any] = {k: _text(platform, k, credentials[k]) for k in rules.required}
    if platform == "email":
        ssl = as_bool(credentials.get("ssl", True))
        clean["ssl"] = ssl
        clean["port"] = as_port(credentials.get("port", 993 if ssl else 143))
        clean["mailbox"] = _text(platform, "mailbox", credentials.get("mailbox", "INBOX"))
        if "smtpHost" in credentials:
            clean["smtpTls"] = as_bool(credentials.get("smtpTls", True), "credentials.smtpTls")
            clean["smtpPort"] = as_port(credentials.get("smtpPort", 465), "credentials.smtpPort")
        elif credentials.keys() & set(SMTP_KEYS):
            raise InvalidField("credentials.smtpHost", "is required to send email")
    for key in rules.optional:
        if key in _TEXT_OPTIONAL and key in credentials:
            clean[key] = _text(platform, key, credentials[key])
    if "callbackUrl" in credentials:
        clean["callbackUrl"] = callback_url(credentials["callbackUrl"])
    return clean, chosen


def callback_url(value: Any, name: str = "credentials.callbackUrl") -> str:
    """An absolute http(s) URL without user info, as httpx will parse it when sending
    (the policy checks its host)."""
    text = _text("generic", "callbackUrl", value)
    try:
        url = httpx.URL(text)
        port = url.port  # an invalid one raises here
    except (httpx.InvalidURL, ValueError):
        raise InvalidField(name, "is not a valid URL") from None
    if url.scheme not in ("https", "http") or not url.host:
        raise InvalidField(name, "must be an absolute https:// URL")
    if url.userinfo:
        raise InvalidField(name, "must not carry a user name or password")
    if port is not None and not 0 < port < 65536:
        raise InvalidField(name, "has an invalid port")
    return text
