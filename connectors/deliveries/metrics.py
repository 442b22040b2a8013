"""Prometheus metrics of webhook deliveries (process-wide, on the default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from hubcore.webhooks import FAILURE_REASONS

DELIVERIES = Counter(
    "hub_webhook_deliveries_total",
    "Webhook delivery attempts, by outcome: delivered, failed (retried later) or dead "
    "(the last attempt failed: dead letter, endpoint disabled).",
    ["outcome"],
)
FAILURES = Counter(
    "hub_webhook_failures_total",
    "Failed webhook delivery attempts, by reason (a closed set).",
    ["reason"],
)
for _reason in FAILURE_REASONS:
    FAILURES.labels(_reason)
ATTEMPT_SECONDS = Histogram(
    "hub_webhook_attempt_seconds",
    "Time of one delivery attempt: request sent to answer read.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
EVENT_TO_DELIVERY_SECONDS = Histogram(
    "hub_webhook_event_to_delivery_seconds",
    "Time from an event's occurrence to its first successful delivery.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600, 3600, 86_400),
)
BACKLOG = Gauge(
    "hub_webhook_backlog",
    "Pending webhook deliveries of the partitions this process owns (due or waiting).",
)
