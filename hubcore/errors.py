"""The root of the hub's errors: each says what went wrong, what to fix, and whether to retry."""

from __future__ import annotations


class HubError(Exception):
    """Base of every error the hub raises on purpose.

    `retriable` decides retry versus dead letter (as in aiokafka's errors): a retriable
    error is a passing condition (a broker or store not reachable), a non-retriable one is
    a property of the input or configuration that a retry would not change.
    """

    retriable: bool = False
    code: str = "hub_error"

    def __init__(self, message: str, *, retriable: bool | None = None, fix: str | None = None):
        super().__init__(message)
        self.message = message
        self.fix = fix
        if retriable is not None:
            self.retriable = retriable

    def __str__(self) -> str:
        return f"{self.message} ({self.fix})" if self.fix else self.message


class HttpError(HubError):
    """An error with an HTTP answer, `status`. The kinds below are the one list of them; a
    service's own errors subclass a kind and name their own `code` where the contract does.
    Each service's exception handler writes the body its contract asks for."""

    status: int = 500


class BadRequest(HttpError):
    """Well-formed, but asks for something that cannot be done."""

    status = 400
    code = "bad_request"


class Unauthorized(HttpError):
    """Credentials (token, signature, secret) missing or wrong."""

    status = 401
    code = "unauthorized"


class NotFound(HttpError):
    """No such resource (among the caller's own)."""

    status = 404
    code = "not_found"


class Conflict(HttpError):
    """Cannot be done in the caller's current state (a limit reached)."""

    status = 409
    code = "conflict"


class TooLarge(HttpError):
    """A body, file or quota over its limit."""

    status = 413
    code = "too_large"


class UnsupportedMedia(HttpError):
    """Bytes of a kind the hub does not take."""

    status = 415
    code = "unsupported"


class TooManyRequests(HttpError):
    """A rate limit was reached; `retry_after` seconds until the next try can pass."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, retriable=True)
        self.retry_after = retry_after


class ServiceUnavailable(HttpError):
    """Kafka or the store cannot be reached right now: 503, retry later."""

    status = 503
    retriable = True
    code = "service_unavailable"


class InvalidInput(HubError):
    """Input that will never be processable as it is: bad JSON, wrong schema, missing fields."""

    code = "invalid_input"


class InvalidField(InvalidInput):
    """Input with one wrong field; `field` names it (dotted, as the caller wrote it)."""

    def __init__(self, field: str, message: str, *, fix: str | None = None) -> None:
        super().__init__(f"{field}: {message}", fix=fix)
        self.field = field
