"""Which fetch job runs next, and which offsets may be committed (no Kafka, no I/O).

Jobs run independently (issue 24): a slow file holds its own slot, not a batch. Two pure
parts keep that safe and fair:

- `FairQueue`: jobs waiting for a slot, per user, taken round-robin over the users, and no
  user holds more than `per_user` slots at once, so one user's many (or stalled) files
  never keep another user's file waiting;
- `OffsetLedger`: per partition, the offsets read and which of them finished; a partition
  is committed only up to its first unfinished job, so a crash resumes at that job (those
  after it that finished are read again and recognised as done by the fetcher).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from aiokafka.structs import TopicPartition

T = TypeVar("T")


@dataclass(slots=True)
class FairQueue(Generic[T]):
    """Waiting jobs per user; `take` gives the next one a free slot may run."""

    per_user: int
    waiting: OrderedDict[str, deque[T]] = field(default_factory=OrderedDict)
    running: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(len(jobs) for jobs in self.waiting.values())

    def put(self, user: str, job: T) -> None:
        self.waiting.setdefault(user, deque()).append(job)

    def take(self) -> tuple[str, T] | None:
        """The next job of the first user (in turn) below their cap, counted as running;
        None when every waiting user is at the cap (or nothing waits)."""
        for user in self.waiting:
            if self.running.get(user, 0) < self.per_user:
                jobs = self.waiting.pop(user)
                job = jobs.popleft()
                if jobs:  # to the back of the line
                    self.waiting[user] = jobs
                self.running[user] = self.running.get(user, 0) + 1
                return user, job
        return None

    def finished(self, user: str) -> None:
        left = self.running.get(user, 0) - 1
        if left > 0:
            self.running[user] = left
        else:
            self.running.pop(user, None)

    def drop(self, gone: Callable[[T], bool]) -> None:
        """Forget the waiting jobs `gone` names (their partition was revoked)."""
        for user in list(self.waiting):
            kept = deque(job for job in self.waiting[user] if not gone(job))
            if kept:
                self.waiting[user] = kept
            else:
                del self.waiting[user]


@dataclass(slots=True)
class OffsetLedger:
    """Per partition: offsets read, in order, and whether each finished."""

    open: dict[TopicPartition, OrderedDict[int, bool]] = field(default_factory=dict)
    committed: dict[TopicPartition, int] = field(default_factory=dict)

    @property
    def pending(self) -> int:
        """Offsets read and not committed yet (the read-ahead bound counts these)."""
        return sum(len(offsets) for offsets in self.open.values())

    def read(self, tp: TopicPartition, offset: int) -> None:
        self.open.setdefault(tp, OrderedDict())[offset] = False

    def finished(self, tp: TopicPartition, offset: int) -> None:
        offsets = self.open.get(tp)
        if offsets is not None and offset in offsets:  # else: revoked meanwhile
            offsets[offset] = True

    def advance(self) -> dict[TopicPartition, int]:
        """The offsets to commit now (next to read, per partition), only where they moved:
        each partition's leading run of finished jobs is let go."""
        moved: dict[TopicPartition, int] = {}
        for tp, offsets in self.open.items():
            while offsets:
                first, done = next(iter(offsets.items()))
                if not done:
                    break
                del offsets[first]
                moved[tp] = first + 1
        self.committed.update(moved)
        return moved

    def drop(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            self.open.pop(tp, None)
            self.committed.pop(tp, None)
