"""Each worker's own position per source partition, as of the scrape, and only for the
partitions it owns now.

Set after a batch, a lag gauge froze while the worker was stuck retrying (no batch ends)
and stayed on a worker a partition had moved away from. Here, at each scrape and for each
source partition assigned to this worker: the records past its committed offset
(`hub_streams_consumer_lag`), and how long that committed offset has not moved while
records wait past it (`hub_streams_commit_stalled_seconds`: grows while the worker is
stuck, 0 once it has caught up). A revoked partition's series are removed at once
(`forget`, from Faust's `on_partitions_revoked`), and any left at the next scrape.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Set
from typing import Any

from faust.types import TP

from hubcore.group_lag import CommitStall
from streams import metrics


class PartitionPositions:
    """Sets and removes the per-partition gauges of `topics` for one worker."""

    def __init__(self, topics: Iterable[str], clock: Callable[[], float] = time.monotonic):
        self.topics = frozenset(topics)
        self.clock = clock
        self._stall = CommitStall[TP]()

    def forget(self, partitions: Iterable[TP]) -> None:
        """Remove the series of partitions this worker no longer owns."""
        for tp in partitions:
            if not self._stall.drop(tp) and tp.topic not in self.topics:
                continue
            for gauge in (metrics.CONSUMER_LAG, metrics.COMMIT_STALLED):
                with contextlib.suppress(KeyError):  # never set: nothing to remove
                    gauge.remove(tp.topic, str(tp.partition))

    def observe(self, owned: Set[TP], positions: dict[TP, tuple[int, int | None]]) -> None:
        """Set the gauges from (committed, end offset) of each owned source partition;
        drop those of partitions owned no more. An end offset not known yet (no fetch
        answered) leaves the partition's series as they were."""
        mine = {tp for tp in owned if tp.topic in self.topics}
        self.forget([tp for tp in self._stall.known() if tp not in mine])
        now = self.clock()
        for tp in mine:
            committed, end = positions.get(tp, (0, None))
            if end is None:
                continue
            lag = max(end - committed, 0)
            labels = (tp.topic, str(tp.partition))
            metrics.CONSUMER_LAG.labels(*labels).set(lag)
            metrics.COMMIT_STALLED.labels(*labels).set(self._stall.seconds(tp, committed, lag, now))

    def scrape(self, consumer: Any) -> None:
        """`observe` from a running Faust consumer (before it runs: nothing)."""
        try:
            owned = set(consumer.assignment())
        except Exception:  # no consumer thread yet (starting, or between generations)
            return
        positions: dict[TP, tuple[int, int | None]] = {}
        for tp in owned:
            if tp.topic not in self.topics:
                continue
            # Faust's own record of its last commit on the partition (the next offset to
            # read); None before the first: the history topics start at 0.
            committed = consumer._committed_offset.get(tp) or 0
            try:
                end = consumer.highwater(tp)
            except Exception:
                end = None
            positions[tp] = (committed, end)
        self.observe(owned, positions)
