"""The write gate: a store phase waits only for the projection chunk in flight; a chunk
waits while a store phase runs or waits, unless it has waited its patience."""

from __future__ import annotations

import asyncio

from streams.batch.gate import NoGate, WriteGate


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
    patience = 0.2
    gate, log = WriteGate(patience=patience), list[str]()
    store_done, chunk_in = asyncio.Event(), asyncio.Event()
    store = asyncio.create_task(_hold(gate, "store", log, store_done, "store"))
    await _settle()

    async def chunk() -> float:
        asked = loop.time()
        async with gate.sink():
            chunk_in.set()
            return loop.time() - asked

    loop = asyncio.get_running_loop()
    waited = asyncio.create_task(chunk())
    await _settle()
    assert not chunk_in.is_set()  # the store phase runs: the chunk waits...
    # ...its patience, then goes ahead while the store phase lasts (no starvation). No
    # upper bound on a loaded machine: the timeout only stops a chunk that never goes.
    async with asyncio.timeout(30):
        await chunk_in.wait()
    assert not store.done() and log == ["store in"]
    assert await waited >= patience - 0.01  # asyncio's timers may fire a tick early
    store_done.set()
    await store


async def test_no_gate_never_waits() -> None:
    gate, log = NoGate(), list[str]()
    never = asyncio.Event()
    chunk = asyncio.create_task(_hold(gate, "sink", log, never, "chunk"))
    store = asyncio.create_task(_hold(gate, "store", log, never, "store"))
    await _settle()
    assert sorted(log) == ["chunk in", "store in"]
    chunk.cancel()
    store.cancel()
