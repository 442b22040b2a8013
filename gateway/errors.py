"""The gateway's errors: the shared HTTP kinds of `hubcore.errors`, under the names the
gateway's code uses; `gateway.app` answers each with its `status` and `code`."""

from __future__ import annotations

from hubcore.errors import (
    BadRequest,
    Conflict,
    NotFound,
    TooManyRequests,
    Unauthorized,
)
from hubcore.errors import ServiceUnavailable as Unavailable

__all__ = ["BadRequest", "Conflict", "NotFound", "TooManyRequests", "Unauthorized", "Unavailable"]
