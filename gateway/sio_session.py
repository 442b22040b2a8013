"""Socket.IO connection state recovery session ids (`pid`), bound to a user."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

import structlog

from hubcore.settings import Settings

log = structlog.get_logger("gateway.sio")


class PidSigner:
    """Recovery session ids bound to a user: `<random>.<HMAC(random | user)>`.

    The key is `HUB_SOCKETIO_PID_KEY`, else derived from the JWT secret: shared by every
    gateway process, so a pid issued by one is checked by another. With public-key tokens
    and no pid key each process has its own random key, and a pid from another process
    starts a fresh session. A pid issued before the user was known (the seed's
    `authenticate` after connect) is signed for the empty user; its offset is checked
    against the user when it is replayed.
    """

    def __init__(self, settings: Settings) -> None:
        secret = settings.socketio_pid_key or settings.jwt_secret
        if secret is None:
            log.warning(
                "socketio_pid_key_missing",
                detail="recovery works on this process only; set HUB_SOCKETIO_PID_KEY",
            )
        base = secret.get_secret_value().encode() if secret is not None else secrets.token_bytes(32)
        self._key = hashlib.sha256(b"hub socket.io pid\x00" + base).digest()

    def issue(self, user_id: str | None) -> str:
        """A new pid for `user_id` (None: not known yet)."""
        nonce = secrets.token_urlsafe(12)
        return f"{nonce}.{self._sign(nonce, user_id)}"

    def valid(self, pid: str, user_id: str | None) -> bool:
        """True when `pid` was issued for `user_id`, or for nobody yet (anonymous)."""
        nonce, dot, signature = pid.partition(".")
        if not dot or len(pid) > 100:
            return False
        # Bytes: `compare_digest` raises on str with characters outside ASCII.
        given = signature.encode("utf-8", "surrogatepass")
        candidates = [None] if user_id is None else [user_id, None]
        return any(
            hmac.compare_digest(given, self._sign(nonce, user).encode()) for user in candidates
        )

    def _sign(self, nonce: str, user_id: str | None) -> str:
        message = f"{nonce}|{user_id or ''}".encode("utf-8", "surrogatepass")
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode()
