"""deploy/nginx.conf in front of two `hub gateway` processes: Socket.IO with default
transports (long-polling first) needs every request of a session on one process."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubcore.settings import Settings
from tests.integration.gateway_kit import (
    GatewayAddress,
    event_ids,
    new_message,
    open_ws,
    produce,
    recv_events,
    sio_client,
    token,
    two_gateway_processes,
)
from tests.local_servers import nginx_proxy

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_default_transport_clients_work_through_the_sticky_proxy(
    settings: Settings, tmp_path: Path
) -> None:
    async with two_gateway_processes(settings, tmp_path) as (gw1, gw2):
        with nginx_proxy([gw1.port, gw2.port]) as port:
            proxy = GatewayAddress(port)
            async with (
                sio_client(proxy.base_url, emitAuth=token(settings, "pia")) as pia1,
                sio_client(proxy.base_url, emitAuth=token(settings, "pia")) as pia2,
            ):
                for client in (pia1, pia2):
                    await client.until("authenticated")
                ws = await open_ws(proxy, token(settings, "pia"))  # /ws goes through too
                await produce(settings, [new_message("pia", n) for n in range(5)])
                for client in (pia1, pia2):
                    assert event_ids(await client.events(5)) == [f"msg_pia_{n}" for n in range(5)]
                    assert not [
                        s for s in client.seen if s["ev"] in ("disconnect", "connect_error")
                    ]
                    assert [s["ev"] for s in client.seen].count("connect") == 1
                assert len(await recv_events(ws, 5)) == 5
                await ws.close()
