"""JWT verification shared by the WebSocket, Socket.IO and REST entry points."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.types import Options

from gateway.errors import Unauthorized
from hubcore.settings import Settings, SettingsError

MAX_USER_ID_LENGTH = 256  # schemas' limit on user ids (record keys)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a verified token speaks for, and until when (leeway included)."""

    user_id: str
    expires_at: float  # epoch seconds after which the token no longer verifies


class TokenVerifier:
    """Verifies tokens against the configured key with pinned algorithms.

    The algorithm list comes from settings, never from the token header, so `alg: none`
    and HMAC-with-the-public-key confusion are refused by construction. PyJWT compares
    HMAC signatures with `hmac.compare_digest` (constant time).
    """

    def __init__(self, settings: Settings) -> None:
        settings.require_jwt_key()
        self._algorithms = list(settings.jwt_algorithms)
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer
        self.leeway = settings.jwt_leeway
        self.max_lifetime = settings.jwt_max_lifetime
        self._key: Any
        if settings.jwt_uses_hmac:
            assert settings.jwt_secret is not None  # require_jwt_key checked it
            self._key = settings.jwt_secret.get_secret_value()
        else:
            assert settings.jwt_public_key_file is not None  # settings validated it
            # Parsed once: PEM parsing per token would dominate verification time.
            self._key = _load_public_key(settings.jwt_public_key_file, self._algorithms)
        self._options: Options = {
            # iat bounds the lifetime: a stolen long-lived token is refused however signed.
            "require": ["exp", "iat", "sub"],
            # "Checked when configured": an unconfigured audience does not refuse tokens
            # that carry one (PyJWT's default would).
            "verify_aud": self._audience is not None,
        }

    def verify(self, token: str) -> Identity:
        """The identity of a valid token; `Unauthorized` naming the reason otherwise."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                options=self._options,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self.leeway,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("token audience is not accepted") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized("token issuer is not accepted") from None
        except jwt.InvalidAlgorithmError:
            raise Unauthorized("token algorithm is not accepted") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("token signature is invalid") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"token is invalid: {exc}") from None
        lifetime = int(claims["exp"]) - int(claims["iat"])  # PyJWT checked both are ints
        if lifetime > self.max_lifetime:
            raise Unauthorized(
                f"token lifetime (exp - iat) is over {self.max_lifetime:.0f}s "
                "(HUB_JWT_MAX_LIFETIME)"
            )
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub or len(sub) > MAX_USER_ID_LENGTH:
            raise Unauthorized("token subject must be a non-empty string of at most 256 chars")
        return Identity(user_id=sub, expires_at=float(claims["exp"]) + self.leeway)


_KEY_TYPES: dict[str, tuple[type[Any], ...]] = {
    "RS": (rsa.RSAPublicKey,),
    "PS": (rsa.RSAPublicKey,),
    "ES": (ec.EllipticCurvePublicKey,),
    "Ed": (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey),
}


def _load_public_key(path: Path, algorithms: list[str]) -> Any:
    """The PEM public key of `path`, checked against the pinned algorithms at start."""
    variable = "HUB_JWT_PUBLIC_KEY_FILE"
    try:
        key = load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise SettingsError(variable, f"{path} is not a PEM public key ({exc})") from None
    for algorithm in algorithms:
        if not isinstance(key, _KEY_TYPES[algorithm[:2]]):
            raise SettingsError(variable, f"{type(key).__name__} cannot verify {algorithm}")
    return key


def seconds_left(identity: Identity) -> float:
    """Seconds until `identity`'s token stops verifying (may be negative)."""
    return identity.expires_at - datetime.now(UTC).timestamp()
