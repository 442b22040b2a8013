"""The connectors' errors: each maps to the contract's webhook status code."""

from __future__ import annotations

from aiokafka.errors import KafkaError
from pymongo.errors import PyMongoError

from hubcore.errors import (
    BadRequest,
    HttpError,
    NotFound,
    ServiceUnavailable,
    TooLarge,
    TooManyRequests,
    Unauthorized,
)


class ConnectorError(HttpError):
    """Root of every error the connectors raise on purpose; `status` is the HTTP answer."""

    code = "connector_error"


# What a connectors consumer treats as an outage of Kafka, the store or a platform: what
# it was doing is dropped and read again from the committed offsets once it is over.
OUTAGES: tuple[type[Exception], ...] = (KafkaError, ConnectorError, PyMongoError, OSError)


class BadPayload(ConnectorError, BadRequest):
    """Authentic input that is not the platform's format: 400, and a dead letter."""

    code = "bad_payload"


class BadSignature(ConnectorError, Unauthorized):
    """Signature or secret missing or wrong: 401, nothing produced."""

    code = "bad_signature"


class UnknownAccount(ConnectorError, NotFound):
    """No account with this id for this platform: 404."""

    code = "no_such_account"


class BodyTooLarge(ConnectorError, TooLarge):
    """The body is over `HUB_MAX_BODY_BYTES`: 413."""

    code = "body_too_large"


class KafkaUnavailable(ConnectorError, ServiceUnavailable):
    """Kafka did not acknowledge in time: 503, the platform retries, nothing is lost."""

    code = "kafka_unavailable"


class StoreUnavailable(ConnectorError, ServiceUnavailable):
    """The account store did not answer: 503 as well, the platform retries."""

    code = "store_unavailable"


class PollError(ConnectorError):
    """A platform API that a poller reads failed or answered nonsense; the poller retries."""

    code = "poll_error"
    retriable = True


class SendError(ConnectorError):
    """A platform did not take a reply. `retriable`: a 429, 5xx or a call that never left;
    `retry_after`: the platform's requested wait; `ambiguous`: the request left and no
    answer came, so the platform may have the message; `reason`: the metrics' label
    (`connectors.outbound.metrics.SEND_FAILURE_REASONS`)."""

    code = "send_failed"

    def __init__(
        self,
        message: str,
        *,
        retriable: bool = False,
        retry_after: float | None = None,
        ambiguous: bool = False,
        reason: str = "other",
    ) -> None:
        super().__init__(message, retriable=retriable)
        self.retry_after = retry_after
        self.ambiguous = ambiguous
        self.reason = reason


class RateLimited(ConnectorError, TooManyRequests):
    """The account's webhook rate limit was reached: 429 with Retry-After; the platform's
    retry later succeeds."""

    code = "rate_limited"
