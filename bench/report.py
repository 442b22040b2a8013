"""The results document (`bench/results/latest.json`) and the markdown table printed from it.

Format (issue 7): `{"machine": {...}, "scenarios": {"P1": {...}, ...}}`, where P1, P2, P5
and P6 hold `value`, `baseline`, `ratio`; P3 `p50_ms`, `p99_ms`, `baseline_p99_ms` (and
`rates`: the same at 10, 200 and 1,000 msg/s); P4 `connections`, `rss_per_conn_kib`; P7
`knee_msg_per_s`, `limit_process`, `cpu_us_per_message` (issue 11) and `ratio` (the knee
over P1's bare req/s, issue 21); P8 `ratio` (at 500 msg/s), `ratio_at_100`, `sum_us`,
`cpu_us_per_message`, `baseline_cpu_us_per_request`; N1 `event_us`, `event_first_us`,
`notification_us`, `encryption_us` (the push notifier, `bench/push_cost.py`); N2
`gateway_observe_us`, `worker_logic_us`, `worker_process_us` (presence, µs of CPU per
connection change, `bench/presence_cost.py`). Every
scenario also carries `target`, `met`, `measured_at` and scenario-specific detail; a
scenario that failed holds `error` instead. A scenario run several times (P2 and P3 in a
full run) shows its worst run, with all of them under `runs`. `profiles` (top level, kept
until the next `--profile`) names the flame graphs of `hub bench --profile`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.media_mix import files_all_ready
from bench.stats import ratio

Result = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Scenario:
    """What a scenario measures, the fields it must report and its target."""

    id: str
    measure: str
    fields: tuple[str, ...]
    target: str
    meets: Callable[[Mapping[str, Any]], bool]


_RATIO = ("value", "baseline", "ratio")
_P8_FIELDS = (
    "ratio",
    "ratio_at_100",
    "sum_us",
    "cpu_us_per_message",
    "baseline_cpu_us_per_request",
)
# P3m and P7m (issue 24, `bench/media_mix.py`): text and media messages apart.
_MEDIA_FIELDS = (
    "p50_ms",
    "p99_ms",
    "text_p50_ms",
    "text_p99_ms",
    "media_p99_ms",
    "media_settled_p99_ms",
    "media_messages",
    "media_unsettled",
    "media_failed",
    "ratio",
)

SCENARIOS: dict[str, Scenario] = {
    s.id: s
    for s in (
        Scenario(
            "P1", "signed webhooks/s accepted", _RATIO, "ratio >= 0.6", lambda r: r["ratio"] >= 0.6
        ),
        Scenario(
            "P2",
            "raw messages/s through streams",
            _RATIO,
            "ratio >= 0.7",
            lambda r: r["ratio"] >= 0.7,
        ),
        Scenario(
            "P3",
            "webhook -> WebSocket latency at 200 msg/s",
            ("p50_ms", "p99_ms", "baseline_p99_ms"),
            "p50 <= 20 ms, p99 <= 100 ms",
            lambda r: r["p50_ms"] <= 20 and r["p99_ms"] <= 100,
        ),
        Scenario(
            "P3m",
            "as P3, one webhook in ten carrying a photo, voice note or PDF",
            _MEDIA_FIELDS,
            "p50 <= 20 ms, p99 <= 100 ms; every file ready",
            lambda r: r["p50_ms"] <= 20 and r["p99_ms"] <= 100 and files_all_ready(r),
        ),
        Scenario(
            "P4",
            "idle authenticated WebSockets, one gateway",
            ("connections", "rss_per_conn_kib"),
            ">= 10,000, <= 30 KiB each",
            lambda r: r["connections"] >= 10_000 and r["rss_per_conn_kib"] <= 30,
        ),
        Scenario(
            "P4s",
            "idle authenticated Socket.IO sockets, one gateway",
            ("connections", "rss_per_conn_kib"),
            ">= 10,000, <= 30 KiB each",
            lambda r: r["connections"] >= 10_000 and r["rss_per_conn_kib"] <= 30,
        ),
        Scenario(
            "P5",
            "burst frames/s to 5,000 sockets",
            _RATIO,
            "ratio >= 1.0",
            lambda r: r["ratio"] >= 1.0,
        ),
        Scenario(
            "P5s",
            "burst frames/s to 5,000 Socket.IO sockets",
            _RATIO,
            "ratio >= 1.0",
            lambda r: r["ratio"] >= 1.0,
        ),
        Scenario("P6", "`hub replay` events/s", _RATIO, "ratio >= 2", lambda r: r["ratio"] >= 2),
        Scenario(
            "P7",
            "highest webhook -> WebSocket rate with p99 <= 1 s",
            ("knee_msg_per_s", "limit_process", "cpu_us_per_message", "ratio"),
            "ratio >= 0.25 (knee / bare FastAPI req/s)",
            lambda r: r["ratio"] is not None and r["ratio"] >= 0.25,
        ),
        Scenario(
            "P7m",
            "as P7, one webhook in ten carrying a photo, voice note or PDF",
            ("knee_msg_per_s", "limit_process", "cpu_us_per_message", "ratio"),
            "ratio >= 0.25 (knee / bare FastAPI req/s)",
            lambda r: r["ratio"] is not None and r["ratio"] >= 0.25,
        ),
        Scenario(
            "P8",
            "hub CPU per message vs a bare FastAPI request",
            _P8_FIELDS,
            "ratio <= 5 at 500 msg/s, <= 10 at 100 msg/s",
            lambda r: r["ratio"] <= 5 and r["ratio_at_100"] <= 10,
        ),
        Scenario(
            "N1",
            "Web Push notifier CPU per user event (and per notification sent)",
            ("event_us", "event_first_us", "notification_us", "encryption_us"),
            "<= 100 us per user event (user without a subscription)",
            lambda r: r["event_us"] <= 100,
        ),
        Scenario(
            "W1",
            "user event -> webhook latency at 200 events/s; deliveries/s",
            ("p50_ms", "p99_ms", "deliveries_per_s"),
            "p99 <= 1,000 ms, >= 200 deliveries/s",
            lambda r: r["p99_ms"] <= 1000 and r["deliveries_per_s"] >= 200,
        ),
        Scenario(
            "N2",
            "presence CPU per connection change (gateway hook, streams worker)",
            ("gateway_observe_us", "worker_logic_us", "worker_process_us"),
            "gateway hook <= 20 us, worker process <= 500 us",
            lambda r: r["gateway_observe_us"] <= 20 and r["worker_process_us"] <= 500,
        ),
        Scenario(
            "R1",
            "Socket.IO recovery of 1,000 missed events (reconnect -> last)",
            ("ms", "events", "recovered", "in_order"),
            "every event once, in order, recovered",
            lambda r: r["recovered"] and r["in_order"] and r["events"] == 1000,
        ),
    )
}


def ratio_result(value: float, baseline: float, unit: str, **detail: Any) -> Result:
    """A P1/P2/P5/P6 result: `value`, `baseline` (rounded) and their `ratio`."""
    return {
        "value": round(value, 1),
        "baseline": round(baseline, 1),
        "ratio": ratio(value, baseline),
        "unit": unit,
        **detail,
    }


def finish(scenario_id: str, result: Result, measured_at: str) -> Result:
    """Check the required fields and add `target`, `met` and `measured_at`."""
    scenario = SCENARIOS[scenario_id]
    if "error" in result:
        return {
            "error": result["error"],
            "target": scenario.target,
            "met": False,
            "measured_at": measured_at,
        }
    missing = [f for f in scenario.fields if f not in result]
    if missing:
        raise ValueError(f"{scenario_id} result lacks {', '.join(missing)}")
    return {
        **result,
        "target": scenario.target,
        "met": bool(scenario.meets(result)),
        "measured_at": measured_at,
    }


# How bad a run is, for the scenarios a full run repeats: the table shows the worst.
_BADNESS: dict[str, Callable[[Mapping[str, Any]], float]] = {
    "P2": lambda r: -r["ratio"],
    # Furthest from its target (p50 <= 20 ms, p99 <= 100 ms), on either percentile.
    "P3": lambda r: max(r["p50_ms"] / 20, r["p99_ms"] / 100),
}
REPEATED = tuple(_BADNESS)


def worst_of(scenario_id: str, runs: Sequence[Result]) -> Result:
    """The worst of a scenario's finished runs (a failed one first), all of them in `runs`."""
    failed = [r for r in runs if "error" in r]
    chosen = failed[0] if failed else max(runs, key=_BADNESS[scenario_id])
    return {**chosen, "runs": list(runs)}


