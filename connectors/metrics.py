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
# `IGNORED` reasons a label may take; others (built from what a signed body says: a
# WhatsApp `changes[].field`, a Slack event type) count as `other`, so whoever holds an
# account's secret cannot add series without end (issue 22).
IGNORED_REASONS = frozenset(
    {
        # every platform
        "not_an_object", "not_a_message", "service_message", "other_phone_number",
        "other_team", "bot_message", "subtype",
        # WhatsApp message types and statuses the hub does not store
        "reaction", "system", "unsupported", "unknown", "request_welcome", "status_deleted",
        "status_warning", "field_account_update", "field_message_template_status_update",
        "field_phone_number_quality_update", "field_phone_number_name_update",
        "field_account_review_update", "field_business_capability_update", "field_security",
        "field_template_category_update", "field_flows",
        # Slack envelope and event types
        "type_app_rate_limited", "event_app_mention", "event_reaction_added",
        "event_reaction_removed", "event_member_joined_channel", "event_member_left_channel",
        "event_channel_created", "event_channel_rename", "event_app_home_opened",
        "event_app_uninstalled", "event_tokens_revoked", "event_file_shared",
    }
)  # fmt: skip


def ignored_reason(reason: str) -> str:
    """The label for an `Ignored` reason: itself when known, else `other`."""
    return reason if reason in IGNORED_REASONS else "other"


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
