"""The streams package's errors: one root, each saying whether a retry can help."""

from __future__ import annotations

from hubcore.errors import HubError


class StreamsError(HubError):
    """Root of every error the streams processor raises on purpose."""

    code = "streams_error"


class PoisonRecord(StreamsError):
    """A record that no retry will ever make processable; it goes to the dead-letter topic."""

    code = "poison_record"

    def __init__(self, message: str, *, error_type: str) -> None:
        super().__init__(message, retriable=False)
        self.error_type = error_type


class ReplayRefused(StreamsError):
    """`hub replay` would clobber the state of running workers."""

    code = "replay_refused"
