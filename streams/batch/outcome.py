"""What one batch did (for the log line, metrics and replay's summary) and its phase clock."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from streams.batch.records import Poison
from streams.sink.projection import Projections


@dataclass(slots=True)
class BatchOutcome:
    """What one batch did, for the log line, metrics and replay's summary."""

    records: int = 0
    raws: int = 0
    commands: int = 0
    stored: int = 0
    read: int = 0
    users: int = 0
    events: dict[str, int] = field(default_factory=dict)
    dead_letters: list[Poison] = field(default_factory=list)
    # Milliseconds per phase: gate (waiting for the projection sink's write in flight),
    # store, table (applying), send, acks (changelog and events together); live, `waited`
    # for the previous batch's acks before sending.
    phases: dict[str, float] = field(default_factory=dict)
    projections: Projections = field(default_factory=Projections)

    def merge(self, later: BatchOutcome) -> None:
        """Add the outcome of the batch's later part (bisection)."""
        for name in ("records", "raws", "commands", "stored", "read", "users"):
            setattr(self, name, getattr(self, name) + getattr(later, name))
        for kind, n in later.events.items():
            self.events[kind] = self.events.get(kind, 0) + n
        self.dead_letters.extend(later.dead_letters)
        self.phases.update(later.phases)
        self.projections.merge(later.projections)


class PhaseClock:
    """Writes the milliseconds since the previous lap into `phases`."""

    def __init__(self, phases: dict[str, float]) -> None:
        self.phases = phases
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = round((now - self.last) * 1000, 1)
        self.last = now
