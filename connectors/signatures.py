"""Authenticity checks on the raw body, all in constant time (`hmac.compare_digest`)."""

from __future__ import annotations

import hashlib
import hmac

from connectors.errors import BadSignature

SLACK_MAX_SKEW = 5 * 60  # seconds; Slack's documented replay window


def hmac_sha256_hex(secret: str, payload: bytes) -> str:
    """Hex HMAC-SHA256 of `payload` keyed with `secret` (UTF-8)."""
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def _same(expected: str, given: str) -> bool:
    # Bytes, not str: compare_digest refuses non-ASCII str, and headers may hold anything.
    return hmac.compare_digest(expected.encode(), given.encode())


def check_hub_signature(secret: str, header: str | None, body: bytes) -> None:
    """`X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>` (Meta's and generic's)."""
    if not header:
        raise BadSignature("X-Hub-Signature-256 is missing")
    scheme, _, given = header.strip().partition("=")
    if scheme != "sha256" or not given:
        raise BadSignature("X-Hub-Signature-256 is not of the form sha256=<hex>")
    if not _same(hmac_sha256_hex(secret, body), given.lower()):
        raise BadSignature("X-Hub-Signature-256 does not match the body")


def check_secret_token(expected: str, given: str | None, header: str) -> None:
    """A shared secret sent verbatim in a header (Telegram's secret token)."""
    if not given:
        raise BadSignature(f"{header} is missing")
    if not _same(expected, given):
        raise BadSignature(f"{header} is wrong")


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's v0 signature: `v0=` + HMAC-SHA256 of `v0:{timestamp}:{body}`."""
    return "v0=" + hmac_sha256_hex(secret, b"v0:" + timestamp.encode() + b":" + body)


def check_slack_signature(
    secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float
) -> None:
    """Slack's v0 signature with the 5-minute `X-Slack-Request-Timestamp` window."""
    if not timestamp:
        raise BadSignature("X-Slack-Request-Timestamp is missing")
    if not signature:
        raise BadSignature("X-Slack-Signature is missing")
    try:
        sent = int(timestamp)
    except ValueError:
        raise BadSignature("X-Slack-Request-Timestamp is not a Unix time") from None
    if abs(now - sent) > SLACK_MAX_SKEW:
        raise BadSignature("X-Slack-Request-Timestamp is more than 5 minutes away from now")
    if not _same(slack_signature(secret, timestamp, body), signature.strip()):
        raise BadSignature("X-Slack-Signature does not match the body")
