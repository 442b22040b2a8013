"""The benchmark's pure parts: percentiles, the results document and table, log parsing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.arrivals import Arrivals
from bench.load_e2e import MediaTimes, media_split
from bench.media_mix import BenchFiles, is_media, kind_of, media_figures, media_webhook, run_base
from bench.p5_burst import burst_result
from bench.p7_ramp import knee, knee_ratio, limit_process
from bench.p8_cost import baseline_from, cost_row
from bench.p26_streams import batch_window
from bench.procs import BenchError, schedstat_seconds
from bench.profile import collapsed, frames, thread_shares, top_own
from bench.report import SCENARIOS, document, finish, markdown_table, ratio_result, worst_of
from bench.run import parse_only, repeats_of, write_results
from bench.stats import Latency, histogram_quantile, percentile, ratio
from connectors.signatures import hmac_sha256_hex
from hubcore.blobs import sniff_mime
from schemas import message_id

AT = "2026-11-25T12:00:00+00:00"


def test_percentile_interpolates_between_ranks() -> None:
    samples = [4.0, 1.0, 3.0, 2.0]  # unsorted on purpose
    assert percentile(samples, 0) == 1.0
    assert percentile(samples, 100) == 4.0
    assert percentile(samples, 50) == 2.5
    assert percentile([7.0], 99) == 7.0
    assert percentile(list(range(101)), 99) == 99.0


@pytest.mark.parametrize(("samples", "q"), [([], 50), ([1.0], -1), ([1.0], 101)])
def test_percentile_refuses_nonsense(samples: list[float], q: float) -> None:
    with pytest.raises(ValueError):
        percentile(samples, q)


def test_latency_summary_is_in_milliseconds() -> None:
    summary = Latency.of_seconds([0.001 * n for n in range(1, 101)])
    assert summary.as_dict() == {"count": 100, "p50_ms": 50.5, "p99_ms": 99.01, "max_ms": 100.0}


def test_ratio_rounds_and_survives_a_zero_baseline() -> None:
    assert ratio(2.0, 3.0) == 0.667
    assert ratio(5.0, 0.0) == 0.0


def test_ratio_result_has_the_issue_fields() -> None:
    result = ratio_result(1500.04, 2500.0, "req/s", extra=1)
    assert {k: result[k] for k in ("value", "baseline", "ratio")} == {
        "value": 1500.0,
        "baseline": 2500.0,
        "ratio": 0.6,
    }
    assert finish("P1", result, AT)["met"] is True
    assert finish("P5", ratio_result(99.0, 100.0, "frames/s"), AT)["met"] is False


@pytest.mark.parametrize(
    ("scenario_id", "result", "met"),
    [
        ("P3", {"p50_ms": 20.0, "p99_ms": 100.0, "baseline_p99_ms": 9.0}, True),
        ("P3", {"p50_ms": 21.0, "p99_ms": 50.0, "baseline_p99_ms": 9.0}, False),
        ("P4", {"connections": 10_000, "rss_per_conn_kib": 30.0}, True),
        ("P4", {"connections": 9_999, "rss_per_conn_kib": 10.0}, False),
        ("P4s", {"connections": 10_000, "rss_per_conn_kib": 30.1}, False),
        ("P5s", {"value": 100.0, "baseline": 100.0, "ratio": 1.0}, True),
        ("R1", {"ms": 700.0, "events": 1000, "recovered": True, "in_order": True}, True),
        ("R1", {"ms": 700.0, "events": 1001, "recovered": True, "in_order": True}, False),
        ("R1", {"ms": 700.0, "events": 1000, "recovered": False, "in_order": True}, False),
        ("P6", {"value": 200.0, "baseline": 100.0, "ratio": 2.0}, True),
        (
            "N2",
            {"gateway_observe_us": 20.0, "worker_logic_us": 9.0, "worker_process_us": 500},
            True,
        ),
        (
            "N2",
            {"gateway_observe_us": 21.0, "worker_logic_us": 9.0, "worker_process_us": 50},
            False,
        ),
        (
            "N2",
            {"gateway_observe_us": 5.0, "worker_logic_us": 9.0, "worker_process_us": 501},
            False,
        ),
    ],
)
def test_targets(scenario_id: str, result: dict[str, float], met: bool) -> None:
    done = finish(scenario_id, result, AT)
    assert done["met"] is met
    assert done["target"] == SCENARIOS[scenario_id].target
    assert done["measured_at"] == AT


def test_a_result_lacking_a_required_field_is_refused() -> None:
    with pytest.raises(ValueError, match="P3 result lacks baseline_p99_ms"):
        finish("P3", {"p50_ms": 1.0, "p99_ms": 2.0}, AT)


def test_a_failed_scenario_keeps_its_error_and_is_not_met() -> None:
    done = finish("P2", {"error": "the worker did not start"}, AT)
    assert done == {
        "error": "the worker did not start",
        "target": "ratio >= 0.7",
        "met": False,
        "measured_at": AT,
    }
    table = markdown_table(document({}, {"P2": done}, None))
    assert "| P2 | raw messages/s through streams | failed: the worker did not start |" in table


def test_document_keeps_scenarios_not_run_now_and_orders_them() -> None:
    p1 = finish("P1", ratio_result(1.0, 2.0, "req/s"), AT)
    p4 = finish("P4", {"connections": 10_000, "rss_per_conn_kib": 25.0}, AT)
    previous = {"machine": {"old": True}, "scenarios": {"P4": p4, "P9": {"junk": 1}}}
    doc = document({"cores": 2}, {"P1": p1}, previous)
    assert doc == {"machine": {"cores": 2}, "scenarios": {"P1": p1, "P4": p4}}


def test_markdown_table_rows() -> None:
    scenarios = {
        "P1": finish("P1", ratio_result(1200, 2000, "req/s", p50_ms=20.0, p99_ms=80.5), AT),
        "P3": finish("P3", {"p50_ms": 12.3, "p99_ms": 45.6, "baseline_p99_ms": 7.8}, AT),
        "P4": finish("P4", {"connections": 10_000, "rss_per_conn_kib": 26.72}, AT),
    }
    lines = markdown_table(document({}, scenarios, None)).splitlines()
    assert lines[0].startswith("| id | measure | hub |")
    assert lines[2] == (
        "| P1 | signed webhooks/s accepted | 1,200 req/s (p50 20.0 ms, p99 80.5 ms) "
        "| 2,000 req/s | 0.60 | ratio >= 0.6 | yes |"
    )
    assert lines[3] == (
        "| P3 | webhook -> WebSocket latency at 200 msg/s | p50 12.3 ms, p99 45.6 ms "
        "| Kafka round trip p99 7.8 ms | - | p50 <= 20 ms, p99 <= 100 ms | yes |"
    )
    assert lines[4].startswith("| P4 | idle authenticated WebSockets, one gateway | 10,000")


def test_p2_row_names_both_store_baselines() -> None:
    result = ratio_result(
        45.0,
        50.0,
        "msg/s",
        baseline_name="bulk upsert of the same documents",
        insert_baseline=9000.0,
        ratio_vs_insert=0.005,
    )
    table = markdown_table(document({}, {"P2": finish("P2", result, AT)}, None))
    assert table.splitlines()[2] == (
        "| P2 | raw messages/s through streams | 45 msg/s | 50 msg/s (bulk upsert of the same "
        "documents); bulk insert 9,000 msg/s, ratio 0.005 | 0.90 | ratio >= 0.7 | yes |"
    )


def test_write_results_merges_into_the_file(tmp_path: Path) -> None:
    out = tmp_path / "results" / "latest.json"
    p4 = finish("P4", {"connections": 10_000, "rss_per_conn_kib": 25.0}, AT)
    write_results(out, {"cores": 2}, {"P4": p4})
    p1 = finish("P1", ratio_result(1.0, 2.0, "req/s"), AT)
    write_results(out, {"cores": 4}, {"P1": p1})
    assert orjson.loads(out.read_bytes()) == {
        "machine": {"cores": 4},
        "scenarios": {"P1": p1, "P4": p4},
    }
    assert not list(out.parent.glob("*.tmp"))


def test_parse_only() -> None:
    assert parse_only(None) == set(SCENARIOS)
    assert parse_only(" p1, P3 ,") == {"P1", "P3"}
    assert parse_only("p5s,P4S") == {"P5s", "P4s"}
    assert parse_only("p8") == {"P8"}
    with pytest.raises(BenchError, match="unknown scenario P9"):
        parse_only("P1,P9")


def _batch(records: int, ms: float, time: str) -> str:
    """A worker's `batch` log line as `HUB_LOG_FORMAT=json` writes it."""
    line = {"records": records, "ms": ms, "event": "batch", "timestamp": f"2026-11-25T{time}Z"}
    return orjson.dumps(line, option=orjson.OPT_SORT_KEYS).decode().replace('":', '": ')


