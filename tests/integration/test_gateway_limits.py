"""Rate limits and security headers of the gateway against a real uvicorn, Kafka and store."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from hubcore.settings import Settings
from tests.integration.gateway_kit import (
    GatewayAddress,
    frames_until_closed,
    ids,
    new_message,
    open_ws,
    produce,
    recv_events,
    running_gateway,
    sio_client,
    token,
)
from tests.local_servers import nginx_proxy

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
        # Sockets to this origin only: `ws: wss:` let an injected script reach any host.
        assert "connect-src 'self';" in csp and "ws:" not in csp
        assert "unsafe-inline" not in csp  # styles come from /static/inbox.css
        script = (await http.get("/static/inbox.js")).text
        assert "history.replaceState" in script  # ?token= leaves the address bar


def _hardened(headers: Any) -> bool:
    return bool(
        headers.get("x-content-type-options") == "nosniff"
        and headers.get("referrer-policy") == "no-referrer"
    )


async def test_security_headers_on_sockets_and_their_refusals(
    settings_factory: Callable[..., Settings],
) -> None:
    async with running_gateway(settings_factory(rate_ws_per_ip="2/min")) as gw:
        ws = await websockets.connect(gw.ws_url, open_timeout=15)
        assert ws.response is not None and _hardened(ws.response.headers)
        await ws.close()
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=15) as http:
            polling = await http.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
            assert polling.status_code == 200 and _hardened(polling.headers)
            refused = await http.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
            assert refused.status_code == 429 and _hardened(refused.headers)
        with pytest.raises(InvalidStatus) as info:
            await websockets.connect(gw.ws_url, open_timeout=15)
        assert info.value.response.status_code == 429
        assert _hardened(info.value.response.headers)


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


async def test_open_sockets_per_user_are_capped_across_ws_and_socketio(
    settings_factory: Callable[..., Settings],
) -> None:
    """One token could otherwise hold tens of thousands of sockets (a rate is no cap):
    the third of alice's sockets, of either kind, is refused; bob's are not."""
    s = settings_factory(ws_max_per_user=2, rate_ws_per_user="100/min")
    async with running_gateway(s) as gw:
        alice = token(s, "alice")
        kept = [await open_ws(gw, alice)]
        async with sio_client(gw.base_url, emitAuth=alice) as second:
            await second.until("authenticated")
            third = await open_ws(gw)
            await third.send(orjson.dumps({"type": "authenticate", "token": alice}).decode())
            frames, code = await frames_until_closed(third)
            assert code == 4429
            assert [f["data"]["code"] for f in frames] == ["too_many_connections"]
            assert "HUB_WS_MAX_PER_USER" in frames[0]["data"]["message"]
            async with sio_client(gw.base_url, emitAuth=alice) as fourth:
                error, _ = await fourth.until("error")
                assert error["data"]["code"] == "too_many_connections"
                gone, _ = await fourth.until("disconnect")
                assert gone["reason"] == "io server disconnect"
            kept.append(await open_ws(gw, token(s, "bob")))  # another user is not affected
        # One of alice's closed: a new one is let in.
        kept.append(await open_ws(gw, alice))
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=15) as http:
            metrics = (await http.get("/metrics")).text
        assert 'hub_gateway_rate_limited_total{limit="ws_open"} 1.0' in metrics
        assert 'hub_gateway_rate_limited_total{limit="socketio_open"} 1.0' in metrics
        for ws in kept:
            await ws.close()


async def test_accounts_per_user_are_capped(settings_factory: Callable[..., Settings]) -> None:
    async with running_gateway(settings_factory(max_accounts_per_user=3)) as gw:
        s = gw.app.settings
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=15) as http:

            async def create(user: str, n: int) -> httpx.Response:
                body = {
                    "platform": "generic",
                    "externalId": f"crm-{n}",
                    "credentials": {"secret": "s"},
                }
                headers = {"Authorization": f"Bearer {token(s, user)}"}
                return await http.post("/api/accounts", json=body, headers=headers)

            assert [(await create("alice", n)).status_code for n in range(3)] == [201] * 3
            refused = await create("alice", 3)
            assert refused.status_code == 409, refused.text
            assert refused.json()["code"] == "too_many_accounts"
            assert "HUB_MAX_ACCOUNTS_PER_USER" in refused.json()["detail"]
            assert (await create("bob", 0)).status_code == 201
            alice = {"Authorization": f"Bearer {token(s, 'alice')}"}
            listed = (await http.get("/api/accounts", headers=alice)).json()["accounts"]
            assert len(listed) == 3
            await http.delete(f"/api/accounts/{listed[0]['id']}", headers=alice)
            assert (await create("alice", 4)).status_code == 201


async def test_forged_forwarded_addresses_do_not_bypass_the_limit_behind_nginx(
    settings_factory: Callable[..., Settings],
) -> None:
    """deploy/nginx.conf appended the client's own `X-Forwarded-For`, so the gateway took
    the client-written address: every handshake came from someone new (issue 22)."""
    async with running_gateway(settings_factory(rate_ws_per_ip="2/min")) as gw:
        with nginx_proxy([gw.port]) as port:
            proxy = GatewayAddress(port)
            codes = []
            for n in range(3):
                forged = {"X-Forwarded-For": f"198.51.100.{n}"}
                try:
                    ws = await websockets.connect(
                        proxy.ws_url, additional_headers=forged, open_timeout=15
                    )
                except InvalidStatus as refused:
                    codes.append(refused.response.status_code)
                else:
                    codes.append(101)
                    await ws.close()
    assert codes == [101, 101, 429]
