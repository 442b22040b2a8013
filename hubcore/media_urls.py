"""Signed, expiring download URLs for attachments: what the generic platform's callback
receives instead of the bytes (it fetches them without a user token)."""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlencode

from hubcore.settings import Settings, SettingsError

Variant = str  # "file" or "thumbnail"


def _key(settings: Settings) -> bytes:
    if settings.media_url_key is not None:
        return settings.media_url_key.get_secret_value().encode()
    if settings.jwt_secret is not None:
        # Derived, so the token key itself never signs anything but tokens.
        return hmac.new(
            settings.jwt_secret.get_secret_value().encode(), b"hub media urls", hashlib.sha256
        ).digest()
    raise SettingsError("HUB_MEDIA_URL_KEY", "is required to sign download URLs")


def _signature(key: bytes, attachment_id: str, variant: Variant, expires: int) -> str:
    text = f"{attachment_id}\x1f{variant}\x1f{expires}".encode()
    return hmac.new(key, text, hashlib.sha256).hexdigest()


def signed_url(
    settings: Settings, attachment_id: str, *, variant: Variant = "file", now: float | None = None
) -> str:
    """`HUB_PUBLIC_URL/api/attachments/{id}[/thumbnail]?expires=…&signature=…`, valid for
    `HUB_MEDIA_URL_TTL` seconds."""
    expires = int((time.time() if now is None else now) + settings.media_url_ttl)
    query = urlencode(
        {
            "expires": expires,
            "signature": _signature(_key(settings), attachment_id, variant, expires),
        }
    )
    suffix = "/thumbnail" if variant == "thumbnail" else ""
    return f"{settings.public_url.rstrip('/')}/api/attachments/{attachment_id}{suffix}?{query}"


def verify(
    settings: Settings,
    attachment_id: str,
    variant: Variant,
    expires: int,
    signature: str,
    *,
    now: float | None = None,
) -> bool:
    """True when the signature is this attachment's and variant's and not expired."""
    if expires < (time.time() if now is None else now):
        return False
    try:
        key = _key(settings)
    except SettingsError:
        return False
    # As bytes: compare_digest refuses str with non-ASCII characters (TypeError, a 500).
    expected = _signature(key, attachment_id, variant, expires).encode()
    return hmac.compare_digest(expected, signature.encode("utf-8", "surrogatepass"))
