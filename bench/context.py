"""What every scenario gets: the servers' settings, quick or full size, where logs go."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hubcore.settings import Settings

T = TypeVar("T")


@dataclass(frozen=True)
class Context:
    """One `hub bench` invocation."""

    base: Settings  # Kafka and the store to use (a fresh namespace and db per scenario)
    quick: bool  # smoke-run sizes
    log_dir: Path  # every child's output, kept after the run
    profile_dir: Path | None = None  # `--profile`: flame graphs go here
    profiles: dict[str, Any] = field(default_factory=dict)  # what was profiled, for the file

    def size(self, full: T, quick: T) -> T:
        """`quick` in a `--quick` run, else `full`."""
        return quick if self.quick else full
