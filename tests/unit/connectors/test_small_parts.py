"""Edge dedupe, HTML to text, and CLI credential pairs."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from connectors.credentials import parse_pairs
from connectors.html_text import html_to_text
from connectors.publisher import RecentKeys
from hubcore.errors import InvalidInput


def test_recent_keys_forget_the_least_recently_seen() -> None:
    recent = RecentKeys(3)
    recent.add(["a", "b", "c"])
    assert "a" in recent  # refreshes a
    recent.add(["d"])
    assert "b" not in recent
    assert all(k in recent for k in "acd")
    assert len(recent) == 3
    off = RecentKeys(0)
    off.add(["a"])
    assert "a" not in off


def test_html_to_text() -> None:
    html = (
        "<html><head><title>T</title><style>p{color:red}</style></head><body>"
        "<h1>Hello&nbsp;there</h1><p>First   line<br>second &amp; last</p>"
        "<script>alert(1)</script><ul><li>one</li><li>two</li></ul></body></html>"
    )
    assert html_to_text(html) == "Hello there\n\nFirst line\nsecond & last\n\n- one\n\n- two"


@pytest.mark.parametrize("hostile", ["</" * 120_000, "<!--" * 60_000, "<a " * 80_000])
def test_html_that_the_parser_is_slow_on_is_cut_short(hostile: str) -> None:
    """Anyone can mail an account: 240 KB of `</` took seconds of one core (issue 22)."""
    started = time.process_time()
    text = html_to_text("<p>Hello</p>" + hostile)
    assert time.process_time() - started < 2.0  # the 0.5 s limit, with room for a slow CI
    assert text.startswith("Hello")


def test_html_past_the_size_cap_is_not_read() -> None:
    assert html_to_text("<p>a</p>" + "x" * 600_000 + "<p>tail</p>").endswith("x")
    assert html_to_text("<p>a</p><p>b</p>", max_chars=8) == "a"


def test_cli_credentials_are_key_value_pairs() -> None:
    pairs = ["host=imap.example.com", "password=p=q", "ssl=no"]
    assert parse_pairs(pairs) == {"host": "imap.example.com", "password": "p=q", "ssl": "no"}


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (["signingSecret"], "number 1 is not of the form key=value"),
        (["signingSecret=a", "signingSecret=b"], "given twice"),
    ],
)
def test_bad_pairs_say_what_is_wrong(pairs: list[str], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_pairs(pairs)


# A process logging at INFO as `hub connectors` does, that imports `module` and makes one
# request with a bot token in its URL (answered in-process: no network).
_REQUEST_WITH_A_TOKEN = """
import asyncio, importlib, sys
import httpx
from hubcore.logging import configure_logging

if sys.argv[1]:
    importlib.import_module(sys.argv[1])
configure_logging("info")
answer = httpx.MockTransport(lambda request: httpx.Response(200, json={"ok": True}))

async def main() -> None:
    async with httpx.AsyncClient(transport=answer) as client:
        await client.get("https://api.telegram.org/bot123:SECRET-TOKEN/getMe")

asyncio.run(main())
"""


def _logged_by_a_request(module: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _REQUEST_WITH_A_TOKEN, module],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stderr


@pytest.mark.parametrize(
    ("module", "leaks"),
    [("", True), ("connectors.pollers.telegram", False), ("connectors.outbound.http", False)],
    ids=["httpx-alone", "telegram-poller", "outbound-http"],
)
def test_http_client_logs_keep_bot_tokens_out(module: str, leaks: bool) -> None:
    # httpx logs request URLs at INFO; a Bot API URL holds the bot token. Alone, httpx
    # logs it: the check can see a leak.
    assert ("SECRET-TOKEN" in _logged_by_a_request(module)) is leaks
