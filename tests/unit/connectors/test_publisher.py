"""The publisher's own logic, with a stand-in producer (no broker): edge dedupe, timeouts,
and replacing a producer whose sender died for good."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.errors import KafkaUnavailable
from connectors.publisher import Publisher
from hubcore.settings import Settings
from schemas import RawMessage, Sender

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def record(n: int, text: str = "hi") -> RawMessage:
    return RawMessage(
        id=f"msg_{n}",
        user_id="alice",
        platform="generic",
        account_id="acc_1",
        conversation_id="conv_1",
        external_conversation_id="c",
        external_message_id=str(n),
        sender=Sender(id="s"),
        text=text,
        sent_at=T0,
        received_at=T0,
    )


class StandInProducer:
    """Acks at once, or never (`hang`); its sender task is done when `dead`."""

    def __init__(self, *, hang: bool = False, dead: bool = False) -> None:
        self.hang = hang
        self.sent: list[tuple[str, bytes, bytes]] = []
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if dead:
            done.set_result(None)
        self._sender = type("Sender", (), {"sender_task": done})()
        self.stopped = False

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        self.sent.append((topic, key, value))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if not self.hang:
            future.set_result(None)
        return future

    async def stop(self) -> None:
        self.stopped = True


def publisher_with(producer: StandInProducer, **settings: Any) -> Publisher:
    publisher = Publisher(Settings(_env_file=None, kafka_request_timeout=0.2, **settings))
    publisher._producer = producer
    publisher._ready.set()
    return publisher


async def test_acked_records_are_not_sent_again_but_edits_are() -> None:
    producer = StandInProducer()
    publisher = publisher_with(producer)
    first = await publisher.publish([record(1), record(2), record(1)], source="webhook")
    assert (first.produced, first.duplicates) == (2, 1)
    again = await publisher.publish([record(1), record(2, text="edited")], source="webhook")
    assert (again.produced, again.duplicates) == (1, 1)
    assert [(t, k) for t, k, _ in producer.sent] == [("hub.raw-messages", b"alice")] * 3
    assert RawMessage.from_json(producer.sent[-1][2]).text == "edited"


async def test_no_ack_in_time_is_unavailable_and_not_remembered() -> None:
    producer = StandInProducer(hang=True)
    publisher = publisher_with(producer)
    with pytest.raises(KafkaUnavailable, match=r"did not acknowledge within 0\.2s"):
        await publisher.publish([record(1)], source="webhook")
    producer.hang = False
    assert (await publisher.publish([record(1)], source="webhook")).produced == 1
    assert publisher.ready  # a slow or absent broker heals by itself: keep the producer


async def test_a_producer_whose_sender_died_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    reconnected = asyncio.Event()

    async def fake_connect(self: Publisher) -> None:
        reconnected.set()

    monkeypatch.setattr(Publisher, "_connect", fake_connect)
    producer = StandInProducer(hang=True, dead=True)
    publisher = publisher_with(producer)
    with pytest.raises(KafkaUnavailable):
        await publisher.publish([record(1)], source="webhook")
    assert not publisher.ready
    await asyncio.wait_for(reconnected.wait(), 5)
    assert producer.stopped
