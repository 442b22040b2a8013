"""Prometheus metrics of the streams processor (served on the Faust web port at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECORDS = Counter("hub_streams_records_total", "Source records processed, by kind.", ["kind"])
MESSAGES_STORED = Counter(
    "hub_streams_messages_stored_total", "Messages newly stored (repeats excluded)."
)
MESSAGES_READ = Counter(
    "hub_streams_messages_read_total", "Messages a mark-read command changed to read."
)
DEAD_LETTERS = Counter(
    "hub_streams_dead_letters_total", "Records sent to the dead-letter topic.", ["error_type"]
)
EVENTS = Counter("hub_streams_user_events_total", "User events emitted, by type.", ["type"])
BATCH_SIZE = Histogram(
    "hub_streams_batch_size",
    "Records per processed batch.",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
)
BATCH_SECONDS = Histogram(
    "hub_streams_batch_seconds",
    "Wall time to process one batch (store writes, table update, events).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_RETRIES = Counter(
    "hub_streams_batch_retries_total", "Batches retried after a passing store/broker failure."
)
BATCH_PHASE_SECONDS = Histogram(
    "hub_streams_batch_phase_seconds",
    "Wall time of each phase of a batch (store, table, events).",
    ["phase"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CONSUMER_LAG = Gauge(
    "hub_streams_consumer_lag",
    "Records past this worker's committed offset on a source partition it owns, at the "
    "scrape (streams/positions.py).",
    ["topic", "partition"],
)
COMMIT_STALLED = Gauge(
    "hub_streams_commit_stalled_seconds",
    "How long this worker's committed offset on a source partition it owns has not moved "
    "while records wait past it; 0 when caught up.",
    ["topic", "partition"],
)
PROJECTION_DELAY = Histogram(
    "hub_streams_projection_delay_seconds",
    "From a batch's oldest record reaching Kafka to its messages stored and events sent.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
SINK_DOCUMENTS = Counter(
    "hub_streams_sink_documents_total", "Projection documents written by the sink."
)
SINK_LAG = Histogram(
    "hub_streams_sink_lag_seconds",
    "Age of the oldest change in each projection write, when written.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
SINK_LAG_NOW = Gauge(
    "hub_streams_sink_lag_now_seconds", "Age of the oldest unwritten projection change."
)
SINK_RETRIES = Counter(
    "hub_streams_sink_retries_total", "Projection writes retried after a store failure."
)

# --- presence (streams/presence_agent.py) ---------------------------------------------
PRESENCE_ONLINE = Gauge(
    "hub_presence_online_users",
    "Users with a live device, of the partitions this worker owns (sum over the workers).",
)
PRESENCE_RECORDS = Counter(
    "hub_presence_records_total", "hub.presence records applied (connection changes, clocks)."
)
PRESENCE_CPU = Counter(
    "hub_presence_cpu_seconds_total", "CPU seconds the presence agent spent on its batches."
)
PRESENCE_GATEWAYS_EXPIRED = Counter(
    "hub_presence_gateways_left_total",
    "Gateways whose devices were dropped, per partition: shut down or silent for the lease.",
)
