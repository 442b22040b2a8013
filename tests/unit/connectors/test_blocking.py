"""The bounded pools for blocking calls: one user holds at most `per_user` threads."""

from __future__ import annotations

import asyncio
import threading

from connectors.blocking import BlockingLane


async def test_one_user_holds_at_most_its_share_and_frees_it_when_calls_end() -> None:
    lane = BlockingLane("test", threads=3, per_user=2)
    gate = threading.Event()
    started: list[str] = []

    def call(name: str) -> str:
        started.append(name)
        gate.wait(10)
        return name

    stuck = [asyncio.create_task(lane.run("mallory", call, f"m{n}")) for n in range(3)]
    other = asyncio.create_task(lane.run("alice", lambda: "alice"))
    # Alice's call runs at once although mallory asked for more threads first.
    assert await asyncio.wait_for(other, 5) == "alice"
    assert sorted(started) == ["m0", "m1"]  # the third waits without a thread
    stuck[2].cancel()  # given up while waiting: it never runs
    gate.set()
    assert await asyncio.gather(*stuck[:2]) == ["m0", "m1"]
    await asyncio.sleep(0)  # the slots come back through the loop
    assert "m2" not in started
    assert not lane._loops[asyncio.get_running_loop()]  # no user entry left behind


async def test_a_slot_stays_taken_while_a_cancelled_call_still_runs() -> None:
    lane = BlockingLane("test", threads=2, per_user=1)
    gate, ran = threading.Event(), threading.Event()

    def blocked() -> None:
        ran.set()
        gate.wait(10)

    first = asyncio.create_task(lane.run("mallory", blocked))
    assert await asyncio.to_thread(ran.wait, 5)
    first.cancel()
    second = asyncio.create_task(lane.run("mallory", lambda: "second"))
    await asyncio.sleep(0)
    slots = lane._loops[asyncio.get_running_loop()]["mallory"]
    assert slots.free.locked() and slots.calls == 2  # the thread is still held
    gate.set()
    assert await asyncio.wait_for(second, 5) == "second"
