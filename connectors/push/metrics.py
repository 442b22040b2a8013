"""Prometheus metrics of the push notifier (process-wide, on the default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# What became of a `new_message` (closed set: labels never come from input).
DECISIONS = (
    "sent", "coalesced", "deferred", "online", "muted", "disabled", "no_subscription",
    "outbound", "stale", "error",
)  # fmt: skip
# Why one push to one subscription failed (closed set).
FAILURES = ("gone", "rejected", "throttled", "server_error", "unreachable", "refused", "internal")

PUSH_DECISIONS = Counter(
    "hub_push_decisions_total",
    "New messages the push notifier looked at, by what it did with them.",
    ["decision"],
)
PUSH_SENT = Counter(
    "hub_push_sent_total", "Notifications a push service accepted (one per subscription)."
)
PUSH_FAILED = Counter(
    "hub_push_failed_total",
    "Notifications not delivered to a subscription, by reason (gone: 404/410, the "
    "subscription removed; throttled: 429 and server_error: 5xx after the retries).",
    ["reason"],
)
PUSH_SECONDS = Histogram(
    "hub_push_seconds",
    "Time of one push service call, retries included.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