def test_batch_window_from_worker_log_lines(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    lines = [
        "[2026-11-25 12:00:00,000] [1] [INFO] [^Worker]: Ready",
        _batch(100, 500.0, "12:00:01.000000"),
        "not json",
        _batch(50, 250.0, "12:00:02.500000"),
    ]
    log.write_text("\n".join(lines) + "\n")
    records, window, busy = batch_window(log)
    assert (records, window, busy) == (150, 2.0, 0.75)  # 12:00:00.5 to 12:00:02.5
    # The projections of the last batch are written later: the window ends there.
    sink = {"event": "projections", "timestamp": "2026-11-25T12:00:03.000000Z"}
    lines.append(orjson.dumps(sink, option=orjson.OPT_SORT_KEYS).decode().replace('":', '": '))
    log.write_text("\n".join(lines) + "\n")
    assert batch_window(log) == (150, 2.5, 0.75)
    log.write_text("nothing\n")
    with pytest.raises(BenchError):
        batch_window(log)


async def test_arrivals_latencies_skip_warmup_and_missing() -> None:
    times = Arrivals(4)
    times.sent.update({0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0})
    times.arrive(1, 2.5)
    times.arrive(1, 9.0)  # a repeat does not move the first arrival
    times.arrive(3, 4.25)
    assert times.latencies() == [0.5, 0.25]
    assert times.latencies(skip=2) == [0.25]
    await times.drain(0.01)  # not all arrived: returns after the timeout
    times.arrive(0, 1.0)
    times.arrive(2, 3.0)
    await times.drain(5)  # all arrived: returns at once


def test_histogram_quantile_between_snapshots() -> None:
    inf = float("inf")
    before = {0.01: 5.0, 0.1: 5.0, 1.0: 5.0, inf: 5.0}
    after = {0.01: 5.0, 0.1: 95.0, 1.0: 104.0, inf: 105.0}  # 100 observed in between
    assert histogram_quantile(before, after, 0.5) == 0.1
    assert histogram_quantile(before, after, 0.99) == 1.0
    assert histogram_quantile(before, after, 1.0) == inf
    assert histogram_quantile(after, after, 0.99) is None
    assert histogram_quantile({}, {}, 0.5) is None


def test_n2_row_names_the_gateway_hook_and_the_worker() -> None:
    n2 = {"gateway_observe_us": 5.78, "worker_logic_us": 11.67, "worker_process_us": 249.7}
    row = markdown_table(document({}, {"N2": finish("N2", n2, AT)}, None)).splitlines()[2]
    assert row == (
        "| N2 | presence CPU per connection change (gateway hook, streams worker) "
        "| gateway hook 5.8 us, streams worker process 250 us per connection change "
        "| worker batch logic alone 11.7 us | - "
        "| gateway hook <= 20 us, worker process <= 500 us | yes |"
    )


def test_p7_knee_limit_and_cpu() -> None:
    steps = [
        {"rate": 100.0, "p99_ms": 40.0, "lost": 0, "core_share": {"streams": 0.2}},
        {"rate": 200.0, "p99_ms": 900.0, "lost": 0, "core_share": {"streams": 0.5}},
        {"rate": 400.0, "p99_ms": 1500.0, "lost": 0, "core_share": {"streams": 0.99, "gw": 0.3}},
        {"rate": 700.0, "p99_ms": 20.0, "lost": 0, "core_share": {}},  # after a break: ignored
    ]
    assert knee(steps) == 200.0
    assert knee([{"rate": 100.0, "p99_ms": 10.0, "lost": 3}]) == 0.0
    assert limit_process(steps[2]) == "streams"
    # /proc/<pid>/task/<tid>/schedstat: ns on a CPU, ns waiting for one, time slices.
    assert schedstat_seconds("2500000000 750000000 1433\n") == (2.5, 0.75)


P1_RESULT = finish(
    "P1", ratio_result(3000.0, 8000.0, "req/s", baseline_cpu_us_per_request=98.0), AT
)


def test_p7_ratio_is_the_knee_over_p1_s_bare_rate_of_the_same_run() -> None:
    with_p1 = knee_ratio(1000.0, P1_RESULT)
    assert with_p1 == {"ratio": 0.125, "baseline": 8000.0, "baseline_name": "bare FastAPI"}
    assert knee_ratio(2000.0, P1_RESULT)["ratio"] == 0.25
    alone = knee_ratio(1000.0, None)
    assert alone["ratio"] is None and "P1 did not run" in alone["ratio_note"]
    failed = knee_ratio(1000.0, finish("P1", {"error": "boom"}, AT))
    assert failed["ratio"] is None and "P1 failed" in failed["ratio_note"]
    base = {"knee_msg_per_s": 2000.0, "limit_process": "streams", "cpu_us_per_message": {}}
    assert finish("P7", {**base, **knee_ratio(2000.0, P1_RESULT)}, AT)["met"] is True
    assert finish("P7", {**base, **knee_ratio(1000.0, P1_RESULT)}, AT)["met"] is False
    done = finish("P7", {**base, **alone}, AT)
    assert done["met"] is False  # no ratio: the target cannot be said to hold
    row = markdown_table(document({}, {"P7": done}, None)).splitlines()[2]
    assert "P1 did not run in this invocation: no ratio" in row and row.count("| - |") == 1
    row = markdown_table(
        document({}, {"P7": finish("P7", {**base, **with_p1}, AT)}, None)
    ).splitlines()[2]
    assert "| 8,000 req/s (bare FastAPI); CPU per message: - | 0.12 |" in row


def test_p8_cost_per_message_sum_and_ratio() -> None:
    # CPU seconds per process over 1,000 messages, against a bare request of 125 us.
    used = {"streams": 1.0, "connectors": 0.5, "gateway": 0.2504}
    row = cost_row(used, 1000.0, 125.0)
    assert row["cpu_us_per_message"] == {"connectors": 500, "gateway": 250, "streams": 1000}
    assert row["sum_us"] == 1750  # 1,750.4, summed before rounding
    assert row["ratio"] == 14.003
    assert cost_row({"streams": 0.0015}, 3.0, 100.0)["sum_us"] == 500
    assert cost_row(used, 1000.0, 0.0)["ratio"] == 0.0  # no baseline: no ratio, no crash


def test_p8_takes_p1_s_bare_cpu_only_from_a_measured_p1() -> None:
    assert baseline_from(P1_RESULT) == 98.0
    assert baseline_from(None) is None
    assert baseline_from(finish("P1", {"error": "boom"}, AT)) is None
    assert baseline_from(finish("P1", ratio_result(1.0, 2.0, "req/s"), AT)) is None


def _p8(ratio_500: float, ratio_100: float) -> dict[str, object]:
    return {
        "ratio": ratio_500,
        "ratio_at_100": ratio_100,
        "sum_us": 490,
        "cpu_us_per_message": {"connectors": 200, "gateway": 90, "streams": 200},
        "baseline_cpu_us_per_request": 98.0,
        "rates": {"100": {"sum_us": 980}},
    }


@pytest.mark.parametrize(
    ("ratio_500", "ratio_100", "met"),
    [(5.0, 10.0, True), (5.01, 3.0, False), (2.0, 10.5, False)],
)
def test_p8_target_needs_both_rates(ratio_500: float, ratio_100: float, met: bool) -> None:
    assert finish("P8", _p8(ratio_500, ratio_100), AT)["met"] is met


def test_p8_row() -> None:
    table = markdown_table(document({}, {"P8": finish("P8", _p8(5.0, 10.0), AT)}, None))
    assert table.splitlines()[2] == (
        "| P8 | hub CPU per message vs a bare FastAPI request | 500 msg/s: 490 us per message "
        "(connectors 200 us, gateway 90 us, streams 200 us); 100 msg/s: 980 us, ratio 10.00 "
        "| 98 us per request (bare FastAPI) | 5.00 | ratio <= 5 at 500 msg/s, <= 10 at 100 "
        "msg/s | yes |"
    )


def test_worst_of_three_keeps_every_run() -> None:
    p2 = [finish("P2", ratio_result(v, 100.0, "msg/s"), AT) for v in (70.0, 48.0, 65.0)]
    worst = worst_of("P2", p2)
    assert worst["ratio"] == 0.48 and worst["met"] is False
    assert worst["runs"] == p2
    # P3: the run furthest from either target, not merely the highest p99.
    p3 = [
        finish("P3", {"p50_ms": p50, "p99_ms": p99, "baseline_p99_ms": 2.0}, AT)
        for p50, p99 in ((15.0, 90.0), (40.0, 95.0), (18.0, 150.0))
    ]
    assert worst_of("P3", p3)["p50_ms"] == 40.0  # 2.0 x its p50 target beats 1.5 x p99's
    assert worst_of("P3", p3[::2])["p99_ms"] == 150.0
    failed = finish("P3", {"error": "3 messages never arrived"}, AT)
    chosen = worst_of("P3", [p3[0], failed, p3[1]])
    assert chosen["error"] == "3 messages never arrived" and len(chosen["runs"]) == 3


def test_only_p2_and_p3_repeat_and_only_in_a_full_run() -> None:
    assert repeats_of(("P2", "P6"), quick=False) == 3
    assert repeats_of(("P3",), quick=False) == 3
    assert repeats_of(("P3",), quick=True) == 1
    assert repeats_of(("P1",), quick=False) == 1
    assert repeats_of(("P8",), quick=False) == 1


def _box(title: str, depth: int, x: int, w: int) -> str:
    """One frame as py-spy's flame graph (inferno) writes it: y grows with depth here."""
    return (
        f'<g><title>{title} ({w:,} samples, 1.00%)</title><rect x="0.1%" y="{52 + 16 * depth}" '
        f'width="1%" height="15" fill="rgb(1,2,3)" fg:x="{x}" fg:w="{w}"/><text>t</text></g>'
    )


# all: MainThread (run a.py:1 (inner b.py:3), run a.py:2), Thread-1 (wait c.py:9); shuffled.
SVG = "".join(
    _box(*box)
    for box in (
        ("wait (c.py:9)", 2, 700, 300),
        ("run (a.py:2)", 2, 500, 200),
        ("thread (2): Thread-1 &lt;consumer&gt;", 1, 700, 300),
        ("inner (b.py:3)", 3, 100, 300),
        ("all", 0, 0, 1000),
        ("run (a.py:1)", 2, 0, 500),
        ("thread (1): MainThread", 1, 0, 700),
    )
)


def test_profile_stacks_from_a_py_spy_svg() -> None:
    found = frames(SVG)
    own = {f.path[-1]: f.own for f in found}
    assert own == {
        "all": 0,
        "thread (1): MainThread": 0,
        "run (a.py:1)": 200,
        "inner (b.py:3)": 300,
        "run (a.py:2)": 200,
        "thread (2): Thread-1 <consumer>": 0,
        "wait (c.py:9)": 300,
    }
    assert collapsed(found).splitlines() == [
        "thread (1): MainThread;run (a.py:1) 200",
        "thread (1): MainThread;run (a.py:1);inner (b.py:3) 300",
        "thread (1): MainThread;run (a.py:2) 200",
        "thread (2): Thread-1 <consumer>;wait (c.py:9) 300",
    ]
    # 100 samples/s for 10 s: 1,000 samples are one core's worth.
    assert thread_shares(found, 100, 10.0) == {
        "MainThread (1)": 0.7,
        "Thread-1 <consumer> (2)": 0.3,
    }
    assert top_own(found, 100, 10.0) == {"run (a.py)": 0.4, "inner (b.py)": 0.3, "wait (c.py)": 0.3}
    assert list(top_own(found, 100, 10.0, limit=1)) == ["run (a.py)"]
    assert frames("<svg></svg>") == [] and collapsed([]) == ""


def test_profiles_stay_in_the_file_until_the_next_profile(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    first = {"scenario": "P8", "by_rate": {"500": {"streams": {"svg": "a.svg"}}}}
    write_results(out, {}, {}, first)
    assert write_results(out, {}, {})["profiles"] == first
    second = {"scenario": "P8", "by_rate": {"100": {}}}
    assert write_results(out, {}, {}, second)["profiles"] == second
    assert "profiles" not in document({}, {}, None)


def test_burst_result_takes_each_side_s_best_round() -> None:
    hub = [
        {"per_s": 90.0, "seconds": 1.2, "cpu_us": 11.0},
        {"per_s": 110.0, "seconds": 1.0, "cpu_us": 10.0},
    ]
    node = [{"per_s": 100.0, "seconds": 1.1, "cpu_us": 9.0}]
    result = burst_result(hub, node, 512)
    assert (result["value"], result["baseline"], result["ratio"]) == (110.0, 100.0, 1.1)
    assert result["cpu_us_per_frame"] == 10.0 and result["rounds"]["hub"] == [90, 110]
    assert finish("P5s", result, AT)["met"] is True


async def test_a_full_run_repeats_p2_and_p3_and_hands_p1_to_p7_and_p8(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run loop with the scenarios' measurements replaced: what each one was given."""
    from bench import p1_webhooks, p3_latency, p7_ramp, p8_cost, p26_streams
    from bench import run as bench_run
    from hubcore.settings import Settings

    p2_rates = iter([70.0, 45.0, 60.0])
    p3_p99 = iter([80.0, 120.0, 90.0])
    replays: list[bool] = []
    given: dict[str, object] = {}

    async def p1(ctx: object) -> dict[str, object]:
        return ratio_result(3000.0, 8000.0, "req/s", baseline_cpu_us_per_request=98.0)

    async def p26(ctx: object, *, replay: bool) -> dict[str, dict[str, object]]:
        replays.append(replay)
        out = {"P2": ratio_result(next(p2_rates), 100.0, "msg/s")}
        if replay:
            out["P6"] = ratio_result(300.0, 100.0, "events/s")
        return out

    async def p3(ctx: object) -> dict[str, object]:
        return {"p50_ms": 10.0, "p99_ms": next(p3_p99), "baseline_p99_ms": 2.0}

    async def p7(ctx: object, p1_result: dict[str, object] | None) -> dict[str, object]:
        given["P7"] = p1_result
        ratio = knee_ratio(2000.0, p1_result)
        return {"knee_msg_per_s": 2000.0, "limit_process": "s", "cpu_us_per_message": {}, **ratio}

    async def p8(ctx: object, p1_result: dict[str, object] | None) -> dict[str, object]:
        given["P8"] = p1_result
        return _p8(4.0, 9.0)

    async def facts(*args: object, **kwargs: object) -> dict[str, object]:
        return {"cores": 2}

    monkeypatch.setattr(p1_webhooks, "run", p1)
    monkeypatch.setattr(p26_streams, "run", p26)
    monkeypatch.setattr(p3_latency, "run", p3)
    monkeypatch.setattr(p7_ramp, "run", p7)
    monkeypatch.setattr(p8_cost, "run", p8)
    monkeypatch.setattr(bench_run, "machine_facts", facts)
    monkeypatch.setattr("bench.run.tempfile.mkdtemp", lambda prefix: str(tmp_path))
    doc, ok = await bench_run.run(
        Settings(_env_file=None),
        {"P1", "P2", "P3", "P6", "P7", "P8"},
        quick=False,
        output=tmp_path / "latest.json",
        say=lambda _: None,
    )
    assert ok
    assert replays == [True, False, False]  # P6 replays the first P2 run's history only
    scenarios = doc["scenarios"]
    assert [r["ratio"] for r in scenarios["P2"]["runs"]] == [0.7, 0.45, 0.6]
    assert scenarios["P2"]["ratio"] == 0.45 and "runs" not in scenarios["P6"]
    assert scenarios["P3"]["p99_ms"] == 120.0 and len(scenarios["P3"]["runs"]) == 3
    assert given["P7"] is scenarios["P1"] and given["P8"] is scenarios["P1"]
    assert scenarios["P7"]["ratio"] == 0.25 and scenarios["P7"]["met"] is True
    # --quick: once each.
    p2_rates, p3_p99 = iter([50.0]), iter([70.0])
    doc, _ = await bench_run.run(
        Settings(_env_file=None),
        {"P2", "P3"},
        quick=True,
        output=tmp_path / "quick.json",
        say=lambda _: None,
    )
    assert "runs" not in doc["scenarios"]["P2"] and doc["scenarios"]["P3"]["p99_ms"] == 70.0


def test_w1_row_and_target() -> None:
    result = {"p50_ms": 27.3, "p99_ms": 198.4, "deliveries_per_s": 642.0, "endpoints": 20}
    done = finish("W1", result, AT)
    assert done["met"]
    assert not finish("W1", {**result, "deliveries_per_s": 150.0}, AT)["met"]
    assert not finish("W1", {**result, "p99_ms": 1500.0}, AT)["met"]
    (row,) = markdown_table(document({}, {"W1": done}, None)).splitlines()[2:]
    assert "p50 27.3 ms, p99 198.4 ms; 642 deliveries/s (20 endpoints)" in row


def test_one_webhook_in_ten_carries_a_file_in_turn() -> None:
    media = [n for n in range(60) if is_media(n)]
    assert media == [9, 19, 29, 39, 49, 59]
    assert [kind_of(n) for n in media] == ["photo", "voice", "pdf"] * 2
    assert run_base("p3mr200") != run_base("p3mr10")


def test_media_webhooks_in_the_platforms_formats_and_their_message_ids() -> None:
    accounts = {
        "telegram": {"id": "acc_t", "external_id": "1", "credentials": {"webhookSecret": "s"}},
        "whatsapp": {"id": "acc_w", "external_id": "2", "credentials": {"appSecret": "a"}},
    }
    path, headers, body, expected = media_webhook(9, "r", 3, accounts, "bench-e2e 9", "x")
    update = orjson.loads(body)
    assert path == "/webhooks/telegram/acc_t" and headers["X-Telegram-Bot-Api-Secret-Token"] == "s"
    photo = update["message"]["photo"]
    assert [p["width"] for p in photo] == [90, 640] and update["message"][
        "caption"
    ] == "bench-e2e 9"
    number = run_base("r") + 9
    assert expected == message_id("telegram", "acc_t", str(1_000_000_003), str(number))
    path, headers, body, expected = media_webhook(19, "r", 3, accounts, "bench-e2e 19", "x")
    voice = orjson.loads(body)["entry"][0]["changes"][0]["value"]["messages"][0]
    assert path == "/webhooks/whatsapp/acc_w" and voice["audio"]["voice"] is True
    assert "caption" not in voice["audio"]  # matched by its id, not by a tag
    assert headers["X-Hub-Signature-256"] == "sha256=" + hmac_sha256_hex("a", body)
    assert expected == message_id("whatsapp", "acc_w", "15550000003", f"wamid.{run_base('r') + 19}")


def test_bench_files_are_distinct_per_reference_and_of_their_type() -> None:
    files = BenchFiles()
    photo, thumb = files.file("demo-photo-7"), files.file("demo-photo-7-s")
    assert photo is not None and thumb is not None
    assert sniff_mime(photo[0]) == "image/jpeg" and len(photo[0]) > len(thumb[0])
    assert files.file("demo-photo-8") != photo
    voice, pdf = files.file("demo-voice-7"), files.file("documents/demo-pdf-7")
    assert voice is not None and sniff_mime(voice[0]).startswith("audio/ogg")
    assert pdf is not None and sniff_mime(pdf[0]) == "application/pdf"
    assert files.file("other") is None


def test_media_messages_settle_when_no_attachment_is_pending() -> None:
    times = MediaTimes({"m1": 9, "m2": 19})
    times.update({"id": "m1", "attachments": [{"status": "pending"}]}, 1.0)
    times.update({"id": "zz", "attachments": [{"status": "ready"}]}, 1.0)
    assert times.settled == {}
    times.update({"id": "m1", "attachments": [{"status": "ready"}]}, 2.0)
    times.update({"id": "m1", "attachments": [{"status": "ready"}]}, 3.0)  # a repeat
    times.update({"id": "m2", "attachments": [{"status": "failed", "reason": "timeout"}]}, 4.0)
    assert times.settled == {9: 2.0, 19: 4.0} and times.failed == {"timeout": 1}


async def test_media_split_reports_text_and_media_apart() -> None:
    arrivals = Arrivals(20)
    arrivals.sent = {n: float(n) for n in range(20)}
    for n in range(20):
        if n != 19:
            arrivals.arrive(n, n + (0.5 if is_media(n) else 0.01))
    files = MediaTimes({"m9": 9, "m19": 19})
    files.update({"id": "m9", "attachments": [{"status": "ready"}]}, 11.0)
    split = media_split(arrivals, files, 2)
    assert split["text"]["count"] == 16 and split["text"]["p99_ms"] == 10.0
    assert split["media"] == {"count": 1, "p50_ms": 500.0, "p99_ms": 500.0, "max_ms": 500.0}
    assert split["media_settled"]["p50_ms"] == 2000.0
    assert split["media_unsettled"] == 1 and split["media_failed"] == {}


def _e2e(text_p99: float, unsettled: int = 0) -> dict[str, Any]:
    return {
        "p50_ms": 12.0,
        "p99_ms": 60.0,
        "text": {"count": 90, "p50_ms": 11.0, "p99_ms": text_p99},
        "media": {"count": 10, "p50_ms": 14.0, "p99_ms": 70.0},
        "media_settled": {"count": 10 - unsettled, "p50_ms": 200.0, "p99_ms": 900.0},
        "media_unsettled": unsettled,
        "media_failed": {},
    }


def test_p3m_ratio_is_the_text_p99_over_plain_p3_s_and_files_must_be_ready() -> None:
    p3 = finish("P3", {"p50_ms": 10.0, "p99_ms": 40.0, "baseline_p99_ms": 3.0}, AT)
    with_p3 = media_figures(_e2e(50.0), p3)
    assert with_p3["ratio"] == 1.25 and with_p3["baseline_p99_ms"] == 40.0
    assert with_p3["text_p99_ms"] == 50.0 and with_p3["media_p99_ms"] == 70.0
    assert finish("P3m", with_p3, AT)["met"] is True
    alone = media_figures(_e2e(50.0), None)
    assert alone["ratio"] is None and "P3 did not run" in alone["ratio_note"]
    assert finish("P3m", media_figures({**_e2e(50.0), "p99_ms": 150.0}, p3), AT)["met"] is False
    assert finish("P3m", media_figures(_e2e(50.0, unsettled=1), p3), AT)["met"] is False
    row = markdown_table(document({}, {"P3m": finish("P3m", with_p3, AT)}, None)).splitlines()[2]
    assert "| text p50 11.0 ms, p99 50.0 ms; media p99 70.0 ms, files ready p99 900 ms " in row
    assert "| P3 p99 40.0 ms | 1.25 |" in row
    lost = finish("P3m", media_figures(_e2e(50.0, unsettled=2), None), AT)
    row = markdown_table(document({}, {"P3m": lost}, None)).splitlines()[2]
    assert "2 files never settled" in row and "P3 did not run in this invocation" in row


def test_p7m_row_adds_the_knee_against_p7_and_the_files() -> None:
    p7m = {
        "knee_msg_per_s": 700.0,
        "limit_process": "p7m-streams",
        "cpu_us_per_message": {},
        **knee_ratio(700.0, P1_RESULT),
        "knee_vs_p7": 0.5,
        "p7_knee_msg_per_s": 1400.0,
        "media_settled_p99_ms": 820.0,
    }
    done = finish("P7m", p7m, AT)
    assert done["met"] is False  # 700 / 8,000 < 0.25
    row = markdown_table(document({}, {"P7m": done}, None)).splitlines()[2]
    assert "700 msg/s (limit: p7m-streams); 0.50 of P7's 1,400; files ready p99 820 ms" in row
