"""Reading platform JSON defensively: each failure names the path of what is wrong."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from connectors.errors import BadPayload

JsonObject = dict[str, Any]


def json_object(body: bytes) -> JsonObject:
    """The body as a JSON object, or `BadPayload` saying why not."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadPayload(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadPayload(f"body is a JSON {type(data).__name__}, not an object")
    return data


def obj(parent: JsonObject, key: str, path: str) -> JsonObject:
    """A required nested object."""
    value = parent.get(key)
    if not isinstance(value, dict):
        raise BadPayload(f"{path} is {_missing_or_not(value, 'an object')}")
    return value


def array(parent: JsonObject, key: str, path: str, *, required: bool = True) -> list[Any]:
    """A list (absent and not required: empty)."""
    value = parent.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise BadPayload(f"{path} is {_missing_or_not(value, 'an array')}")
    return value


def string(parent: JsonObject, key: str, path: str) -> str:
    """A required, non-empty string."""
    value = parent.get(key)
    if not isinstance(value, str) or not value:
        raise BadPayload(f"{path} is {_missing_or_not(value, 'a non-empty string')}")
    return value


def optional_string(parent: JsonObject, key: str) -> str | None:
    """A string if present and non-empty, else None (wrong types count as absent)."""
    value = parent.get(key)
    return value if isinstance(value, str) and value else None


def identifier(parent: JsonObject, key: str, path: str) -> str:
    """A platform id that may be sent as an integer or a string; always returned as str."""
    value = parent.get(key)
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        raise BadPayload(f"{path} is {_missing_or_not(value, 'an integer or string id')}")
    return str(value)


def unix_time(value: Any, path: str) -> datetime:
    """Seconds since the epoch (int, float or their string form) as an aware UTC datetime."""
    try:
        seconds = float(value)
        if isinstance(value, bool) or not 0 <= seconds < 1e11:
            raise ValueError
        return datetime.fromtimestamp(seconds, UTC)
    except (TypeError, ValueError, OverflowError):
        raise BadPayload(f"{path} is {_missing_or_not(value, 'a Unix time')}") from None


def _missing_or_not(value: Any, what: str) -> str:
    return "missing" if value is None else f"not {what} (got {type(value).__name__})"
