"""Slack Events API: `url_verification`, and `event_callback` message events.

A message's id comes from (channel, ts), Slack's own identity of a message, so a retry
(`X-Slack-Retry-Num`, same `event_id`) yields the same hub id. Bot messages and subtypes
that are not someone writing (joins, topic changes...) are ignored; `message_changed`
and `message_deleted` become edit and delete commands of the message at (channel, ts).
Events of another workspace than the account's (`team_id`) are ignored too.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import structlog
from starlette.responses import PlainTextResponse

from connectors.platforms import media
from connectors.platforms.base import (
    Ignored,
    Normalized,
    WebhookOutcome,
    deleted,
    edited,
    raw_message,
)
from connectors.platforms.fields import JsonObject, json_object, obj, optional_string, string
from connectors.platforms.fields import unix_time as parse_unix_time
from connectors.signatures import check_slack_signature
from hubcore.accounts import Account

log = structlog.get_logger("connectors.slack")

TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
SIGNATURE_HEADER = "X-Slack-Signature"
# Subtypes that are a person writing; every other subtype is not stored.
STORED_SUBTYPES = frozenset({None, "file_share", "thread_broadcast", "me_message"})


def verify(account: Account, headers: Mapping[str, str], body: bytes, now: float) -> None:
    """v0 signature over `v0:{timestamp}:{body}`, timestamp within 5 minutes of now."""
    check_slack_signature(
        str(account.credentials["signingSecret"]),
        headers.get(TIMESTAMP_HEADER.lower()),
        headers.get(SIGNATURE_HEADER.lower()),
        body,
        now,
    )


def parse(account: Account, body: bytes, received_at: datetime) -> WebhookOutcome:
    """Answer the URL check; normalize message events; ignore the rest."""
    data = json_object(body)
    kind = string(data, "type", "type")
    if kind == "url_verification":
        return WebhookOutcome(reply=PlainTextResponse(string(data, "challenge", "challenge")))
    if kind != "event_callback":
        return WebhookOutcome(ignored=[Ignored(f"type_{kind}")])
    return WebhookOutcome.of([_event(account, data, received_at)])


def _event(account: Account, data: JsonObject, received_at: datetime) -> Normalized:
    team = string(data, "team_id", "team_id")
    event = obj(data, "event", "event")
    kind = string(event, "type", "event.type")
    if kind != "message":
        return Ignored(f"event_{kind}")
    if team != account.external_id:
        log.warning("slack event of another workspace", team_id=team)
        return Ignored("other_team")
    subtype = event.get("subtype")
    if subtype == "message_changed":
        return _changed(account, event)
    if subtype == "message_deleted":
        channel = string(event, "channel", "event.channel")
        ts = string(event, "deleted_ts", "event.deleted_ts")
        at = parse_unix_time(string(event, "ts", "event.ts"), "event.ts")
        return deleted(account, chat=channel, message=ts, at=at)
    if event.get("bot_id") or subtype == "bot_message":
        return Ignored("bot_message")
    if subtype not in STORED_SUBTYPES:
        return Ignored("subtype")
    channel = string(event, "channel", "event.channel")
    ts = string(event, "ts", "event.ts")
    profile = event.get("user_profile")
    name = None
    if isinstance(profile, dict):
        name = optional_string(profile, "display_name") or optional_string(profile, "real_name")
    return raw_message(
        account,
        chat=channel,
        message=ts,
        sender=(string(event, "user", "event.user"), name),
        text=event["text"] if isinstance(event.get("text"), str) else "",
        sent_at=parse_unix_time(ts, "event.ts"),
        received_at=received_at,
        raw=data,
        attachments=media.slack(account, event),
    )


def _changed(account: Account, event: JsonObject) -> Normalized:
    channel = string(event, "channel", "event.channel")
    message = obj(event, "message", "event.message")
    text = message["text"] if isinstance(message.get("text"), str) else ""
    ts = string(message, "ts", "event.message.ts")
    at = parse_unix_time(string(event, "ts", "event.ts"), "event.ts")
    return edited(account, chat=channel, message=ts, text=text, at=at)
