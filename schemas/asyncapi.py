"""The AsyncAPI 3 document of the topics and the WebSocket, self-contained.

Every payload schema is inlined under `components.schemas` (their `$defs` hoisted beside
them), so the document loads from any working directory and in tools that only see the
one file. The copies speak AsyncAPI's default schema format: `discriminator` there is
the property name, not OpenAPI's object.
"""

from __future__ import annotations

from typing import Any

_COMPONENTS = "#/components/schemas/"

CONSUMING = (
    "Values are compressed by the producer with lz4 (Kafka record-batch compression): a "
    "consumer needs an lz4 codec. Java clients, librdkafka (confluent-kafka, kcat) and "
    "franz-go have it built in; aiokafka needs `pip install 'aiokafka[lz4]'` and "
    "kafka-python `pip install lz4`, else they fail on the first batch."
)


def _to_asyncapi(node: Any) -> Any:
    """A copy of a JSON Schema node in AsyncAPI's schema dialect, refs into components."""
    if isinstance(node, list):
        return [_to_asyncapi(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/"):
            out[key] = _COMPONENTS + value.removeprefix("#/$defs/")
        elif key == "discriminator" and isinstance(value, dict):
            out[key] = value["propertyName"]
        elif key not in ("$schema", "$id", "$defs"):
            out[key] = _to_asyncapi(value)
    return out


def inline_schemas(published: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Component name -> schema, for every published file (named without `.json`) and
    every definition they share (one copy each; a name must mean one shape)."""
    components: dict[str, dict[str, Any]] = {}
    for file_name, doc in published.items():
        for name, definition in doc.get("$defs", {}).items():
            converted = _to_asyncapi(definition)
            if components.setdefault(name, converted) != converted:
                raise ValueError(f"two different schemas are named {name!r}")
        components[file_name.removesuffix(".json")] = _to_asyncapi(doc)
    return components


def _topic(
    kind: str, summary: str, component: str, key: str, retention: dict[str, str]
) -> dict[str, Any]:
    config: dict[str, Any] = {"cleanup.policy": ["delete"]}
    config.update({name: int(value) for name, value in retention.items()})
    return {
        "address": f"hub.{kind}",
        "description": f"{summary} Keyed by {key}. {CONSUMING}",
        "bindings": {
            "kafka": {
                "topic": f"hub.{kind}",
                "topicConfiguration": config,
                "bindingVersion": "0.5.0",
            }
        },
        "messages": {
            kind: {
                "contentType": "application/json",
                "payload": {"$ref": _COMPONENTS + component},
                "bindings": {
                    "kafka": {
                        "key": {"type": "string", "description": key},
                        "bindingVersion": "0.5.0",
                    }
                },
            }
        },
    }


def _receive(channel: str) -> dict[str, Any]:
    return {"action": "receive", "channel": {"$ref": f"#/channels/{channel}"}}


def document(
    published: dict[str, dict[str, Any]], retention: dict[str, dict[str, str]]
) -> dict[str, Any]:
    """The AsyncAPI document; `published`: file name -> JSON Schema; `retention`: topic
    kind -> its retention configs (as the hub creates the topics)."""
    user = "the hub user id"
    ws = "#/channels/websocket/messages/"
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "hub",
            "version": "1.0.0",
            "description": (
                "Kafka topics of the hub (UTF-8 JSON values, each with a `schema` field) "
                "and its WebSocket channel. Topic names carry the namespace `hub` "
                f"(settable with HUB_TOPIC_NAMESPACE). {CONSUMING}"
            ),
        },
        "servers": {
            "kafka": {"host": "localhost:9092", "protocol": "kafka"},
            "gateway": {"host": "localhost:8000", "protocol": "ws", "pathname": "/ws"},
            "webhookReceiver": {
                "host": "receiver.example",
                "protocol": "https",
                "description": "A user's webhook endpoint (any host the outbound policy allows).",
            },
        },
        "channels": {
            "rawMessages": _topic(
                "raw-messages",
                "One platform message as received.",
                "raw-message.v1",
                user,
                retention["raw-messages"],
            ),
            "commands": _topic(
                "commands",
                "User and platform commands: mark read, send, send results, delivery "
                "statuses, edits, deletes and attachment fetch results.",
                "command.v1",
                user,
                retention["commands"],
            ),
            "outbound": _topic(
                "outbound",
                "Replies for the connectors to send through the platforms.",
                "outbound.v1",
                "the account id (one account's sends stay in order)",
                retention["outbound"],
            ),
            "userEvents": _topic(
                "user-events",
                "Every event pushed to a user's clients.",
                "user-event.v1",
                user,
                retention["user-events"],
            ),
            "deadLetter": _topic(
                "dead-letter",
                "Inputs that could not be processed.",
                "dead-letter.v1",
                "the input's key as received (a webhook's: the account id)",
                retention["dead-letter"],
            ),
            "presence": _topic(
                "presence",
                "Connection changes and liveness of the gateways, the presence table's input "
                "(docs/presence.md): `connect` and `disconnect` keyed by the hub user id; a "
                "gateway's `heartbeat` and `gateway_down` and a streams worker's `tick` are "
                "written to every partition, keyed by the gateway id (`tick`: `tick`).",
                "presence.v1",
                user,
                retention["presence"],
            ),
            "mediaFetch": _topic(
                "media-fetch",
                "Attachments for the connectors to fetch (metadata; an email part's bytes "
                "inline). Written only by the connectors: a replay fetches nothing.",
                "media-fetch.v1",
                user,
                retention["media-fetch"],
            ),
            "webhooks": {
                "address": "{endpoint}",
                "servers": [{"$ref": "#/servers/webhookReceiver"}],
                "parameters": {
                    "endpoint": {"description": "The URL a user registered (`POST /api/webhooks`)."}
                },
                "description": (
                    "Users' signed event webhooks (docs/webhooks.md): the connectors POST each "
                    "subscribed event to the endpoint, its body the `/ws` event frame, signed "
                    "per Standard Webhooks; at least once, in order per endpoint, retried with "
                    "back-off. `POST /api/webhooks/{id}/test` sends a `ping` frame the same way."
                ),
                "messages": {
                    "event": {
                        "contentType": "application/json",
                        "headers": {
                            "type": "object",
                            "required": ["webhook-id", "webhook-timestamp", "webhook-signature"],
                            "properties": {
                                "webhook-id": {
                                    "type": "string",
                                    "description": "Stable across retries: de-duplicate by it.",
                                },
                                "webhook-timestamp": {
                                    "type": "string",
                                    "description": "Unix seconds of this attempt.",
                                },
                                "webhook-signature": {
                                    "type": "string",
                                    "description": "Space-separated `v1,<base64 HMAC-SHA256>` "
                                    "(two during a secret rotation's grace).",
                                },
                            },
                        },
                        "payload": {"$ref": _COMPONENTS + "ws-event-frame"},
                        "bindings": {"http": {"bindingVersion": "0.3.0"}},
                    }
                },
                "bindings": {"http": {"bindingVersion": "0.3.0"}},
            },
            "websocket": {
                "address": "/ws",
                "servers": [{"$ref": "#/servers/gateway"}],
                "description": (
                    "Authenticate within HUB_WS_AUTH_TIMEOUT seconds, then receive events."
                ),
                "messages": {
                    "clientFrame": {"payload": {"$ref": _COMPONENTS + "ws-client-frame"}},
                    "authenticated": {"payload": {"$ref": _COMPONENTS + "ws-authenticated"}},
                    "event": {"payload": {"$ref": _COMPONENTS + "ws-event-frame"}},
                    "pong": {"payload": {"$ref": _COMPONENTS + "ws-pong"}},
                },
            },
        },
        "operations": {
            "consumeRawMessages": _receive("rawMessages"),
            "consumeCommands": _receive("commands"),
            "consumeOutbound": _receive("outbound"),
            "consumeUserEvents": _receive("userEvents"),
            "consumeDeadLetter": _receive("deadLetter"),
            "consumePresence": _receive("presence"),
            "consumeMediaFetch": _receive("mediaFetch"),
            "sendWebhook": {
                "action": "send",
                "channel": {"$ref": "#/channels/webhooks"},
                "bindings": {"http": {"method": "POST", "bindingVersion": "0.3.0"}},
            },
            "sendClientFrame": {
                "action": "send",
                "channel": {"$ref": "#/channels/websocket"},
                "messages": [{"$ref": ws + "clientFrame"}],
            },
            "receiveServerFrame": {
                "action": "receive",
                "channel": {"$ref": "#/channels/websocket"},
                "messages": [
                    {"$ref": ws + "authenticated"},
                    {"$ref": ws + "event"},
                    {"$ref": ws + "pong"},
                ],
            },
        },
        "components": {"schemas": inline_schemas(published)},
    }
