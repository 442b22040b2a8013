"""Prometheus metrics of sending replies (process-wide, on the default registry).

Labels are closed sets: `platform` is the schema's `Platform`, `reason` one of
`SEND_FAILURE_REASONS`, so no answer a platform gives can add series.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# Why a platform call (or a reply without one) failed. A `SendError` names its reason
# where it is raised; one without a known reason counts as `other`.
SEND_FAILURE_REASONS = frozenset(
    {
        "connect",  # the request never reached the platform (retried)
        "no_answer",  # the request left and no answer came (ambiguous unless idempotent)
        "rate_limited",  # 429 (retried after the platform's wait)
        "server_error",  # 5xx, an SMTP 4xx (retried)
        "rejected",  # the platform refused the reply: another 4xx, ok:false, SMTP 5xx
        "credentials",  # the account has no usable sending credential, or login refused
        "address_refused",  # the outbound policy refused the account's host or URL
        "bad_answer",  # an answer the hub cannot read (the platform may have the message)
        "crashed",  # a bug in the hub, not the platform (logged with its traceback)
        "lost_during_call",  # a restart during a call the platform cannot dedupe
        "account_gone",  # the account was removed or changed owner before the send
        "other",
    }
)

SEND_ATTEMPTS = Counter(
    "hub_connectors_send_attempts_total",
    "Platform calls made to send replies (each retry counts), by platform.",
    ["platform"],
)
SEND_FAILURES = Counter(
    "hub_connectors_send_failures_total",
    "Failed platform calls, and replies failed without one, by platform and reason.",
    ["platform", "reason"],
)
SEND_SECONDS = Histogram(
    "hub_connectors_send_seconds",
    "Duration of one platform call sending a reply, whatever its outcome, by platform.",
    ["platform"],
    # HUB_SEND_TIMEOUT is at most 120 s; its default 10 s falls in the last finite bucket.
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)


def failure_reason(reason: str) -> str:
    """The label for a failure reason: itself when known, else `other`."""
    return reason if reason in SEND_FAILURE_REASONS else "other"
