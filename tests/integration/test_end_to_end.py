"""The whole hub through its real processes: webhook -> WebSocket -> mark read -> REST."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets

from tests.integration.hub_process import RunningHub, hub_up
from tests.resources import SessionResources
from tests.streams_helpers import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
WAIT = 90.0  # the first records wait for Faust's consumer group to form


@pytest.fixture(scope="module")
def hub(
    resources: SessionResources, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningHub]:
    with hub_up(resources, tmp_path_factory.mktemp("hub-up")) as running:
        yield running


async def _until(
    ws: Any, wanted: set[str], seen: list[dict[str, Any]], done: Any = lambda frames: True
) -> dict[str, dict[str, Any]]:
    """Read frames until every type in `wanted` arrived (and `done` agrees); return the
    last frame of each type."""
    last: dict[str, dict[str, Any]] = {}
    async with asyncio.timeout(WAIT):
        while not (wanted <= last.keys() and done(last)):
            frame = orjson.loads(await ws.recv())
            seen.append(frame)
            last[frame["type"]] = frame
    return last


async def test_webhook_reaches_the_socket_and_mark_read_clears_it(hub: RunningHub) -> None:
    user, other = "e2e-alice", "e2e-bob"
    account, secret = await asyncio.to_thread(hub.create_generic_account, user)
    headers = {"Authorization": f"Bearer {hub.token(user)}"}
    frames: list[dict[str, Any]] = []
    other_frames: list[dict[str, Any]] = []
    async with websockets.connect(hub.ws_url) as ws, websockets.connect(hub.ws_url) as ws_b:
        for sock, who in ((ws, user), (ws_b, other)):
            await sock.send(
                orjson.dumps({"type": "authenticate", "token": hub.token(who)}).decode()
            )
            hello = orjson.loads(await sock.recv())
            assert hello["type"] == "authenticated" and hello["data"]["userId"] == who

        resp = await asyncio.to_thread(hub.send_generic, account, secret, text="Where is my order?")
        assert resp.status_code == 200, resp.text
        [message_id] = resp.json()["messageIds"]

        got = await _until(
            ws,
            {"new_message", "unread_count_update"},
            frames,
            lambda last: (
                last.get("unread_count_update", {})
                .get("data", {})
                .get("unreadCounts", {})
                .get("total")
                == 1
            ),
        )
        message = got["new_message"]["data"]["message"]
        assert message["id"] == message_id and message["text"] == "Where is my order?"
        assert message["accountId"] == account and message["status"] == "unread"
        conversation = message["conversationId"]
        counts = got["unread_count_update"]["data"]["unreadCounts"]
        assert counts["byPlatform"] == {"generic": 1} and counts["byConversation"] == {
            conversation: 1
        }
        assert all(f["cursor"] for f in frames if f["type"] != "pong")

        async with httpx.AsyncClient(base_url=hub.gateway, headers=headers) as api:
            read = await api.post(f"/api/conversations/{conversation}/read")
            assert read.status_code == 202, read.text

            got = await _until(
                ws,
                {"message_status_update", "unread_count_update"},
                frames,
                lambda last: last["unread_count_update"]["data"]["unreadCounts"]["total"] == 0,
            )
            status = got["message_status_update"]["data"]
            assert status == {
                "conversationId": conversation,
                "messageIds": [message_id],
                "status": "read",
            }

            # REST reads the projections, which may trail the events by the sink's lag.
            async def cleared() -> bool:
                return bool((await api.get("/api/unread")).json()["total"] == 0)

            await wait_for(cleared, timeout=WAIT, what="REST's unread total 0")
            msgs = (await api.get(f"/api/conversations/{conversation}/messages")).json()
            assert [(m["id"], m["status"]) for m in msgs["messages"]] == [(message_id, "read")]

        # Bob's socket saw nothing of Alice's.
        await ws_b.send('{"type": "ping"}')
        async with asyncio.timeout(10):
            while True:
                frame = orjson.loads(await ws_b.recv())
                other_frames.append(frame)
                if frame["type"] == "pong":
                    break
        # Only Bob's own presence (his socket connected) besides the pong.
        assert {f["type"] for f in other_frames[:-1]} <= {"presence_update"}
        assert other_frames[-1]["type"] == "pong"

    async with httpx.AsyncClient(timeout=10) as client:
        health = await client.get(f"{hub.gateway}/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert (await client.get(f"{hub.connectors}/health")).status_code == 200


def test_hub_up_merges_prefixed_logs(hub: RunningHub) -> None:
    text = hub.log.read_text(errors="replace")
    for name in ("connectors", "streams", "gateway"):
        assert re.search(rf"^{name} +\| ", text, re.M), f"no {name} lines in:\n{hub.log_tail()}"


def test_bad_webhook_is_refused_and_unknown_account_is_404(hub: RunningHub, tmp_path: Path) -> None:
    account, _ = hub.create_generic_account("e2e-carol")
    forged = hub.send_generic(account, "not-the-secret")
    assert forged.status_code == 401
    assert hub.send_generic("acc_doesnotexist", "x").status_code == 404
