"""The projection sink's coalescing, without a store: what each write carries, in which
chunks, and when a batch's records are acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import pytest

from hubcore.mongo import Document
from streams.batch.gate import WriteGate
from streams.sink import projector
from streams.sink.projection import Projections, UnreadUpdate
from streams.sink.projector import ProjectionSink


def _convs(ids: range, version: int) -> Projections:
    return Projections({f"c{n}": {"_id": f"c{n}", "version": version} for n in ids})


def test_take_removes_conversations_first_then_unread() -> None:
    parts = _convs(range(3), 1)
    parts.unread = {u: UnreadUpdate(u, 1, 0, {}) for u in ("u1", "u2")}
    first = parts.take(4)
    assert list(first.conversations) == ["c0", "c1", "c2"]
    assert list(first.unread) == ["u1"]
    assert list(parts.ids()) == ["u2"]
    assert len(parts.take(4)) == 1
    assert not parts


def test_refresh_takes_the_newer_state_of_the_same_documents_only() -> None:
    chunk = _convs(range(3), 2)
    chunk.unread = {"u1": UnreadUpdate("u1", 5, 1, {})}
    later = _convs(range(1, 5), 3)
    later.conversations["c0"] = {"_id": "c0", "version": 1}  # older: dropped, not written
    later.unread = {"u1": UnreadUpdate("u1", 6, 2, {}), "u2": UnreadUpdate("u2", 1, 1, {})}
    chunk.refresh(later)
    assert {c: d["version"] for c, d in chunk.conversations.items()} == {"c0": 2, "c1": 3, "c2": 3}
    assert chunk.unread["u1"].total == 2
    # What the chunk did not hold stays for the next write.
    assert list(later.ids()) == ["c3", "c4", "u2"]


class _Store:
    """Stands in for `write_projections`: records each chunk, holds one when asked."""

    def __init__(self) -> None:
        self.chunks: list[tuple[bool, dict[str, int]]] = []
        self.hold: asyncio.Event | None = None
        self.held = asyncio.Event()

    async def write(
        self,
        db: Any,
        conversations: Mapping[str, Document],
        unread: Mapping[str, UnreadUpdate],
        *,
        stored: bool = False,
    ) -> int:
        self.chunks.append((stored, {c: int(d["version"]) for c, d in conversations.items()}))
        if self.hold is not None:
            hold, self.hold = self.hold, None
            self.held.set()
            await hold.wait()
        return len(conversations) + len(unread)


async def test_offers_during_a_write_join_its_remaining_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = _Store()
    monkeypatch.setattr(projector, "write_projections", store.write)
    sink = ProjectionSink(db=None)  # type: ignore[arg-type]  # the store is faked
    acked: list[int] = []
    task = asyncio.create_task(sink.run())
    try:
        sink.offer(_convs(range(20), 1), lambda: acked.append(1))
        await sink.drain()
        assert store.chunks == [(False, {f"c{n}": 1 for n in range(20)})]  # new: one chunk

        store.hold = release = asyncio.Event()
        sink.offer(_convs(range(20), 2), lambda: acked.append(2))
        await store.held.wait()  # the first chunk of stored documents is in flight
        sink.offer(_convs(range(20), 3), lambda: acked.append(3))
        assert acked == [1]
        release.set()
        await sink.drain()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    stored = [chunk for known, chunk in store.chunks[1:] if known]
    assert len(stored) == len(store.chunks) - 1
    # 8 first, then 16 (no store phase came): the second chunk already has version 3,
    # so the next write rewrites only what the first chunk wrote at version 2.
    assert stored == [
        {f"c{n}": 2 for n in range(8)},
        {f"c{n}": 3 for n in range(8, 20)},
        {f"c{n}": 3 for n in range(8)},
    ]
    assert acked == [1, 2, 3]
    assert sink.written == 20 + 20 + 8


async def test_stored_chunks_stay_small_while_batches_are_stored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = _Store()
    monkeypatch.setattr(projector, "write_projections", store.write)
    monkeypatch.setattr(projector, "IDLE_TO_GROW", 3600.0)  # a store phase is always recent
    gate = WriteGate()
    sink = ProjectionSink(db=None, gate=gate)  # type: ignore[arg-type]  # the store is faked
    task = asyncio.create_task(sink.run())
    try:
        async with gate.store():  # a batch's store phase, just now
            pass
        sink.offer(_convs(range(20), 1), lambda: None)
        sink.offer(_convs(range(20), 2), lambda: None)
        await sink.drain()
        sink.offer(_convs(range(20), 3), lambda: None)
        await sink.drain()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert [len(chunk) for _, chunk in store.chunks] == [20, 8, 8, 4]
