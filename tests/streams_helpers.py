"""Builders and Kafka/Mongo helpers shared by the streams tests."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.structs import RecordMetadata
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.kafka import create_consumer, create_producer
from hubcore.mongo import Document
from hubcore.settings import Settings
from schemas import (
    DeleteMessage,
    EditMessage,
    MarkRead,
    RawMessage,
    Sender,
    SendMessage,
    SendResult,
    StatusReport,
    conversation_id,
    message_id,
    outbound_message_id,
)
from schemas.base import Record
from streams.sink.sinks import Headers, KafkaSink
from tests import local_servers
from tests.local_servers import free_port

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent


def raw_message(
    user: str,
    n: int,
    *,
    chat: str = "chat-1",
    platform: str = "telegram",
    account: str = "acc_1",
    text: str | None = None,
) -> RawMessage:
    """A raw message of `user`; `n` makes its id (and time) distinct."""
    acc = f"{account}-{user}"
    return RawMessage.model_validate(
        {
            "id": message_id(platform, acc, chat, str(n)),
            "userId": user,
            "platform": platform,
            "accountId": acc,
            "conversationId": conversation_id(platform, acc, chat),
            "externalConversationId": chat,
            "externalMessageId": str(n),
            "conversationTitle": f"Chat {chat}",
            "sender": Sender(id="s1", name="Sam"),
            "text": text if text is not None else f"hello {n}",
            "sentAt": T0 + timedelta(seconds=n),
            "receivedAt": T0 + timedelta(seconds=n, milliseconds=500),
        }
    )


def mark_read(user: str, ids: Iterable[str], command_id: str, conv: str | None = None) -> MarkRead:
    """A mark-read command with explicit ids."""
    return MarkRead(
        id=command_id,
        user_id=user,
        conversation_id=conv,
        message_ids=list(ids),
        issued_at=T0 + timedelta(hours=1),
    )


def send_command(user: str, conv: str, client_id: str, text: str = "On its way") -> SendMessage:
    """A reply as the gateway writes it (ids derived from the client's id)."""
    msg_id = outbound_message_id(user, conv, client_id)
    return SendMessage(
        id="cmd_" + msg_id,
        user_id=user,
        conversation_id=conv,
        message_id=msg_id,
        client_message_id=client_id,
        text=text,
        issued_at=T0 + timedelta(hours=2),
    )


def send_result(
    send: SendMessage, account: str, status: str, platform_id: str | None = None, n: int = 0
) -> SendResult:
    """The connectors' outcome of a reply."""
    return SendResult.model_validate(
        {
            "id": f"res-{send.message_id}-{n}",
            "userId": send.user_id,
            "conversationId": send.conversation_id,
            "messageId": send.message_id,
            "accountId": account,
            "status": status,
            "platformMessageId": platform_id,
            "detail": "chat not found" if status == "failed" else None,
            "attempts": 1,
            "occurredAt": T0 + timedelta(hours=2, seconds=1 + n),
        }
    )


def status_report(user: str, account: str, platform_id: str, status: str, n: int) -> StatusReport:
    """A platform's delivery report (WhatsApp `statuses`), naming only the platform id."""
    return StatusReport.model_validate(
        {
            "id": f"st-{platform_id}-{status}-{n}",
            "userId": user,
            "accountId": account,
            "platformMessageId": platform_id,
            "status": status,
            "occurredAt": T0 + timedelta(hours=2, seconds=10 + n),
        }
    )


def edit_command(raw: RawMessage, text: str, seconds: int) -> EditMessage:
    """A platform's edit of `raw` (Telegram `edited_message`), `seconds` after it was sent."""
    return EditMessage(
        id=f"edit-{raw.id}-{seconds}",
        user_id=raw.user_id,
        conversation_id=raw.conversation_id,
        message_id=raw.id,
        text=text,
        edited_at=raw.sent_at + timedelta(seconds=seconds),
    )


def delete_command(raw: RawMessage, user: str | None = None) -> DeleteMessage:
    """A platform's delete of `raw` (Slack `message_deleted`), as told to `user`."""
    return DeleteMessage(
        id=f"delete-{raw.id}-{user or raw.user_id}",
        user_id=user or raw.user_id,
        conversation_id=raw.conversation_id,
        message_id=raw.id,
        deleted_at=raw.sent_at + timedelta(minutes=5),
    )


class RecordingSink:
    """Keeps what a batch produces, as (topic, key, parsed value), in production order: the
    unit tests' sink (no broker; integration tests use `BrokerSink`)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, dict[str, Any]]] = []

    async def send(self, topic: str, key: bytes | None, value: bytes, headers: Any = ()) -> None:
        """Record one produced record."""
        self.records.append((topic, key, orjson.loads(value)))

    async def flush(self) -> None:
        """Nothing is pending."""

    def on(self, topic: str) -> list[dict[str, Any]]:
        """The values produced on `topic`."""
        return [value for t, _, value in self.records if t == topic]


class BrokerSink(KafkaSink):
    """The worker's Kafka sink on a real producer that, at each flush, reads back from the
    broker what it sent: `records` is (topic, key, parsed value) as the broker stores them,
    in production order, this sink's records only (a test's runs each have one)."""

    def __init__(self, producer: AIOKafkaProducer, bootstrap: str) -> None:
        super().__init__(producer)
        self.bootstrap = bootstrap
        self.records: list[tuple[str, bytes | None, dict[str, Any]]] = []
        self._sent: list[asyncio.Future[RecordMetadata]] = []

    async def send(
        self, topic: str, key: bytes | None, value: bytes, headers: Headers = ()
    ) -> None:
        await super().send(topic, key, value, headers)
        self._sent.append(self._pending[-1])

    def flush(self) -> Awaitable[None]:
        sent, self._sent = self._sent, []
        return self._read_back(super().flush(), sent)

    async def _read_back(
        self, acks: Awaitable[None], sent: list[asyncio.Future[RecordMetadata]]
    ) -> None:
        await acks
        if sent:
            self.records += await read_at(self.bootstrap, [future.result() for future in sent])

    def on(self, topic: str) -> list[dict[str, Any]]:
        """The values produced on `topic`."""
        return [value for t, _, value in self.records if t == topic]


async def read_at(
    bootstrap: str, positions: Sequence[RecordMetadata]
) -> list[tuple[str, bytes | None, dict[str, Any]]]:
    """The records at `positions` (acks of sent records), read from the broker, in order."""
    wanted = [(TopicPartition(p.topic, p.partition), p.offset) for p in positions]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    found: dict[tuple[TopicPartition, int], ConsumerRecord[bytes, bytes]] = {}
    try:
        partitions = {tp for tp, _ in wanted}
        consumer.assign(list(partitions))
        for tp in partitions:
            consumer.seek(tp, min(offset for at, offset in wanted if at == tp))
        async with asyncio.timeout(30):
            while len(found) < len(set(wanted)):
                for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                    found.update(((tp, r.offset), r) for r in records if (tp, r.offset) in wanted)
    finally:
        await consumer.stop()
    return [
        (tp.topic, found[tp, offset].key, orjson.loads(found[tp, offset].value or b"null"))
        for tp, offset in wanted
    ]


async def produce(
    settings: Settings, topic: str, items: Iterable[tuple[bytes | None, bytes]]
) -> None:
    """Produce (key, value) pairs durably, in order."""
    producer = create_producer(settings)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=v, key=k) for k, v in items]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def consume_all(
    settings: Settings, topic: str, *, want: int, timeout: float = 30.0
) -> list[Any]:
    """Read `topic` from the beginning until `want` records arrived or `timeout` passed."""
    consumer = create_consumer(settings, topic, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    got: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while len(got) < want and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                got.extend(records)
    finally:
        await consumer.stop()
    return got


async def wait_for(predicate: Any, *, timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll an async predicate every 0.2 s until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = await predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last: {result!r}")
        await asyncio.sleep(0.2)


async def ground_truth(db: AsyncDatabase[Document], user: str) -> dict[str, int]:
    """Unread messages of `user` per conversation, counted in the store."""
    pipeline: list[dict[str, Any]] = [
        {"$match": {"userId": user, "status": "unread"}},
        {"$group": {"_id": "$conversationId", "n": {"$sum": 1}}},
    ]
    cursor = await db["messages"].aggregate(pipeline)
    return {str(d["_id"]): int(d["n"]) async for d in cursor}


async def assert_counts_are_ground_truth(
    db: AsyncDatabase[Document], expected: dict[str, dict[str, int]]
) -> None:
    """Once the projections settle, `unread` and `conversations` equal `expected` (user ->
    conversation -> unread messages), which must equal the store's own count."""

    async def settled() -> bool:
        docs = {d["_id"]: d async for d in db["unread"].find({})}
        for user, convs in expected.items():
            total = docs.get(user, {}).get("total")
            if total != sum(convs.values()) or await projected_unread(db, user) != convs:
                return False
        return True

    await wait_for(settled, timeout=90, what="unread documents to settle")
    for user, convs in expected.items():
        truth = await ground_truth(db, user)
        assert truth == convs
        unread = await db["unread"].find_one({"_id": user})
        assert unread is not None
        assert unread["total"] == sum(truth.values())
        assert await projected_unread(db, user) == truth


