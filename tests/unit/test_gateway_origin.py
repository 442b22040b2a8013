"""The WebSocket Origin policy: listed, same-origin and absent pass; foreign is refused."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.origin import OriginPolicy


def _scope(origin: str | None, host: str = "127.0.0.1:8000", scheme: str = "ws") -> dict[str, Any]:
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return {"type": "websocket", "path": "/ws", "scheme": scheme, "headers": headers}


@pytest.mark.parametrize(
    ("origin", "host", "scheme", "allowed"),
    [
        ("http://localhost:5173", "127.0.0.1:8000", "ws", True),  # listed
        (None, "127.0.0.1:8000", "ws", True),  # native client
        ("http://127.0.0.1:8000", "127.0.0.1:8000", "ws", True),  # the gateway's own page
        ("https://hub.example", "hub.example", "wss", True),
        ("http://hub.example", "hub.example", "wss", False),  # scheme differs
        ("http://evil.example", "127.0.0.1:8000", "ws", False),
        ("http://127.0.0.1:8000.evil.example", "127.0.0.1:8000", "ws", False),
    ],
)
def test_origin_policy(origin: str | None, host: str, scheme: str, allowed: bool) -> None:
    assert OriginPolicy(["http://localhost:5173"]).allows(_scope(origin, host, scheme)) is allowed
