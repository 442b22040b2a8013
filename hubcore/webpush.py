"""Web Push's cryptography: VAPID keys and tokens (RFC 8292) and the aes128gcm payload
encryption (RFC 8291 over RFC 8188), on `cryptography` alone.

A VAPID private key is given as the url-safe base64 of its 32-byte P-256 scalar (what
`web-push generate-vapid-keys` prints, and what `hub up` generates) or as a PEM; the public
key the browser needs (`applicationServerKey`) is derived from it.
"""

from __future__ import annotations

import base64
import binascii
import os
import struct
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hubcore.settings import Settings, SettingsError

# One record holds the whole payload: the push services accept 4096 bytes of body, and the
# header takes 86 of them (salt 16, rs 4, idlen 1, key 65), the tag 16, the delimiter 1.
RECORD_SIZE = 4096
MAX_PAYLOAD_BYTES = RECORD_SIZE - 86 - 16 - 1
# RFC 8292 allows 24 h; a token is reused for a while, so it is minted with a margin.
TOKEN_LIFETIME = 12 * 3600
TOKEN_REUSE = 3600
P256DH_BYTES = 65
AUTH_BYTES = 16


def b64url_decode(text: str) -> bytes:
    """Url-safe base64 with or without padding; `ValueError` when it is not."""
    if not isinstance(text, str) or any(c in text for c in "+/ \n"):
        raise ValueError("not url-safe base64")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not url-safe base64") from None


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def public_point(key: ec.EllipticCurvePublicKey) -> bytes:
    """The uncompressed point (65 bytes) of a P-256 public key."""
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def load_p256_public(raw: bytes) -> ec.EllipticCurvePublicKey:
    """A browser's `p256dh`; `ValueError` unless it is an uncompressed point on P-256."""
    if len(raw) != P256DH_BYTES or raw[0] != 4:
        raise ValueError("not an uncompressed P-256 point (65 bytes, 0x04 first)")
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)


def new_vapid_key() -> str:
    """A fresh VAPID private key in the setting's form (url-safe base64 of the scalar)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return b64url(key.private_numbers().private_value.to_bytes(32, "big"))


def load_vapid_key(text: str) -> ec.EllipticCurvePrivateKey:
    """The private key of `HUB_VAPID_PRIVATE_KEY`; `SettingsError` (never echoing it)."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            raw = b64url_decode(text)
            if len(raw) != 32:
                raise ValueError
            key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise SettingsError(
            "HUB_VAPID_PRIVATE_KEY",
            "must be a P-256 private key: url-safe base64 of 32 bytes, or a PEM "
            "(generate one with: python -m hubcore.webpush)",
        )
    return key


@dataclass
class Vapid:
    """The operator's application server identity: signs one token per push service."""

    key: ec.EllipticCurvePrivateKey
    subject: str
    public_key: str = field(init=False)
    _tokens: dict[str, tuple[float, str]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.public_key = b64url(public_point(self.key.public_key()))

    @classmethod
    def from_settings(cls, settings: Settings) -> Vapid | None:
        """None when Web Push is not configured (no private key, or a blank one: what a
        deployment passes on when the operator left it unset)."""
        text = settings.vapid_private_key.get_secret_value() if settings.vapid_private_key else ""
        if not text.strip():
            return None
        key = load_vapid_key(text)
        return cls(key, settings.vapid_subject)

    def authorization(self, endpoint: str, now: float | None = None) -> str:
        """The `Authorization` header for a push to `endpoint` (RFC 8292 section 3)."""
        parts = urlsplit(endpoint)
        audience = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        now = time.time() if now is None else now
        cached = self._tokens.get(audience)
        if cached is None or cached[0] < now:
            claims = {"aud": audience, "exp": int(now) + TOKEN_LIFETIME, "sub": self.subject}
            token = jwt.encode(claims, self.key, algorithm="ES256")
            if len(self._tokens) > 1000:  # audiences are push services: a handful
                self._tokens.clear()
            cached = (now + TOKEN_REUSE, token)
            self._tokens[audience] = cached
        return f"vapid t={cached[1]}, k={self.public_key}"


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(hashes.SHA256(), length, salt, info).derive(ikm)


def encrypt(
    plaintext: bytes,
    p256dh: bytes,
    auth: bytes,
    *,
    salt: bytes | None = None,
    sender: ec.EllipticCurvePrivateKey | None = None,
) -> bytes:
    """The aes128gcm body (RFC 8291 section 4) of `plaintext` for one subscription.

    `salt` and `sender` (the ephemeral key) are fresh for each message unless given (tests).
    """
    if len(plaintext) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"payload of {len(plaintext)} bytes; at most {MAX_PAYLOAD_BYTES}")
    receiver = load_p256_public(p256dh)
    sender = sender or ec.generate_private_key(ec.SECP256R1())
    salt = salt or os.urandom(16)
    sender_point = public_point(sender.public_key())
    shared = sender.exchange(ec.ECDH(), receiver)
    ikm = _hkdf(auth, shared, b"WebPush: info\x00" + p256dh + sender_point, 32)
    cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    # One record, the last: the delimiter 0x02 and no padding.
    record = AESGCM(cek).encrypt(nonce, plaintext + b"\x02", None)
    header = salt + struct.pack("!IB", RECORD_SIZE, len(sender_point)) + sender_point
    return header + record


def decrypt(body: bytes, receiver: ec.EllipticCurvePrivateKey, auth: bytes) -> bytes:
    """The plaintext of an aes128gcm body, as the browser recovers it (the tests' push
    service stand-in checks every payload with it); `ValueError` when it does not open."""
    if len(body) < 21:
        raise ValueError("shorter than the aes128gcm header")
    salt, (record_size, id_len) = body[:16], struct.unpack("!IB", body[16:21])
    sender_point = body[21 : 21 + id_len]
    records = body[21 + id_len :]
    if len(records) > record_size:
        raise ValueError("more than one record")
    receiver_point = public_point(receiver.public_key())
    shared = receiver.exchange(ec.ECDH(), load_p256_public(sender_point))
    ikm = _hkdf(auth, shared, b"WebPush: info\x00" + receiver_point + sender_point, 32)
    cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    try:
        padded = AESGCM(cek).decrypt(nonce, records, None)
    except Exception as exc:  # InvalidTag: the wrong keys or a damaged body
        raise ValueError(f"does not decrypt ({type(exc).__name__})") from None
    plain = padded.rstrip(b"\x00")
    if not plain.endswith(b"\x02"):
        raise ValueError("no last-record delimiter")
    return plain[:-1]


if __name__ == "__main__":
    # `python -m hubcore.webpush`: a new private key for HUB_VAPID_PRIVATE_KEY.
    print(new_vapid_key())
