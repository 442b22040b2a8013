"""Development JWTs minted from the configured secret (`hub token`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt

from hubcore.settings import Settings, SettingsError


def mint_token(settings: Settings, user_id: str, ttl: timedelta = timedelta(hours=12)) -> str:
    """A token for `user_id` signed with HUB_JWT_SECRET, carrying the configured aud/iss."""
    if not settings.jwt_uses_hmac or settings.jwt_secret is None:
        raise SettingsError(
            "HUB_JWT_SECRET", "is required to mint tokens (the hub only verifies public-key ones)"
        )
    settings.require_jwt_key()  # outside development: audience and issuer too
    if ttl.total_seconds() > settings.jwt_max_lifetime:
        raise SettingsError(
            "HUB_JWT_MAX_LIFETIME",
            f"is {settings.jwt_max_lifetime:.0f}s: the gateway would refuse a {ttl} token",
        )
    now = datetime.now(UTC)
    claims: dict[str, object] = {"sub": user_id, "iat": now, "exp": now + ttl}
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    return jwt.encode(
        claims, settings.jwt_secret.get_secret_value(), algorithm=settings.jwt_algorithms[0]
    )
