"""Generates the published JSON Schema files and the AsyncAPI document from the models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from schemas.commands import MarkRead
from schemas.deadletter import DeadLetter
from schemas.events import USER_EVENT_ADAPTER
from schemas.messages import Conversation, Message, RawMessage
from schemas.ws import CLIENT_FRAME_ADAPTER, Authenticated, EventFrame, Pong

ROOT = Path(__file__).parent
ID_BASE = "https://hub.example/schemas/"

# file name -> (title, model or adapter)
_SCHEMAS: dict[str, tuple[str, type[BaseModel] | TypeAdapter[Any]]] = {
    "raw-message.v1.json": ("hub.raw-message/1", RawMessage),
    "command.v1.json": ("hub.command/1", MarkRead),
    "user-event.v1.json": ("hub.user-event/1", USER_EVENT_ADAPTER),
    "dead-letter.v1.json": ("hub.dead-letter/1", DeadLetter),
    "message.json": ("Message", Message),
    "conversation.json": ("Conversation", Conversation),
    "ws-client-frame.json": ("WebSocket client frame", CLIENT_FRAME_ADAPTER),
    "ws-event-frame.json": ("WebSocket event frame", EventFrame),
    "ws-authenticated.json": ("WebSocket authenticated frame", Authenticated),
    "ws-pong.json": ("WebSocket pong frame", Pong),
}


def _json_schema(source: type[BaseModel] | TypeAdapter[Any]) -> dict[str, Any]:
    if isinstance(source, TypeAdapter):
        return source.json_schema(by_alias=True, mode="validation")
    return source.model_json_schema(by_alias=True, mode="validation")


def _dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _asyncapi() -> dict[str, Any]:
    def topic(name: str, summary: str, schema_file: str) -> dict[str, Any]:
        return {
            "address": f"hub.{name}",
            "description": summary + " Keyed by the hub user id (dead letters: as received).",
            "messages": {
                name: {
                    "contentType": "application/json",
                    "payload": {"$ref": f"./json/{schema_file}"},
                }
            },
        }

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "hub",
            "version": "1.0.0",
            "description": (
                "Kafka topics of the hub (UTF-8 JSON values, each with a `schema` field) "
                "and its WebSocket channel. Topic names carry the namespace `hub` "
                "(settable with HUB_TOPIC_NAMESPACE)."
            ),
        },
        "servers": {
            "kafka": {"host": "localhost:9092", "protocol": "kafka"},
            "gateway": {"host": "localhost:8000", "protocol": "ws", "pathname": "/ws"},
        },
        "channels": {
            "rawMessages": topic(
                "raw-messages", "One platform message as received.", "raw-message.v1.json"
            ),
            "commands": topic("commands", "User commands such as mark read.", "command.v1.json"),
            "userEvents": topic(
                "user-events", "Every event pushed to a user's clients.", "user-event.v1.json"
            ),
            "deadLetter": topic(
                "dead-letter", "Inputs that could not be processed.", "dead-letter.v1.json"
            ),
            "websocket": {
                "address": "/ws",
                "servers": [{"$ref": "#/servers/gateway"}],
                "description": (
                    "Authenticate within HUB_WS_AUTH_TIMEOUT seconds, then receive events."
                ),
                "messages": {
                    "clientFrame": {"payload": {"$ref": "./json/ws-client-frame.json"}},
                    "authenticated": {"payload": {"$ref": "./json/ws-authenticated.json"}},
                    "event": {"payload": {"$ref": "./json/ws-event-frame.json"}},
                    "pong": {"payload": {"$ref": "./json/ws-pong.json"}},
                },
            },
        },
        "operations": {
            "consumeRawMessages": {
                "action": "receive",
                "channel": {"$ref": "#/channels/rawMessages"},
            },
            "consumeCommands": {"action": "receive", "channel": {"$ref": "#/channels/commands"}},
            "consumeUserEvents": {
                "action": "receive",
                "channel": {"$ref": "#/channels/userEvents"},
            },
            "consumeDeadLetter": {
                "action": "receive",
                "channel": {"$ref": "#/channels/deadLetter"},
            },
            "sendClientFrame": {
                "action": "send",
                "channel": {"$ref": "#/channels/websocket"},
                "messages": [{"$ref": "#/channels/websocket/messages/clientFrame"}],
            },
            "receiveServerFrame": {
                "action": "receive",
                "channel": {"$ref": "#/channels/websocket"},
                "messages": [
                    {"$ref": "#/channels/websocket/messages/authenticated"},
                    {"$ref": "#/channels/websocket/messages/event"},
                    {"$ref": "#/channels/websocket/messages/pong"},
                ],
            },
        },
    }


def render() -> dict[str, str]:
    """Relative path (under `schemas/`) -> file content, for every published document."""
    files: dict[str, str] = {}
    for name, (title, source) in _SCHEMAS.items():
        doc = _json_schema(source)
        doc = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": ID_BASE + name,
            **doc,
            "title": title,
        }
        files[f"json/{name}"] = _dump(doc)
    files["asyncapi.json"] = _dump(_asyncapi())
    return files


def write(root: Path = ROOT) -> list[Path]:
    """Write every document under `root`; returns the paths written."""
    written = []
    for rel, content in render().items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


def stale(root: Path = ROOT) -> list[str]:
    """Relative paths whose committed content differs from what the models generate."""
    out = []
    for rel, content in render().items():
        path = root / rel
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            out.append(rel)
    return out