async def projected_unread(db: AsyncDatabase[Document], user: str) -> dict[str, int]:
    """Conversation id -> its projected `unreadCount`, for the user's unread conversations."""
    cursor = db["conversations"].find({"userId": user, "unreadCount": {"$gt": 0}})
    return {str(d["_id"]): int(d["unreadCount"]) async for d in cursor}


def worker_env(settings: Settings, tmp: Path, **extra: str) -> dict[str, str]:
    """The environment of a `hub streams` subprocess for `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        {
            "HUB_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "HUB_MONGO_URL": settings.mongo_url,
            "HUB_MONGO_DB": settings.mongo_db,
            "HUB_TOPIC_NAMESPACE": settings.topic_namespace,
            "HUB_TOPIC_PARTITIONS": str(settings.topic_partitions),
            "HUB_STREAMS_WEB_PORT": str(free_port()),
            "HUB_DATA_DIR": str(tmp / "data"),
            "HUB_LOG_FORMAT": "json",
            **extra,
        }
    )
    return env


class Worker:
    """A `hub streams` subprocess with its output in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.mark = 0

    def start(self) -> None:
        # Readiness is looked for in the output after this point.
        before = self.output()
        self.mark = len(before)
        out = self.log.open("ab")
        if before and not before.endswith("\n"):
            out.write(b"\n")  # a SIGKILLed run's last line stays cut, apart from the next
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub", "streams"],
            cwd=ROOT,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final commit."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM and wait; SIGKILL if it does not end in time."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def batches(self) -> int:
        """How many batch lines the worker logged so far."""
        return self.output().count('"event": "batch"')

    def entries(self, event: str) -> list[dict[str, Any]]:
        """The JSON log entries of `event` logged so far: whole lines only (the worker may
        be half-way through writing the last one), and none cut short by a SIGKILL."""
        output = self.output()
        found = []
        for line in output[: output.rfind("\n") + 1].splitlines():
            if f'"event": "{event}"' in line:
                try:
                    found.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    continue  # the end of a killed run, never a whole entry
        return found

    def batch_times(self) -> list[tuple[float, list[str]]]:
        """(Unix time, its `<topic>:<partition>` sources) of each batch logged so far."""
        return [
            (datetime.fromisoformat(entry["timestamp"]).timestamp(), entry["partitions"])
            for entry in self.entries("batch")
        ]


