"""Rate limits and security headers of the gateway against a real uvicorn, Kafka and store."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable

import httpx
import orjson
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from hubcore.settings import Settings
from tests.integration.gateway_kit import (
    frames_until_closed,
    ids,
    new_message,
    open_ws,
    produce,
    recv_events,
    running_gateway,
    token,
)

pytestmark = pytest.mark.integration


async def test_rest_requests_per_user_get_429_with_retry_after(
    settings_factory: Callable[..., Settings],
) -> None:
    async with running_gateway(settings_factory(rate_rest_per_user="3/min")) as gw:
        s = gw.app.settings
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=15) as http:
            alice = {"Authorization": f"Bearer {token(s, 'alice')}"}
            codes = [(await http.get("/api/accounts", headers=alice)).status_code for _ in range(3)]
            assert codes == [200, 200, 200]
            limited = await http.get("/api/accounts", headers=alice)
            assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
            assert limited.headers["retry-after"] == "20"
            bob = {"Authorization": f"Bearer {token(s, 'bob')}"}
            assert (await http.get("/api/accounts", headers=bob)).status_code == 200
            metrics = (await http.get("/metrics")).text
            assert 'hub_gateway_rate_limited_total{limit="rest_user"} 1.0' in metrics


async def test_security_headers_on_api_and_page(settings: Settings) -> None:
    async with (
        running_gateway(settings) as gw,
        httpx.AsyncClient(base_url=gw.base_url, timeout=15) as http,
    ):
        api = await http.get("/api/accounts")  # 401 answers carry them too
        page = await http.get("/")
        for answer in (api, page):
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["referrer-policy"] == "no-referrer"
        assert api.headers["content-security-policy"].startswith("default-src 'none'")
        assert api.headers["cache-control"] == "no-store"
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp  # styles come from /static/inbox.css
        script = (await http.get("/static/inbox.js")).text
        assert "history.replaceState" in script  # ?token= leaves the address bar


async def test_ws_handshakes_per_ip_get_429(settings_factory: Callable[..., Settings]) -> None:
    async with running_gateway(settings_factory(rate_ws_per_ip="2/min")) as gw:
        first = await open_ws(gw)
        second = await open_ws(gw)
        with pytest.raises(InvalidStatus) as info:
            await websockets.connect(gw.ws_url, open_timeout=15)
        assert info.value.response.status_code == 429
        assert info.value.response.headers["Retry-After"] == "30"
        # Behind a trusted proxy (loopback by default) the forwarded client counts.
        proxied = await websockets.connect(
            gw.ws_url, additional_headers={"X-Forwarded-For": "198.51.100.7"}, open_timeout=15
        )
        await proxied.close()
        await first.close()
        await second.close()


async def test_ws_connections_per_user_and_another_users_latency(
    settings_factory: Callable[..., Settings],
) -> None:
    """Alice floods connections and is refused with 4429; Bob's events keep arriving
    (their latency is printed: this is a bound, not a benchmark)."""
    async with running_gateway(settings_factory(rate_ws_per_user="3/min")) as gw:
        s = gw.app.settings
        bob = await open_ws(gw, token(s, "bob"))

        async def bob_latency(n: int) -> float:
            started = time.perf_counter()
            await produce(s, [new_message("bob", n)])
            assert ids(await recv_events(bob, 1)) == [f"evt_bob_{n}"]
            return time.perf_counter() - started

        quiet = [await bob_latency(n) for n in range(5)]
        alice_token = token(s, "alice")
        kept = [await open_ws(gw, alice_token) for _ in range(3)]

        async def flood() -> list[int | None]:
            codes = []
            for _ in range(60):
                ws = await open_ws(gw)
                await ws.send(orjson.dumps({"type": "authenticate", "token": alice_token}).decode())
                frames, code = await frames_until_closed(ws)
                assert [f["data"]["code"] for f in frames] == ["rate_limited"]
                codes.append(code)
            return codes

        flooding = asyncio.create_task(flood())
        busy = [await bob_latency(n) for n in range(5, 10)]
        codes = await flooding
        assert set(codes) == {4429}
        print(
            f"bob's event latency: quiet median {statistics.median(quiet) * 1000:.1f} ms, "
            f"during alice's flood median {statistics.median(busy) * 1000:.1f} ms"
        )
        assert max(busy) < 5.0
        for ws in [*kept, bob]:
            await ws.close()
