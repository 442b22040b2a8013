"""Edge dedupe, HTML to text, and CLI credential parsing."""

from __future__ import annotations

import pytest

from connectors.credentials import as_bool, check_mode, parse_credentials
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


def test_email_credentials_are_typed() -> None:
    creds = parse_credentials(
        "email",
        ["host=imap.example.com", "username=a", "password=p=q", "ssl=no", "port=1143"],
    )
    assert creds == {
        "host": "imap.example.com",
        "username": "a",
        "password": "p=q",
        "ssl": False,
        "port": 1143,
        "mailbox": "INBOX",
    }
    assert parse_credentials("email", ["host=h", "username=a", "password=p"])["port"] == 993
    assert as_bool("TRUE") and not as_bool("off")


@pytest.mark.parametrize(
    ("platform", "pairs", "message"),
    [
        ("slack", ["signingSecret"], "number 1 is not of the form key=value"),
        ("slack", ["signingSecret=a", "signingSecret=b"], "given twice"),
        ("slack", [], "miss signingSecret"),
        ("email", ["host=h", "username=a", "password=p", "port=x"], "port must be a number"),
        ("email", ["host=h", "username=a", "password=p", "ssl=maybe"], "ssl must be true or false"),
    ],
)
def test_bad_credentials_say_what_is_wrong(platform: str, pairs: list[str], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_credentials(platform, pairs)


def test_modes() -> None:
    check_mode("telegram", "poll")
    check_mode("email", "poll")
    check_mode("slack", None)
    with pytest.raises(InvalidInput, match="polled over IMAP"):
        check_mode("email", "webhook")
    with pytest.raises(InvalidInput, match="only telegram and email poll"):
        check_mode("whatsapp", "poll")


def test_http_client_logs_keep_bot_tokens_out() -> None:
    import logging

    import connectors.pollers.telegram  # noqa: F401 - importing it quiets httpx

    # httpx logs request URLs at INFO; a Bot API URL holds the bot token.
    assert logging.getLogger("httpx").getEffectiveLevel() >= logging.WARNING