def document(
    machine: Mapping[str, Any],
    scenarios: Mapping[str, Result],
    previous: Mapping[str, Any] | None,
    profiles: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The new results document: these scenarios, plus those of `previous` not run now;
    `profiles` if given, else the previous ones."""
    kept = dict((previous or {}).get("scenarios", {}))
    kept.update(scenarios)
    ordered = {k: kept[k] for k in sorted(kept) if k in SCENARIOS}
    doc: dict[str, Any] = {"machine": dict(machine), "scenarios": ordered}
    profiled = profiles or (previous or {}).get("profiles")
    if profiled:
        doc["profiles"] = dict(profiled)
    return doc


def _n(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _per_process(us: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {_n(v)} us" for k, v in sorted(us.items())) or "-"


def _media_trouble(r: Mapping[str, Any]) -> str:
    """ ", 3 files never settled, failed: timeout 2" or nothing."""
    out = f", {r['media_unsettled']} files never settled" if r["media_unsettled"] else ""
    failed = ", ".join(f"{k} {v}" for k, v in sorted(r["media_failed"].items()))
    return out + (f", failed: {failed}" if failed else "")


def _cells(scenario_id: str, r: Mapping[str, Any]) -> tuple[str, str, str]:
    """(hub, baseline, ratio) cells of one result."""
    if "error" in r:
        return (f"failed: {r['error']}", "-", "-")
    if scenario_id == "P3":
        return (
            f"p50 {_n(r['p50_ms'], 1)} ms, p99 {_n(r['p99_ms'], 1)} ms",
            f"Kafka round trip p99 {_n(r['baseline_p99_ms'], 1)} ms",
            "-",
        )
    if scenario_id == "P3m":
        return (
            f"text p50 {_n(r['text_p50_ms'], 1)} ms, p99 {_n(r['text_p99_ms'], 1)} ms; "
            f"media p99 {_n(r['media_p99_ms'], 1)} ms, files ready p99 "
            f"{_n(r['media_settled_p99_ms'] or 0)} ms{_media_trouble(r)}",
            f"P3 p99 {_n(r['baseline_p99_ms'], 1)} ms"
            if r["ratio"] is not None
            else r.get("ratio_note", "no P3 in this run"),
            "-" if r["ratio"] is None else f"{r['ratio']:.2f}",
        )
    if scenario_id == "P7m":
        hub, base, rat = _cells("P7", r)
        if "knee_vs_p7" in r:
            hub += f"; {r['knee_vs_p7']:.2f} of P7's {_n(r['p7_knee_msg_per_s'])}"
        settled = r.get("media_settled_p99_ms")
        if settled is not None:
            hub += f"; files ready p99 {_n(settled)} ms at the knee"
        return hub, base, rat
    if scenario_id == "P7":
        cpu = _per_process(r["cpu_us_per_message"])
        if r.get("ratio") is None:
            return (
                f"{_n(r['knee_msg_per_s'])} msg/s (limit: {r['limit_process']})",
                f"{r.get('ratio_note', 'no P1 in this run')}; CPU per message: {cpu}",
                "-",
            )
        return (
            f"{_n(r['knee_msg_per_s'])} msg/s (limit: {r['limit_process']})",
            f"{_n(r['baseline'])} req/s (bare FastAPI); CPU per message: {cpu}",
            f"{r['ratio']:.2f}",
        )
    if scenario_id == "P8":
        light = r.get("rates", {}).get("100", {})
        return (
            f"500 msg/s: {_n(r['sum_us'])} us per message ({_per_process(r['cpu_us_per_message'])})"
            f"; 100 msg/s: {_n(light.get('sum_us', 0))} us, ratio {r['ratio_at_100']:.2f}",
            f"{_n(r['baseline_cpu_us_per_request'])} us per request (bare FastAPI)",
            f"{r['ratio']:.2f}",
        )
    if scenario_id == "R1":
        return (f"{_n(r['ms'], 1)} ms, {r['events']} events", "-", "-")
    if scenario_id == "N1":
        return (
            f"{_n(r['event_us'], 1)} us per user event ({_n(r['event_first_us'])} us first "
            f"in 5 s); {_n(r['notification_us'])} us per notification sent",
            f"RFC 8291 encryption {_n(r['encryption_us'])} us",
            "-",
        )
    if scenario_id == "W1":
        return (
            f"p50 {_n(r['p50_ms'], 1)} ms, p99 {_n(r['p99_ms'], 1)} ms; "
            f"{_n(r['deliveries_per_s'])} deliveries/s ({r['endpoints']} endpoints)",
            "-",
            "-",
        )
    if scenario_id == "N2":
        return (
            f"gateway hook {_n(r['gateway_observe_us'], 1)} us, streams worker process "
            f"{_n(r['worker_process_us'])} us per connection change",
            f"worker batch logic alone {_n(r['worker_logic_us'], 1)} us",
            "-",
        )
    if scenario_id in ("P4", "P4s"):
        return (
            f"{_n(r['connections'])} sockets, {_n(r['rss_per_conn_kib'], 1)} KiB each",
            "-",
            "-",
        )
    unit = r.get("unit", "")
    hub = f"{_n(r['value'])} {unit}".strip()
    if "p50_ms" in r:
        hub += f" (p50 {_n(r['p50_ms'], 1)} ms, p99 {_n(r['p99_ms'], 1)} ms)"
    base = f"{_n(r['baseline'])} {unit}".strip()
    if "baseline_name" in r:
        base += f" ({r['baseline_name']})"
    if "insert_baseline" in r:
        base += f"; bulk insert {_n(r['insert_baseline'])} {unit}, ratio {r['ratio_vs_insert']:.3f}"
    return hub, base, f"{r['ratio']:.2f}"


def markdown_table(doc: Mapping[str, Any]) -> str:
    """The short results table: one row per scenario, target met or not."""
    lines = [
        "| id | measure | hub | baseline (same run) | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for scenario_id, r in doc["scenarios"].items():
        hub, base, rat = _cells(scenario_id, r)
        met = "yes" if r.get("met") else "no"
        measure = SCENARIOS[scenario_id].measure
        lines.append(
            f"| {scenario_id} | {measure} | {hub} | {base} | {rat} | {r['target']} | {met} |"
        )
    return "\n".join(lines)
