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


class ServiceUnavailable(HubError):
    """Kafka or the store cannot be reached right now."""

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
