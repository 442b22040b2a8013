"""The export's file layout and columns, without Kafka: names, progress, leftovers, rows."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest

from analytics.columns import arrow_schema, to_table
from analytics.layout import Span, exclusive, next_offsets, remove_leftovers, write_atomically
from analytics.report import Table, shown
from hubcore.errors import HubError


def _record(offset: int, value: bytes | None, partition: int = 2) -> SimpleNamespace:
    return SimpleNamespace(
        partition=partition, offset=offset, timestamp=1_764_072_000_000, key=b"u1", value=value
    )


def test_every_record_becomes_a_row_and_bad_fields_become_null() -> None:
    good = orjson.dumps(
        {
            "schema": "hub.raw-message/1",
            "id": "msg_1",
            "platform": "slack",
            "sender": {"id": "s", "name": "Sam"},
            "receivedAt": "2026-11-25T12:00:00.123Z",
            "sentAt": "yesterday",
        }
    )
    table = to_table("raw-messages", [_record(7, good), _record(8, b"\xff{"), _record(9, None)])
    assert table.schema == arrow_schema("raw-messages")
    rows = table.to_pylist()
    assert [r["kafka_offset"] for r in rows] == [7, 8, 9]
    assert rows[0]["sender_name"] == "Sam" and rows[0]["sent_at"] is None
    assert rows[0]["received_at"] == datetime(2026, 11, 25, 12, 0, 0, 123000, tzinfo=UTC)
    assert rows[1]["id"] is None and rows[1]["value"] == "\ufffd{"
    assert rows[2]["value"] is None and rows[2]["key"] == "u1"


def test_progress_comes_from_the_file_names(tmp_path: Path) -> None:
    table = to_table("commands", [_record(0, b"{}")])
    for first, last in ((0, 9), (10, 24)):
        write_atomically(table, Span("commands", date(2026, 11, 25), 2, first, last), tmp_path)
    write_atomically(table, Span("commands", date(2026, 11, 26), 0, 5, 5), tmp_path)
    leftover = tmp_path / "topic=commands/day=2026-11-25/.p2-x.parquet.abc.tmp"
    leftover.write_bytes(b"half")
    assert next_offsets(tmp_path) == {("commands", 2): 25, ("commands", 0): 6}
    assert remove_leftovers(tmp_path) == 1 and not leftover.exists()
    assert (tmp_path / "topic=commands/day=2026-11-25").is_dir()
    name = Span("commands", date(2026, 11, 25), 2, 10, 24).path(tmp_path).name
    assert name == "p2-0000000000000000010-0000000000000000024.parquet"


def test_one_export_and_one_namespace_per_directory(tmp_path: Path) -> None:
    with (
        exclusive(tmp_path, "hub"),
        pytest.raises(HubError, match="another"),
        exclusive(tmp_path, "hub"),
    ):
        pass
    with pytest.raises(HubError, match="namespace 'hub'"), exclusive(tmp_path, "other"):
        pass


def test_hourly_counts_are_shown_one_row_per_hour() -> None:
    long = Table(
        "hourly",
        "t",
        ("hour", "platform", "messages"),
        (("h1", "slack", 2), ("h1", "email", 1), ("h2", "slack", 4)),
    )
    assert shown(long).columns == ("hour", "email", "slack", "all")
    assert shown(long).rows == (("h1", 1, 2, 3), ("h2", 0, 4, 4))
