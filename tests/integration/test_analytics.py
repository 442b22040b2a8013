"""`hub analytics`: exactly-once export into Parquet across runs and kills; the report's
numbers against the store rebuilt from the same history."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from analytics.columns import to_table
from analytics.export import Exporter
from analytics.layout import Span, write_atomically
from analytics.page import render
from analytics.report import build
from hubcore.errors import HubError
from hubcore.kafka import Topics, ensure_topics
from hubcore.mongo import MESSAGES, create_client
from hubcore.settings import Settings
from schemas import MarkRead
from streams.replay.replay import Replay
from tests.analytics_helpers import file_records, generate, publish, quantile, topic_records
from tests.streams_helpers import consume_all

pytestmark = pytest.mark.integration


def _exactly_once(files: Counter[tuple[str, int, int]], topics: Counter[Any]) -> None:
    repeated = [k for k, n in files.items() if n > 1]
    assert not repeated, f"records exported twice: {repeated[:5]}"
    missing, extra = sorted(set(topics) - set(files)), sorted(set(files) - set(topics))
    assert not missing and not extra, f"missing {missing[:5]}, extra {extra[:5]}"


def _poison_rows(root: Path) -> list[dict[str, Any]]:
    return [
        row
        for path in root.glob("topic=raw-messages/day=*/*.parquet")
        for row in pq.read_table(path).to_pylist()
        if row["id"] is None
    ]


def _kill_after_files(command: list[str], env: dict[str, str], out: Path, files: int) -> None:
    """Run the export and SIGKILL it once it wrote `files` files (it must not finish first)."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while len(list(out.glob("topic=*/day=*/*.parquet"))) < files:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "the export wrote no files"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _leftovers(root: Path) -> list[Path]:
    return list(root.rglob("*.tmp"))


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


async def test_export_twice_with_new_traffic_between(settings: Settings, tmp_path: Path) -> None:
    await ensure_topics(settings)
    await publish(settings, generate(1, 120), poison=3)
    first = await Exporter(settings, tmp_path, max_records_per_file=7).run()
    assert first.files > 3 and sum(first.records.values()) > 120

    await publish(settings, generate(2, 80, start=1000), poison=2)
    second = await Exporter(settings, tmp_path, max_records_per_file=7).run()
    total = sum(first.records.values()) + sum(second.records.values())
    _exactly_once(file_records(tmp_path), await topic_records(settings, total))

    # Nothing new: nothing written.
    third = await Exporter(settings, tmp_path).run()
    assert third.files == 0 and sum(third.records.values()) == 0

    # Poison records are kept, with their raw value and no fields.
    poison = _poison_rows(tmp_path)
    assert len(poison) == 5 and all("not json" in row["value"] for row in poison)


async def test_killed_mid_export_then_rerun(settings: Settings, tmp_path: Path) -> None:
    await ensure_topics(settings)
    await publish(settings, generate(3, 1500))
    out = tmp_path / "files"
    env = {
        **os.environ,
        "HUB_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "HUB_TOPIC_NAMESPACE": settings.topic_namespace,
        "HUB_LOG_FORMAT": "json",
    }
    command = [
        sys.executable,
        "-m",
        "hub",
        "analytics",
        "export",
        "--out",
        str(out),
        "--max-records-per-file",
        "3",
    ]
    await asyncio.to_thread(_kill_after_files, command, env, out, 20)
    partial = file_records(out)

    rerun = await asyncio.to_thread(_run, command, env)
    assert rerun.returncode == 0, rerun.stderr
    assert "exported" in rerun.stdout
    files = file_records(out)
    assert set(partial) < set(files)
    _exactly_once(files, await topic_records(settings, sum(files.values())))
    assert not _leftovers(out)  # no half-written file is left


async def test_report_matches_the_store(settings: Settings, tmp_path: Path) -> None:
    await ensure_topics(settings)
    history = generate(4, 400)
    await publish(settings, history)
    await Replay(settings).run()  # the store, built from the history as the streams do
    await Exporter(settings, tmp_path).run()
    report = build(tmp_path, top=1000)

    client = create_client(settings.mongo_url)
    try:
        docs = await client[settings.mongo_db][MESSAGES].find({}).to_list(None)
    finally:
        await client.close()
    assert len(docs) == len({r.id for r in history.raws})

    hourly = Counter((d["receivedAt"].strftime("%Y-%m-%d %H:00"), d["platform"]) for d in docs)
    assert {(h, p): n for h, p, n in report.tables["hourly"].rows} == hourly

    accounts = Counter((d["platform"], d["accountId"]) for d in docs)
    conversations: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
    for d in docs:
        conversations[(d["platform"], d["accountId"])].add(d["conversationId"])
    assert {(p, a): (n, c) for p, a, n, c, _ in report.tables["accounts"].rows} == {
        k: (n, len(conversations[k])) for k, n in accounts.items()
    }

    busiest = Counter(d["conversationId"] for d in docs)
    assert {r[0]: r[3] for r in report.tables["conversations"].rows} == busiest

    # Time to read: the store says which command read a message (`readBy`, its origin).
    topic = Topics.from_settings(settings).commands
    issued = {
        f"{topic}:{r.partition}:{r.offset}": r.value
        for r in await consume_all(settings, topic, want=len(history.commands), timeout=10)
    }
    waits: defaultdict[str, list[float]] = defaultdict(list)
    for d in docs:
        if d["status"] == "read":
            command = MarkRead.from_json(issued[d["readBy"]])
            seconds = (command.issued_at - d["receivedAt"]).total_seconds()
            waits[d["platform"]].append(seconds)
            waits["all"].append(seconds)
    unread = Counter(d["platform"] for d in docs if d["status"] != "read")
    unread["all"] = sum(unread.values())
    rows = {r[0]: r[1:] for r in report.tables["time_to_read"].rows}
    assert set(rows) == set(waits) | set(unread)
    for platform, (read, not_read, p50, p90) in rows.items():
        assert (read, not_read) == (len(waits[platform]), unread[platform]), platform
        assert p50 == pytest.approx(quantile(waits[platform], 0.5), abs=0.001)
        assert p90 == pytest.approx(quantile(waits[platform], 0.9), abs=0.001)

    reasons = Counter(d.reason for d in history.dead)
    assert {r[1]: r[3] for r in report.tables["dead_letters"].rows} == reasons

    page = render(report)
    assert page.count("<svg") == 5 and "http" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )


async def test_files_ahead_of_the_topic_are_refused(settings: Settings, tmp_path: Path) -> None:
    await ensure_topics(settings)
    await publish(settings, generate(5, 10))
    await Exporter(settings, tmp_path).run()
    # The same directory against a recreated (shorter) topic would silently skip records.
    ahead = Span("raw-messages", date(2026, 11, 25), 0, 1_000_000, 1_000_009)
    write_atomically(to_table("raw-messages", []), ahead, tmp_path)
    with pytest.raises(HubError, match="recreated"):
        await Exporter(settings, tmp_path).run()