async def toggle_sink(worker: Worker, paused: bool) -> None:
    """SIGUSR2: hold (or resume) the worker's projection writes; returns once it said so."""
    assert worker.proc is not None
    mark = len(worker.output())
    worker.proc.send_signal(signal.SIGUSR2)
    word = "paused" if paused else "resumed"

    async def logged() -> bool:
        return f"projection sink {word}" in worker.output()[mark:]

    await wait_for(logged, timeout=15, what=f"the sink {word}")


def run_hub(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run one `hub` command (`replay`, `state-hash`) to its end."""
    return local_servers.run_hub(env, *args, cwd=ROOT, timeout=240)


async def wait_ready(worker: Worker, timeout: float = 60.0) -> None:
    """Wait until the worker has joined its group and recovered its table."""

    async def ready() -> bool:
        if worker.proc is not None and worker.proc.poll() is not None:
            raise AssertionError(f"worker exited:\n{worker.output()[-3000:]}")
        return "Worker]: Ready" in worker.output()[worker.mark :]

    await wait_for(ready, timeout=timeout, what="the streams worker to be ready")


PLATFORMS = ("telegram", "whatsapp", "slack")


class MixedHistory:
    """Seeded mixed traffic of several users, in rounds: each round's raw messages, then
    commands naming only messages of that round or earlier (a client reads, and a platform
    edits or deletes, only what it has seen): mark-reads, replies with their results, edits
    and deletes, among them a read then an edit and a read then a reply of one conversation.
    The raws of a round must be stored before its commands are applied, as live."""

    def __init__(self, users: int, *, seed: int, per_round: int = 12) -> None:
        self.rng = random.Random(seed)
        self.users = [f"mixed-{seed}-{n}" for n in range(users)]
        self.per_round = per_round
        self.messages: list[RawMessage] = []
        self._n = 0
        self._edits = 0

    def round(self) -> tuple[list[RawMessage], list[Record]]:
        """The next round: (raw messages, commands), each in the order to produce them."""
        rng = self.rng
        raws = []
        for user in self.users:
            for _ in range(self.per_round):
                self._n += 1
                chat = rng.randrange(4)
                raws.append(
                    raw_message(user, self._n, chat=f"c{chat}", platform=PLATFORMS[chat % 3])
                )
        self.messages += raws
        commands: list[Record] = []
        for user in self.users:
            seen = [m for m in self.messages if m.user_id == user]
            for _ in range(self.per_round // 2):
                commands.extend(self._command(user, seen))
        return raws, commands

    def _command(self, user: str, seen: list[RawMessage]) -> list[Record]:
        rng = self.rng
        target = rng.choice(seen)
        kind = rng.randrange(6)
        self._edits += 1
        tag = f"{self._edits}"
        if kind == 0:  # a tab reads a few messages of a conversation
            ids = [m.id for m in seen if m.conversation_id == target.conversation_id]
            return [mark_read(user, rng.sample(ids, min(3, len(ids))), f"read-{tag}")]
        if kind == 1:  # read, then the platform edits what was read
            return [
                mark_read(user, [target.id], f"read-{tag}"),
                edit_command(target, tag, 30 + self._edits),
            ]
        if kind == 2:  # read, then reply in that conversation, then its result
            reply = send_command(user, target.conversation_id, f"r-{tag}")
            return [
                mark_read(user, [target.id], f"read-{tag}"),
                reply,
                send_result(reply, target.account_id, "sent", f"p-{tag}"),
            ]
        if kind == 3:
            return [edit_command(target, f"edited {tag}", 30 + self._edits)]
        if kind == 4:  # deleted: unread ones stop counting
            return [delete_command(target)]
        return [mark_read(user, [target.id], f"read-{tag}"), delete_command(target)]
