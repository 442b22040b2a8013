"""Generates the published JSON Schema files and the AsyncAPI document from the models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from schemas import asyncapi
from schemas.attachments import MediaFetch
from schemas.commands import COMMAND_ADAPTER
from schemas.deadletter import DeadLetter
from schemas.events import USER_EVENT_ADAPTER
from schemas.messages import Conversation, Message, RawMessage
from schemas.outbound import OutboundMessage
from schemas.presence import PresenceRecord
from schemas.ws import CLIENT_FRAME_ADAPTER, Authenticated, EventFrame, Pong

ROOT = Path(__file__).parent
ID_BASE = "https://hub.example/schemas/"

# file name -> (title, model or adapter)
_SCHEMAS: dict[str, tuple[str, type[BaseModel] | TypeAdapter[Any]]] = {
    "raw-message.v1.json": ("hub.raw-message/1", RawMessage),
    "command.v1.json": ("hub.command/1", COMMAND_ADAPTER),
    "outbound.v1.json": ("hub.outbound/1", OutboundMessage),
    "user-event.v1.json": ("hub.user-event/1", USER_EVENT_ADAPTER),
    "dead-letter.v1.json": ("hub.dead-letter/1", DeadLetter),
    "presence.v1.json": ("hub.presence/1", PresenceRecord),
    "media-fetch.v1.json": ("hub.media-fetch/1", MediaFetch),
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


def _asyncapi(published: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from hubcore.kafka import Topics

    topics = Topics("hub")
    retention = {name.removeprefix("hub."): config for name, config in topics.configs().items()}
    return asyncapi.document(published, retention)


def render() -> dict[str, str]:
    """Relative path (under `schemas/`) -> file content, for every published document."""
    files: dict[str, str] = {}
    published: dict[str, dict[str, Any]] = {}
    for name, (title, source) in _SCHEMAS.items():
        doc = _json_schema(source)
        doc = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": ID_BASE + name,
            **doc,
            "title": title,
        }
        published[name] = doc
        files[f"json/{name}"] = _dump(doc)
    files["asyncapi.json"] = _dump(_asyncapi(published))
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
