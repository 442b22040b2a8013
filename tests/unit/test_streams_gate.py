"""The write gate: a store phase waits only for the projection chunk in flight; a chunk
waits while a store phase runs or waits, unless it has waited its patience."""

from __future__ import annotations

import asyncio

from streams.gate import NoGate, WriteGate


async def _hold(
    gate: WriteGate, kind: str, log: list[str], release: asyncio.Event, name: str
) -> None:
    async with gate.store() if kind == "store" else gate.sink():
        log.append(f"{name} in")
        await release.wait()
        log.append(f"{name} out")


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_store_phase_waits_for_the_chunk_in_flight() -> None:
    gate, log = WriteGate(), list[str]()
    chunk_done, store_done = asyncio.Event(), asyncio.Event()
    chunk = asyncio.create_task(_hold(gate, "sink", log, chunk_done, "chunk"))
    await _settle()
    store = asyncio.create_task(_hold(gate, "store", log, store_done, "store"))
    await _settle()
    assert log == ["chunk in"]
    chunk_done.set()
    await _settle()
    assert log == ["chunk in", "chunk out", "store in"]
    store_done.set()
    await asyncio.gather(chunk, store)


async def test_chunk_waits_while_a_store_phase_runs_or_waits() -> None:
    gate, log = WriteGate(patience=5.0), list[str]()
    first_chunk, store_done, second_chunk = asyncio.Event(), asyncio.Event(), asyncio.Event()
    chunk = asyncio.create_task(_hold(gate, "sink", log, first_chunk, "chunk 1"))
    await _settle()
    # A store phase now waits for chunk 1; chunk 2 must not slip in before it.
    store = asyncio.create_task(_hold(gate, "store", log, store_done, "store"))
    await _settle()
    first_chunk.set()
    await chunk
    second = asyncio.create_task(_hold(gate, "sink", log, second_chunk, "chunk 2"))
    await _settle()
    assert log == ["chunk 1 in", "chunk 1 out", "store in"]
    store_done.set()
    second_chunk.set()
    await asyncio.gather(store, second)
    assert log[-2:] == ["chunk 2 in", "chunk 2 out"]


async def test_chunk_goes_ahead_after_its_patience() -> None:
    gate, log = WriteGate(patience=0.05), list[str]()
    store_done, chunk_done = asyncio.Event(), asyncio.Event()
    store = asyncio.create_task(_hold(gate, "store", log, store_done, "store"))
    await _settle()
    chunk = asyncio.create_task(_hold(gate, "sink", log, chunk_done, "chunk"))
    await asyncio.sleep(0.2)
    assert log == ["store in", "chunk in"]  # not starved by a store phase that lasts
    store_done.set()
    chunk_done.set()
    await asyncio.gather(store, chunk)


async def test_no_gate_never_waits() -> None:
    gate, log = NoGate(), list[str]()
    never = asyncio.Event()
    chunk = asyncio.create_task(_hold(gate, "sink", log, never, "chunk"))
    store = asyncio.create_task(_hold(gate, "store", log, never, "store"))
    await _settle()
    assert sorted(log) == ["chunk in", "store in"]
    chunk.cancel()
    store.cancel()
