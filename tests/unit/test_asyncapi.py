"""The AsyncAPI document loads in AsyncAPI's own parser (`@asyncapi/parser`, run by Node.js)
with no errors, from any working directory and as a lone file."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from schemas import asyncapi, export

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
DOCUMENT = Path(export.__file__).resolve().parent / "asyncapi.json"


def _parse(path: Path, cwd: Path) -> dict[str, Any]:
    if shutil.which("node") is None or not (NODE_DIR / "node_modules" / "@asyncapi").is_dir():
        pytest.fail("AsyncAPI's parser is not installed: run scripts/node-packages.sh")
    done = subprocess.run(
        ["node", str(NODE_DIR / "parse_asyncapi.mjs"), str(path)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    assert (done.returncode == 0) == (not result["errors"]), done.stderr
    return result


def test_the_committed_document_parses_from_anywhere(tmp_path: Path) -> None:
    assert not export.stale(), "run `hub schemas export`"
    for cwd in (tmp_path, Path("/")):
        result = _parse(DOCUMENT, cwd)
        assert result == {
            "errors": [],
            "warnings": [],
            "channels": 9,
        }  # 7 topics, the WebSocket, webhooks
    alone = tmp_path / "asyncapi.json"
    shutil.copy(DOCUMENT, alone)  # no schemas/json beside it: the document is self-contained
    assert _parse(alone, tmp_path)["errors"] == []


def test_the_parser_rejects_openapi_discriminators(tmp_path: Path) -> None:
    doc = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    event = doc["components"]["schemas"]["user-event.v1"]
    assert event["discriminator"] == "type"
    event["discriminator"] = {"propertyName": "type"}  # what pydantic emits
    broken = tmp_path / "asyncapi.json"
    broken.write_text(json.dumps(doc), encoding="utf-8")
    errors = _parse(broken, tmp_path)["errors"]
    assert any("discriminator" in e["message"] for e in errors), errors


def test_every_topic_says_how_to_read_lz4() -> None:
    doc = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    for name in ("rawMessages", "commands", "userEvents", "deadLetter"):
        assert asyncapi.CONSUMING in doc["channels"][name]["description"]
    assert "lz4" in asyncapi.CONSUMING


def test_webhooks_are_the_event_frames_with_standard_webhooks_headers() -> None:
    doc = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    event = doc["channels"]["webhooks"]["messages"]["event"]
    assert event["payload"] == doc["channels"]["websocket"]["messages"]["event"]["payload"]
    assert event["headers"]["required"] == ["webhook-id", "webhook-timestamp", "webhook-signature"]
    assert doc["operations"]["sendWebhook"]["bindings"]["http"]["method"] == "POST"
