"""Socket.IO connection state recovery from Kafka, with the real npm socket.io-client."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from hubcore.settings import Settings
from tests.integration.gateway_kit import (
    DEADLINE,
    JS_DIR,
    RunningGateway,
    SioClient,
    event_ids,
    new_message,
    produce,
    require_socketio_client,
    sio_client,
    token,
    two_gateway_processes,
)

pytestmark = pytest.mark.integration


async def _upgraded(client: SioClient) -> None:
    if not any(seen["ev"] == "upgrade" for seen in client.seen):
        await client.until("upgrade")


async def test_seed_client_recovers_every_missed_event_once_in_order(gw: RunningGateway) -> None:
    s = gw.app.settings
    # The seed's handshake (emit authenticate on connect), default transports, no option
    # about recovery: socket.io-client >= 4.6 does it when the server announces a pid.
    async with sio_client(gw.base_url, emitAuth=token(s, "rita")) as rita:
        await rita.until("authenticated")
        await _upgraded(rita)
        await produce(s, [new_message("rita", n) for n in range(3)])
        before = await rita.events(3)
        await rita.send(op="drop")
        gone, _ = await rita.until("disconnect")
        assert gone["reason"] == "transport close"
        missed = await produce(s, [new_message("rita", n) for n in range(3, 10)])
        await produce(s, [new_message("other", 1)])
        await rita.send(op="reconnect")
        connected, _ = await rita.until("connect")
        assert connected["recovered"] is True
        after = await rita.events(7)
        assert [e["offset"] for e in after] == missed
        await produce(s, [new_message("rita", 10)])
        after += await rita.events(1)
        assert event_ids(before + after) == [f"msg_rita_{n}" for n in range(11)]
        await _nothing_before_a_sentinel(rita, s, "rita", 11)


@pytest.mark.parametrize("handshake", ["emitAuth", "auth"])
async def test_a_client_dropped_before_its_first_event_recovers_everything(
    gw: RunningGateway, handshake: str
) -> None:
    s = gw.app.settings
    user = f"early_{handshake}"
    # `authenticated` is the first event: its cursor is the client's offset before any other.
    login = (
        {"emitAuth": token(s, user)}
        if handshake == "emitAuth"
        else {"auth": {"token": token(s, user)}}
    )
    async with sio_client(gw.base_url, **login) as early:
        first, _ = await early.until("connect")
        authenticated, _ = await early.until("authenticated")
        assert authenticated["offset"] == authenticated["data"]["cursor"]
        await _upgraded(early)
        await early.send(op="drop")
        gone, _ = await early.until("disconnect")
        assert gone["reason"] == "transport close"
        missed = await produce(s, [new_message(user, n) for n in range(4)])
        await produce(s, [new_message("other", 1)])
        await early.send(op="reconnect")
        connected, _ = await early.until("connect")
        assert connected["recovered"] is True and connected["pid"] == first["pid"]
        after = await early.events(4)
        assert [e["offset"] for e in after] == missed
        assert event_ids(after) == [f"msg_{user}_{n}" for n in range(4)]
        await _nothing_before_a_sentinel(early, s, user, 4)


async def test_recovery_on_another_gateway_process_after_a_crash(
    settings: Settings, tmp_path: Path
) -> None:
    async with two_gateway_processes(settings, tmp_path) as (gw1, gw2):
        auth = {"token": token(settings, "carl")}
        async with sio_client(gw1.base_url, auth=auth, transports=["websocket"]) as carl:
            first, _ = await carl.until("connect")
            await carl.until("authenticated")
            await produce(settings, [new_message("carl", n) for n in range(2)])
            before = await carl.events(2)
            gw1.kill()
            gone, _ = await carl.until("disconnect")
            assert gone["reason"] == "transport close"
            missed = await produce(settings, [new_message("carl", n) for n in range(2, 8)])
            await carl.send(op="reconnect", url=gw2.base_url)
            connected, _ = await carl.until("connect")
            assert connected["recovered"] is True and connected["pid"] == first["pid"]
            after = await carl.events(6)
            assert [e["offset"] for e in after] == missed
            assert event_ids(before + after) == [f"msg_carl_{n}" for n in range(8)]
            await _nothing_before_a_sentinel(carl, settings, "carl", 8)


async def test_a_foreign_pid_and_offset_get_a_fresh_session_and_nothing_foreign(
    gw: RunningGateway,
) -> None:
    s = gw.app.settings
    ws_only = {"transports": ["websocket"]}
    async with sio_client(gw.base_url, auth={"token": token(s, "vic")}, **ws_only) as vic:
        vic_pid = (await vic.until("connect"))[0]["pid"]
        await produce(s, [new_message("vic", 1)])
        (event,) = await vic.events(1)
        stolen = {"pid": vic_pid, "offset": event["offset"]}
        missed = [new_message("vic", n) for n in range(2, 5)]
        await produce(s, missed)
        # Handshake auth: the pid is bound to vic, so mallory's session is a fresh one.
        async with sio_client(
            gw.base_url, auth={"token": token(s, "mal")}, **stolen, **ws_only
        ) as mal:
            connected, _ = await mal.until("connect")
            assert connected["recovered"] is False and connected["pid"] != vic_pid
            authenticated, _ = await mal.until("authenticated")
            assert authenticated["data"]["userId"] == "mal"
            await produce(s, [new_message("vic", 9), new_message("mal", 1)])
            assert event_ids(await mal.events(1)) == ["msg_mal_1"]  # none of vic's
        # The seed's handshake: the offset is checked when mallory authenticates.
        async with sio_client(gw.base_url, emitAuth=token(s, "mal"), **stolen, **ws_only) as mal:
            await mal.until("authenticated")
            await produce(s, [new_message("vic", 10), new_message("mal", 2)])
            assert event_ids(await mal.events(1)) == ["msg_mal_2"]  # none of vic's


async def test_an_anonymous_recovery_refused_at_authenticate_is_taken_back(
    gw: RunningGateway,
) -> None:
    s = gw.app.settings
    ws_only = {"transports": ["websocket"]}
    # The seed's handshake: vic's pid was issued before vic was known (anonymous).
    async with sio_client(gw.base_url, emitAuth=token(s, "vic"), **ws_only) as vic:
        vic_pid = (await vic.until("connect"))[0]["pid"]
        await vic.until("authenticated")
        await produce(s, [new_message("vic", 1)])
        (event,) = await vic.events(1)
    await produce(s, [new_message("vic", 2)])
    stolen = {"pid": vic_pid, "offset": event["offset"]}
    async with sio_client(gw.base_url, emitAuth=token(s, "mal"), **stolen, **ws_only) as mal:
        # Answered before the user is known: a well-formed anonymous pid looks recovered...
        first, _ = await mal.until("connect")
        assert first["recovered"] is True
        # ...until `authenticate` finds the offset is vic's: a second CONNECT answer with a
        # new pid takes it back (the client's `recovered` turns false) and nothing of vic's.
        again, before = await mal.until("connect")
        assert again["recovered"] is False and again["pid"] != vic_pid
        assert all(seen["ev"] != "new_message" for seen in before)
        await mal.until("authenticated")
        await produce(s, [new_message("vic", 3), new_message("mal", 1)])
        assert event_ids(await mal.events(1)) == ["msg_mal_1"]


async def test_authenticate_with_resume_from(gw: RunningGateway) -> None:
    s = gw.app.settings
    cursors = await produce(s, [new_message("rae", n) for n in range(4)])
    resume = {"emitAuth": token(s, "rae"), "resumeFrom": cursors[0]}
    async with sio_client(gw.base_url, **resume) as rae:
        await rae.until("authenticated")
        assert event_ids(await rae.events(3)) == ["msg_rae_1", "msg_rae_2", "msg_rae_3"]
    async with sio_client(gw.base_url, emitAuth=token(s, "rae"), resumeFrom="bogus") as rae:
        error, _ = await rae.until("error")
        assert error["data"]["code"] == "invalid_cursor"
        await produce(s, [new_message("rae", 9)])
        assert event_ids(await rae.events(1)) == ["msg_rae_9"]  # live after the refusal


async def test_the_seed_client_code_runs_unchanged(gw: RunningGateway) -> None:
    require_socketio_client()
    env = {**os.environ, "HUB_URL": gw.base_url, "HUB_TOKEN": token(gw.app.settings, "sue")}
    process = await asyncio.create_subprocess_exec(
        "node", str(JS_DIR / "seed_client.mjs"), env=env, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(DEADLINE):
            line = await process.stdout.readline()
            assert line.startswith(b"Authenticated:") and b"userId: 'sue'" in line, line
            await produce(gw.app.settings, [new_message("sue", 1)])
            printed = b""
            while b"message 1 for sue" not in printed:  # console.log spreads it over lines
                printed += await process.stdout.readline()
            assert printed.startswith(b"New message: {") and b"id: 'msg_sue_1'" in printed
    finally:
        process.kill()
        await process.wait()


async def _nothing_before_a_sentinel(
    client: SioClient, settings: Settings, user: str, n: int
) -> None:
    """No duplicate reaches the client: a user's events arrive in the order produced, so
    the next event after producing message `n` now must be that one (no quiet period
    guessed with a sleep)."""
    await produce(settings, [new_message(user, n)])
    assert event_ids(await client.events(1)) == [f"msg_{user}_{n}"]
