"""P2: raw messages/s through `hub streams` vs the store's raw bulk-upsert rate; P6: replay.

P2 puts a backlog of raw messages (spread round-robin over many users, a few chats
each) on a fresh raw-messages topic, then starts one worker on CPU 0 and times, from its
own log lines, the window from the start of its first batch to the end of its projection
sink's last write: a message counts as processed once its projections are written, not
when its event left. Everything in between (fetch, store writes, table and changelog,
user events, projections) is what a sustained stream costs. The sink's documents written
per message are reported beside. The baseline (the issue's) bulk-upserts the worker's
message documents for the same records, in the worker's batch size, with the same
client, on the same core, into a collection with the same indexes; their bulk-insert
rate, the store's fastest write and how the worker stores messages, is reported beside.

P6 then replays that history (`hub replay --database <db>_replay`, the worker stopped)
and compares its events/s with P2's live rate.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime
from pathlib import Path

import orjson

from bench.context import Context
from bench.data import raw_message
from bench.procs import SERVER_CPU, BenchError, Children, free_port, metric, python_argv, wait_log
from bench.report import Result, ratio_result
from bench.stage import Stage, stage
from bench.stats import rate, ratio
from hubcore.kafka import Topics, create_producer, ensure_topics

CONVERSATIONS = 2  # chats per user
_REPLAYED = re.compile(r"replayed (\d+) events .* in ([\d.]+) s: (\d+) events/s")


async def _produce(st: Stage, messages: int, users: int) -> None:
    """Put the backlog on raw-messages, keyed by user as the connectors do."""
    topic = Topics.from_settings(st.settings).raw_messages
    producer = create_producer(st.settings)
    await producer.start()
    try:
        acks = []
        for n in range(messages):
            raw = raw_message(n, users, CONVERSATIONS)
            acks.append(await producer.send(topic, key=raw.user_id.encode(), value=raw.to_json()))
        await asyncio.gather(*acks)
    finally:
        await producer.stop()


def batch_window(log: Path) -> tuple[int, float, float]:
    """(records, seconds from the first batch's start to the end of the last batch or
    projection write, whichever is later, seconds busy in batches) from the worker's JSON
    `batch` and `projections` log lines."""
    batches = []
    last_end = 0.0
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        if '"event": "batch"' in line:
            batches.append(orjson.loads(line))
        if '"event": "batch"' in line or '"event": "projections"' in line:
            at = datetime.fromisoformat(orjson.loads(line)["timestamp"]).timestamp()
            last_end = max(last_end, at)
    if not batches:
        raise BenchError(f"no batch lines in {log}")
    first_end = datetime.fromisoformat(batches[0]["timestamp"]).timestamp()
    busy = [float(b["ms"]) / 1000 for b in batches]
    window = last_end - (first_end - busy[0])
    return sum(int(b["records"]) for b in batches), window, sum(busy)


async def _live(kids: Children, st: Stage, ctx: Context, messages: int) -> dict[str, float]:
    """Run one worker over the backlog; its sustained rate."""
    web = free_port()
    worker = await kids.start(
        "p2-streams",
        python_argv("hub", "streams"),
        env=st.env(
            HUB_STREAMS_WEB_PORT=str(web),
            HUB_DATA_DIR=str(ctx.log_dir / "p2-data"),  # its batch lines are the clock
        ),
        cpu=SERVER_CPU,
    )
    await wait_log(worker, "Worker]: Ready", timeout=120)
    deadline = time.monotonic() + ctx.size(600, 180)
    url = f"http://127.0.0.1:{web}/metrics"
    while await metric(url, 'hub_streams_records_total{kind="raw"}') < messages:
        worker.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"the worker did not process {messages} records in time")
        await asyncio.sleep(0.5)
    # Processed = projected: wait for the sink to catch up.
    while await metric(url, "hub_streams_sink_lag_now_seconds") > 0:
        worker.check_alive()
        if time.monotonic() > deadline:
            raise BenchError("the projection sink did not catch up in time")
        await asyncio.sleep(0.2)
    events = await metric(url, 'hub_streams_user_events_total{type="new_message"}')
    documents = await metric(url, "hub_streams_sink_documents_total")
    await kids.stop(worker)
    records, window, busy = batch_window(worker.log)
    if records != messages or events < messages:
        raise BenchError(f"worker processed {records} records, emitted {events:.0f} messages")
    return {
        "per_s": rate(records, window),
        "seconds": window,
        "busy": busy,
        "sink_documents_per_message": round(documents / records, 3),
    }


async def _replay(kids: Children, st: Stage) -> dict[str, float]:
    """`hub replay` of the stage's history into another database; its own figures."""
    out = await kids.run_output(
        "p6-replay",
        python_argv("hub", "replay", "--database", st.database("replay")),
        env=st.env(),
        cpu=SERVER_CPU,
        timeout=600,
    )
    match = _REPLAYED.search(out.decode(errors="replace"))
    if match is None:
        raise BenchError(f"unexpected `hub replay` output: {out[-500:]!r}")
    return {"events": int(match[1]), "seconds": float(match[2]), "per_s": float(match[3])}


async def run(ctx: Context, *, replay: bool) -> dict[str, Result]:
    """Measure P2 (and P6 when `replay`)."""
    messages = ctx.size(5_000, 1_000)
    users = ctx.size(200, 50)
    async with stage(ctx.base, "p2") as st, Children(ctx.log_dir) as kids:
        await ensure_topics(st.settings)
        await _produce(st, messages, users)
        batch = st.settings.streams_batch_size
        store = await kids.run_json(
            "p2-store-write",
            python_argv(
                "bench.loadgen",
                "store-write",
                "--url",
                st.settings.mongo_url,
                "--insert-db",
                st.database("insert"),
                "--upsert-db",
                st.database("upsert"),
                "--messages",
                str(messages),
                "--users",
                str(users),
                "--conversations",
                str(CONVERSATIONS),
                "--batch",
                str(batch),
            ),
            cpu=SERVER_CPU,  # where the worker runs
            timeout=600,
        )
        live = await _live(kids, st, ctx, messages)
        shape = {
            "messages": messages,
            "users": users,
            "conversations": users * CONVERSATIONS,
            "batch": batch,
        }
        results = {
            "P2": ratio_result(
                live["per_s"],
                store["upsert_per_s"],
                "msg/s",
                baseline_name="bulk upsert of the same documents",
                # How the worker stores messages, and the store's fastest write.
                insert_baseline=store["insert_per_s"],
                ratio_vs_insert=ratio(live["per_s"], store["insert_per_s"]),
                seconds=round(live["seconds"], 2),
                sink_documents_per_message=live["sink_documents_per_message"],
                busy_seconds=round(live["busy"], 2),
                baseline_seconds=store["upsert_seconds"],
                **shape,
            )
        }
        if replay:
            replayed = await _replay(kids, st)
            results["P6"] = ratio_result(
                replayed["per_s"],
                live["per_s"],
                "events/s",
                baseline_name="P2 live rate",
                events=replayed["events"],
                seconds=replayed["seconds"],
                **shape,
            )
    return results
