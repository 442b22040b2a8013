"""The connection limiter's answers, as the Socket.IO layer will call them too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gateway.limits import ConnectionLimits, refuse_handshake
from gateway.metrics import HTTP_REQUESTS
from gateway.middleware import RequestLog
from hubcore.settings import Settings


async def _answer(scope: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await refuse_handshake(scope, receive, send, 2.5)
    return sent


async def test_limits_per_ip_and_user() -> None:
    limits = ConnectionLimits(
        Settings(_env_file=None, rate_ws_per_ip="2/min", rate_ws_per_user="1/h")
    )
    scope = {"client": ("203.0.113.9", 5000)}
    assert [limits.admit_ip(scope, "socketio") for _ in range(2)] == [0.0, 0.0]
    assert limits.admit_ip(scope, "socketio") > 0
    assert limits.admit_ip({"client": ("203.0.113.10", 1)}) == 0.0
    assert limits.admit_user("alice") == 0.0 and limits.admit_user("alice") > 3000


async def test_handshakes_are_refused_with_429_and_retry_after() -> None:
    for scope, prefix in (
        ({"type": "http"}, "http."),
        ({"type": "websocket", "extensions": {"websocket.http.response": {}}}, "websocket.http."),
    ):
        start, body = await _answer(scope)
        assert start["type"] == prefix + "response.start" and start["status"] == 429
        assert (b"retry-after", b"3") in start["headers"]
        assert body["type"] == prefix + "response.body" and b"rate_limited" in body["body"]
    assert await _answer({"type": "websocket"}) == [{"type": "websocket.close", "code": 1013}]


def test_the_shipped_compose_trusts_only_its_own_network() -> None:
    """`*` let whoever reached a gateway name their own address (issue 22)."""
    root = Path(__file__).resolve().parents[2]
    compose = yaml.safe_load((root / "docker-compose.yml").read_text(encoding="utf-8"))
    trusted = compose["services"]["gateway"]["environment"]["HUB_TRUSTED_PROXIES"]
    subnets = [c["subnet"] for c in compose["networks"]["default"]["ipam"]["config"]]
    assert trusted != "*" and trusted.split(",") == subnets
    nginx = (root / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    assert "X-Forwarded-For $remote_addr;" in nginx and "proxy_add_x_forwarded_for" not in nginx


async def test_request_methods_add_no_metric_series_of_their_own() -> None:
    """HTTP methods are whatever a client writes (h11 takes any token): counted as
    `other` unless one the API knows."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 405, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def ignore(message: dict[str, Any]) -> None:
        pass

    def methods() -> set[str]:
        return {s.labels["method"] for m in HTTP_REQUESTS.collect() for s in m.samples}

    before = methods()
    logged = RequestLog(app)
    for n in range(50):
        scope = {"type": "http", "method": f"X{n}", "path": "/x", "headers": []}
        await logged(scope, None, ignore)
    assert methods() - before <= {"other"}
