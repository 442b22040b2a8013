"""End to end: a customer's Telegram message, the user's reply as the gateway writes it, a
real `hub streams` worker and the connectors sending through the Telegram API stand-in;
the reply ends `sent` in the store with the platform's message id."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubcore.kafka import Topics
from hubcore.mongo import MESSAGES, Document
from schemas import conversation_id
from tests.integration.connectors.harness import eventually
from tests.integration.connectors.sending_rig import CHATS, Rig
from tests.streams_helpers import Worker, produce, raw_message, send_command, wait_ready, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_a_reply_goes_out_through_streams_and_comes_back_sent(
    rig: Rig, tmp_path: Path
) -> None:
    account = await rig.account("telegram")
    chat = CHATS["telegram"]
    conv = conversation_id("telegram", account.id, chat)
    inbound = raw_message(account.user_id, 41, chat=chat).model_copy(
        update={"account_id": account.id, "conversation_id": conv}
    )
    topics = Topics.from_settings(rig.settings)
    worker = Worker(worker_env(rig.settings, tmp_path), tmp_path / "worker.log")
    worker.start()
    try:
        await wait_ready(worker)
        key = account.user_id.encode()
        await produce(rig.settings, topics.raw_messages, [(key, inbound.to_json())])
        reply = send_command(account.user_id, conv, "c-e2e", text="Shipped today")
        await produce(rig.settings, topics.commands, [(key, reply.to_json())])

        async def sent() -> Document | None:
            doc = await rig.db[MESSAGES].find_one({"_id": reply.message_id, "status": "sent"})
            return doc

        doc: Document = await eventually(sent, 60, "the reply stored as sent")
        [call] = rig.fake.of("telegram")
        assert call.body["chat_id"] == chat
        assert call.body["text"] == "Shipped today"
        assert call.body["reply_parameters"]["message_id"] == 41  # the customer's message
        assert doc["direction"] == "outbound"
        assert doc["platformMessageId"]
    finally:
        worker.stop()
