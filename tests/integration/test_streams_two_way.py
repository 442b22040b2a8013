"""A real `hub streams` worker applies a two-way history (replies, send results, WhatsApp
statuses, an edit, a delete, a read) and tells the owner in order; then `hub replay`
rebuilds exactly the same state (same state hash)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.kafka import Topics
from hubcore.mongo import Document
from hubcore.settings import Settings
from schemas.base import Record
from tests.integration.gateway_kit import (
    Frames,
    frames_until,
    open_ws,
    running_gateway,
    token,
)
from tests.streams_helpers import (
    Worker,
    consume_all,
    delete_command,
    edit_command,
    ground_truth,
    mark_read,
    produce,
    projected_unread,
    raw_message,
    run_hub,
    send_command,
    send_result,
    status_report,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USER = "two-way-1"


async def test_the_owners_sockets_see_the_reply_its_status_and_a_delete(
    module_settings: Settings, db: AsyncDatabase[Document]
) -> None:
    topics = Topics.from_settings(module_settings)
    owner = "two-way-ws"
    inbound = [raw_message(owner, n, chat="C7", platform="slack") for n in (1, 2)]
    reply = send_command(owner, inbound[0].conversation_id, "ws-1")
    key = owner.encode()
    async with running_gateway(module_settings) as gateway:
        ws = await open_ws(gateway, token(module_settings, owner))
        other = await open_ws(gateway, token(module_settings, "two-way-nobody"))
        await produce(module_settings, topics.raw_messages, [(key, r.to_json()) for r in inbound])
        await produce(module_settings, topics.commands, [(key, reply.to_json())])
        result = send_result(reply, inbound[0].account_id, "sent", "1700000000.0001")
        await produce(module_settings, topics.commands, [(key, result.to_json())])
        delete = delete_command(inbound[1])
        await produce(module_settings, topics.commands, [(key, delete.to_json())])

        def deleted(frames: Frames) -> bool:
            return any(f["type"] == "message_deleted" for f in frames)

        frames = await frames_until(ws, deleted)
        kinds = [f["type"] for f in frames]
        pending = next(
            i
            for i, f in enumerate(frames)
            if f["type"] == "new_message" and f["data"]["message"]["id"] == reply.message_id
        )
        assert frames[pending]["data"]["message"]["direction"] == "outbound"
        assert frames[pending]["data"]["message"]["status"] == "pending"
        sent = kinds.index("message_status_update")
        assert sent > pending
        assert frames[sent]["data"] == {
            "conversationId": reply.conversation_id,
            "messageIds": [reply.message_id],
            "status": "sent",
        }
        assert frames[kinds.index("message_deleted")]["data"]["messageId"] == inbound[1].id

        def counted(more: Frames) -> bool:
            return any(f["type"] == "unread_count_update" for f in more) and (
                [f for f in frames + more if f["type"] == "unread_count_update"][-1]["data"][
                    "unreadCounts"
                ]["total"]
                == 1
            )

        if not counted([]):
            frames += await frames_until(ws, counted)
        # Another user's socket heard nothing of it: read up to a message of its own, which
        # the gateway dispatched after everything the owner was told.
        sentinel = raw_message("two-way-nobody", 99, chat="C-nobody")
        await produce(
            module_settings, topics.raw_messages, [(b"two-way-nobody", sentinel.to_json())]
        )

        def told_own(heard: Frames) -> bool:
            return any(
                f["type"] == "new_message" and f["data"]["message"]["id"] == sentinel.id
                for f in heard
            )

        heard = await frames_until(other, told_own)
        assert [f for f in heard if owner.encode() in orjson.dumps(f)] == []
        await ws.close()
        await other.close()


def _keyed(items: list[Any]) -> list[tuple[bytes, bytes]]:
    return [(USER.encode(), item.to_json()) for item in items]


async def test_two_way_history_is_applied_and_replayed_identically(
    module_settings: Settings, worker: Worker, db: AsyncDatabase[Document]
) -> None:
    topics = Topics.from_settings(module_settings)
    tg = [raw_message(USER, n, chat="tg-1") for n in (1, 2)]
    wa = [raw_message(USER, n, chat="15551234", platform="whatsapp") for n in (3, 4)]
    sl = [raw_message(USER, n, chat="C9", platform="slack") for n in (5, 6)]
    await produce(module_settings, topics.raw_messages, _keyed(tg + wa + sl))

    async def stored() -> bool:
        return await db["messages"].count_documents({"userId": USER}) == 6

    await wait_for(stored, what="the inbound messages")
    tg_reply = send_command(USER, tg[0].conversation_id, "r-1")
    wa_reply = send_command(USER, wa[0].conversation_id, "r-2")
    sl_reply = send_command(USER, sl[0].conversation_id, "r-3")  # fails, then is retried
    wa_account = wa[0].account_id
    commands: list[Record] = [
        sl_reply,
        send_result(sl_reply, sl[0].account_id, "failed"),
        sl_reply,
        send_result(sl_reply, sl[0].account_id, "sent", "1700000000.000200", n=1),
        tg_reply,
        wa_reply,
        send_result(tg_reply, tg[0].account_id, "sent", "77"),
        send_result(wa_reply, wa_account, "sent", "wamid.Z"),
        status_report(USER, wa_account, "wamid.Z", "delivered", 1),
        status_report(USER, wa_account, "wamid.Z", "read", 2),
        status_report(USER, wa_account, "wamid.Z", "delivered", 3),
        edit_command(tg[1], "corrected", 30),
        delete_command(sl[1]),
        mark_read(USER, [wa[0].id], "read-wa"),
    ]
    await produce(module_settings, topics.commands, _keyed(commands))

    async def settled() -> bool:
        unread = await db["unread"].find_one({"_id": USER})
        reply = await db["messages"].find_one({"_id": wa_reply.message_id})
        return (
            unread is not None
            and unread.get("total") == 4
            and reply is not None
            and reply.get("status") == "read"
            and await db["messages"].count_documents({"_id": sl_reply.message_id, "status": "sent"})
            == 1
        )

    await wait_for(settled, what="the commands applied")
    # Events precede the projections, so every one is on the topic by now.
    records = await consume_all(module_settings, topics.user_events, want=10_000, timeout=8)
    events = [e for e in (orjson.loads(r.value) for r in records) if e.get("userId") == USER]
    statuses = [
        e["data"]["status"]
        for e in events
        if e["type"] == "message_status_update"
        and e["data"]["conversationId"] == wa[0].conversation_id
        and e["data"]["messageIds"] == [wa_reply.message_id]
    ]
    assert statuses == ["sent", "delivered", "read"]
    kinds = {e["type"] for e in events}
    assert {"message_updated", "message_deleted"} <= kinds
    replies = [
        e["data"]["message"]
        for e in events
        if e["type"] == "new_message" and e["data"]["message"]["direction"] == "outbound"
    ]
    assert [(m["id"], m["status"]) for m in replies] == [
        (sl_reply.message_id, "pending"),
        (sl_reply.message_id, "pending"),  # the retry
        (tg_reply.message_id, "pending"),
        (wa_reply.message_id, "pending"),
    ]
    outbound = [
        orjson.loads(r.value)
        for r in await consume_all(module_settings, topics.outbound, want=5, timeout=8)
    ]
    assert sorted(
        (v["messageId"], v["attempt"]) for v in outbound if v["userId"] == USER
    ) == sorted(
        [
            (tg_reply.message_id, 0),
            (wa_reply.message_id, 0),
            (sl_reply.message_id, 0),
            (sl_reply.message_id, 1),
        ]
    )

    truth = await ground_truth(db, USER)
    assert truth == {tg[0].conversation_id: 2, wa[1].conversation_id: 1, sl[0].conversation_id: 1}
    assert await projected_unread(db, USER) == truth
    worker.stop()
    before = run_hub(worker.env, "state-hash")
    assert before.returncode == 0, before.stderr
    replayed = run_hub(worker.env, "replay")
    assert replayed.returncode == 0, replayed.stderr
    after = run_hub(worker.env, "state-hash")
    assert after.stdout.strip() == before.stdout.strip()
    assert await projected_unread(db, USER) == truth
    deleted = await db["messages"].find_one({"_id": sl[1].id})
    assert deleted is not None and (deleted["deleted"], deleted["text"]) == (True, "")
