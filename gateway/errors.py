"""The gateway's error root and the HTTP status each kind of failure answers with."""

from __future__ import annotations

from hubcore.errors import HubError


class GatewayError(HubError):
    """Root of every error the gateway raises on purpose; `status` is its HTTP answer."""

    status: int = 500
    code = "gateway_error"


class Unauthorized(GatewayError):
    """The token is missing, malformed, expired, or not signed by the configured key."""

    status = 401
    code = "unauthorized"


class NotFound(GatewayError):
    """No such resource among the caller's own (another user's is not found, either)."""

    status = 404
    code = "not_found"


class BadRequest(GatewayError):
    """The request is well-formed JSON but asks for something that cannot be done."""

    status = 400
    code = "bad_request"


class Conflict(GatewayError):
    """The request cannot be done in the caller's current state (a limit reached)."""

    status = 409
    code = "conflict"


class Unavailable(GatewayError):
    """Kafka or MongoDB did not answer; the client may retry later."""

    status = 503
    code = "service_unavailable"
    retriable = True


class TooManyRequests(GatewayError):
    """A rate limit was reached; `retry_after` seconds until the next try can pass."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
