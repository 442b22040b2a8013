"""Prometheus metrics of the gateway: connections, pushed events, push latency, failures."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONNECTIONS = Gauge(
    "hub_gateway_connections",
    "Open client connections (authenticated or not) by transport.",
    ["transport"],
)
AUTHENTICATED_USERS = Gauge(
    "hub_gateway_authenticated_users",
    "Distinct users with at least one authenticated connection on this gateway.",
)
EVENTS_CONSUMED = Counter(
    "hub_gateway_events_consumed_total",
    "Records read from the user-events topic (all users, delivered here or not).",
)
EVENTS_ROUTED = Counter(
    "hub_gateway_events_routed_total",
    "User events that had at least one listener on this gateway (decoded and encoded once).",
)
EVENTS_INVALID = Counter(
    "hub_gateway_events_invalid_total",
    "User-event records skipped because they could not be decoded or their key was wrong.",
)
EVENTS_PUSHED = Counter(
    "hub_gateway_events_pushed_total",
    "Event frames written to client connections, by transport.",
    ["transport"],
)
PUSH_LATENCY = Histogram(
    "hub_gateway_push_latency_seconds",
    "From an event's occurredAt to its frame being written to a WebSocket.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
AUTH_FAILURES = Counter(
    "hub_gateway_auth_failures_total",
    "Refused authentications by transport and reason.",
    ["transport", "reason"],
)
DISCONNECTS = Counter(
    "hub_gateway_server_closes_total",
    "Connections the server closed, by close code (4401 auth, 4408 slow reader, 1009 size).",
    ["code"],
)
RESUMES = Counter(
    "hub_gateway_resumes_total",
    "Resume requests by outcome (ok, resume_unavailable, invalid_cursor).",
    ["outcome"],
)
REPLAYED = Counter(
    "hub_gateway_replayed_events_total",
    "Events delivered from the topic's history on resume.",
)
HTTP_REQUESTS = Counter(
    "hub_gateway_http_requests_total",
    "REST requests by method, route template and status.",
    ["method", "route", "status"],
)
RATE_LIMITED = Counter(
    "hub_gateway_rate_limited_total",
    "Connections and requests refused by a rate limit, by limit.",
    ["limit"],
)
# --- presence (gateway/presence.py) ---------------------------------------------------
PRESENCE_SENT = Counter(
    "hub_gateway_presence_records_total", "Records this gateway sent to hub.presence."
)
PRESENCE_DROPPED = Counter(
    "hub_gateway_presence_dropped_total",
    "Connection changes dropped while Kafka was away too long (the queue was full).",
)
