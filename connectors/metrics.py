"""Prometheus metrics of the connectors (process-wide, on the default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

WEBHOOK_REQUESTS = Counter(
    "hub_connectors_webhook_requests_total",
    "Webhook requests answered, by platform and HTTP status.",
    ["platform", "status"],
)
WEBHOOK_SECONDS = Histogram(
    "hub_connectors_webhook_seconds",
    "Time from a webhook request's arrival to its answer.",
    ["platform"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
MESSAGES_PRODUCED = Counter(
    "hub_connectors_messages_produced_total",
    "Raw messages acknowledged by Kafka, by platform and source (webhook or poll).",
    ["platform", "source"],
)
DUPLICATES_DROPPED = Counter(
    "hub_connectors_duplicates_dropped_total",
    "Messages not produced again because this process recently had them acknowledged.",
    ["platform"],
)
IGNORED = Counter(
    "hub_connectors_ignored_total",
    "Authentic inputs the hub deliberately does not store, by platform and reason.",
    ["platform", "reason"],
)
DEAD_LETTERS = Counter(
    "hub_connectors_dead_letters_total",
    "Inputs sent to the dead-letter topic, by platform.",
    ["platform"],
)
PRODUCE_SECONDS = Histogram(
    "hub_connectors_produce_seconds",
    "Time for Kafka to acknowledge one batch of records.",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
KAFKA_READY = Gauge("hub_connectors_kafka_ready", "1 while the producer is connected.")
POLLS = Counter(
    "hub_connectors_polls_total",
    "Poll rounds of platform APIs, by platform and outcome (ok or error).",
    ["platform", "outcome"],
)
POLLERS = Gauge("hub_connectors_pollers", "Pollers running in this process.", ["platform"])
