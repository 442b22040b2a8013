"""structlog configuration: one call at each entry point, console or JSON lines."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger


def _fallback(value: Any) -> Any:
    # What structlog's JSONRenderer does with a value JSON has no type for.
    try:
        return value.__structlog__()
    except AttributeError:
        return repr(value)


# One encoder for every line: json.dumps(..., default=...) builds a new one per call.
_ENCODER = json.JSONEncoder(default=_fallback)


def render_json(_: WrappedLogger, __: str, event_dict: EventDict) -> str:
    """The line as `json.dumps` writes it (structlog's JSONRenderer), at half the cost."""
    return _ENCODER.encode(event_dict)


class UtcStamper:
    """`timestamp` as structlog's `TimeStamper(fmt="iso", utc=True)` writes it
    (`2026-11-30T13:10:59.875737Z`), formatting the date and time once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, _: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        event_dict["timestamp"] = f"{self._prefix}.{int((now - second) * 1e6):06d}Z"
        return event_dict


def configure_logging(level: str = "info", fmt: str = "console") -> None:
    """Route structlog and stdlib logging to stderr with timestamps in UTC."""
    numeric = logging.getLevelName(level.upper())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        UtcStamper(),
    ]
    renderer: structlog.types.Processor
    if fmt == "json":
        renderer = render_json
        shared.append(structlog.processors.format_exc_info)
    else:
        # Plain tracebacks: rich's (the default when installed) print every frame's local
        # values, a password or token among them (issue 22).
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(
        level=numeric, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )
    # The Kafka client is chatty at INFO about routine rebalances.
    logging.getLogger("aiokafka").setLevel(max(numeric, logging.WARNING))
