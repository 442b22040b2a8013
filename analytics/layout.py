"""The export's files: Hive layout, names carrying source offsets, atomic writes, progress.

    <root>/topic=<kind>/day=<YYYY-MM-DD>/p<partition>-<first offset>-<last offset>.parquet

A file holds every record of one partition from its first to its last offset (a day's
worth at most), and appears only complete (written aside, then renamed). The files are
therefore the export's progress: a partition continues after the highest last offset
among its files, so a rerun or a run after a crash neither repeats nor skips a record.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from hubcore.errors import HubError

_NAME = re.compile(r"^p(\d+)-(\d+)-(\d+)\.parquet$")
_TEMP_SUFFIX = ".tmp"
_NAMESPACE_FILE = "_namespace"  # leading underscore: Spark/Hive/DuckDB readers skip it


@dataclass(frozen=True, slots=True)
class Span:
    """The source position of one file."""

    kind: str
    day: date
    partition: int
    first: int
    last: int

    def path(self, root: Path) -> Path:
        name = f"p{self.partition}-{self.first:019d}-{self.last:019d}.parquet"
        return root / f"topic={self.kind}" / f"day={self.day.isoformat()}" / name


def spans(root: Path) -> Iterator[Span]:
    """Every complete file under `root`, as its span."""
    for path in root.glob("topic=*/day=*/p*.parquet"):
        match = _NAME.match(path.name)
        if not match:
            continue
        kind = path.parent.parent.name.removeprefix("topic=")
        day = date.fromisoformat(path.parent.name.removeprefix("day="))
        partition, first, last = (int(g) for g in match.groups())
        yield Span(kind, day, partition, first, last)


def next_offsets(root: Path) -> dict[tuple[str, int], int]:
    """(kind, partition) -> the first offset no file holds yet."""
    out: dict[tuple[str, int], int] = {}
    for span in spans(root):
        key = (span.kind, span.partition)
        out[key] = max(out.get(key, 0), span.last + 1)
    return out


def write_atomically(table: pa.Table, span: Span, root: Path) -> Path:
    """Write `table` as the file of `span`: aside first, synced, then renamed into place."""
    final = span.path(root)
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = final.with_name(f".{final.name}.{uuid.uuid4().hex}{_TEMP_SUFFIX}")
    try:
        pq.write_table(table, temp, compression="zstd")
        with temp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    directory = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)
    return final


def remove_leftovers(root: Path) -> int:
    """Delete half-written files a killed run left behind; returns how many."""
    removed = 0
    for path in root.glob(f"topic=*/day=*/.*{_TEMP_SUFFIX}"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed


@contextlib.contextmanager
def exclusive(root: Path, namespace: str) -> Iterator[None]:
    """Hold the directory for one export at a time, and for one topic namespace only."""
    root.mkdir(parents=True, exist_ok=True)
    marker = root / _NAMESPACE_FILE
    if marker.is_file():
        found = marker.read_text(encoding="utf-8").strip()
        if found != namespace:
            raise HubError(
                f"{root} holds the export of topic namespace {found!r}, not {namespace!r}",
                fix="choose another --out directory (one directory per namespace)",
            )
    else:
        marker.write_text(namespace + "\n", encoding="utf-8")
    with (root / ".export.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HubError(f"another `hub analytics export` is writing {root}") from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
