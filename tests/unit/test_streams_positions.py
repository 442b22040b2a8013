"""A worker's lag gauges per source partition: set at the scrape from its committed and
end offsets, stalled time growing only while records wait at an unmoved commit, and the
series of partitions it no longer owns removed."""

from __future__ import annotations

from typing import Any

from faust.types import TP
from prometheus_client import REGISTRY

from streams.positions import PartitionPositions

RAW, COMMANDS, CHANGELOG = "pos.raw-messages", "pos.commands", "pos.streams-unread-changelog"


def value(name: str, tp: TP) -> float | None:
    return REGISTRY.get_sample_value(name, {"topic": tp.topic, "partition": str(tp.partition)})


def lag(tp: TP) -> float | None:
    return value("hub_streams_consumer_lag", tp)


def stalled(tp: TP) -> float | None:
    return value("hub_streams_commit_stalled_seconds", tp)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_stalled_grows_while_records_wait_at_an_unmoved_commit() -> None:
    clock = Clock()
    positions = PartitionPositions([RAW, COMMANDS], clock=clock)
    a = TP(RAW, 0)
    positions.observe({a}, {a: (10, 15)})
    assert lag(a) == 5 and stalled(a) == 0  # first seen: since when is unknown
    clock.now += 60  # stuck: the commit stands, more records came
    positions.observe({a}, {a: (10, 20)})
    assert lag(a) == 10 and stalled(a) == 60
    clock.now += 10  # moved: behind, not stuck
    positions.observe({a}, {a: (12, 20)})
    assert lag(a) == 8 and stalled(a) == 0
    clock.now += 30
    positions.observe({a}, {a: (12, 20)})
    assert stalled(a) == 30
    clock.now += 100  # caught up
    positions.observe({a}, {a: (20, 20)})
    assert lag(a) == 0 and stalled(a) == 0
    clock.now += 100  # a new record: waiting counts from now, not from the catch-up
    positions.observe({a}, {a: (20, 21)})
    assert lag(a) == 1 and stalled(a) == 0
    clock.now += 5  # no end offset known (no fetch answered): kept as it was
    positions.observe({a}, {a: (20, None)})
    assert lag(a) == 1 and stalled(a) == 0


def test_partitions_owned_no_more_lose_their_series() -> None:
    positions = PartitionPositions([RAW, COMMANDS], clock=Clock())
    a, b, c, log = TP(RAW, 1), TP(RAW, 2), TP(COMMANDS, 1), TP(CHANGELOG, 1)
    positions.observe({a, b, c, log}, {a: (0, 3), b: (0, 0), c: (5, 9), log: (0, 7)})
    assert (lag(a), lag(b), lag(c)) == (3, 0, 4)
    assert lag(log) is None  # not a source topic
    positions.forget({a, log})  # revoked in a rebalance
    assert lag(a) is None and stalled(a) is None
    assert lag(b) == 0 and lag(c) == 4
    positions.observe({c}, {c: (5, 9)})  # b moved without a revocation seen: gone as well
    assert lag(b) is None and stalled(b) is None and lag(c) == 4
    positions.forget({a, b})  # forgetting twice is harmless
    assert lag(c) == 4


class FakeConsumer:
    """What `scrape` reads of Faust's consumer."""

    def __init__(self, owned: set[TP], committed: dict[TP, int | None], ends: dict[TP, int]):
        self.owned = owned
        self._committed_offset = committed
        self.ends = ends

    def assignment(self) -> set[TP]:
        return self.owned

    def highwater(self, tp: TP) -> int:
        return self.ends[tp]


def test_scrape_reads_the_consumer() -> None:
    positions = PartitionPositions([RAW, COMMANDS], clock=Clock())
    a, b = TP(RAW, 3), TP(COMMANDS, 3)
    positions.scrape(FakeConsumer({a, b}, {a: 4, b: None}, {a: 9, b: 2}))
    assert lag(a) == 5
    assert lag(b) == 2  # never committed: counted from the topic's start

    class NotStarted:
        def assignment(self) -> Any:
            raise RuntimeError("consumer thread not yet started")

    positions.scrape(NotStarted())  # nothing to read: left as it was
    assert lag(a) == 5
