"""How the fetcher reads the platforms' answers about files (no network)."""

from __future__ import annotations

import httpx
import pytest

from connectors.media.fetch import FetchFailed, locate, status_failure
from hubcore.settings import Settings
from tests.platform_payloads import account


@pytest.mark.parametrize(
    ("code", "reason", "retriable"),
    [
        (401, "forbidden", False),
        (403, "forbidden", False),
        (404, "not_found", False),
        (410, "not_found", False),
        (413, "too_large", False),
        (415, "unsupported", False),
        (408, "timeout", True),
        (429, "timeout", True),
        (500, "timeout", True),
        (503, "timeout", True),
    ],
)
def test_http_answers_become_reasons(code: int, reason: str, retriable: bool) -> None:
    failure = status_failure("download", httpx.Response(code, headers={"Retry-After": "7"}))
    assert (failure.reason, failure.retriable) == (reason, retriable)
    assert failure.retry_after == (7.0 if retriable else None)
    assert f"HTTP {code}" in str(failure)


async def test_the_slack_bot_token_goes_to_slack_hosts_only() -> None:
    settings = Settings(slack_api_base="https://slack.com/api")
    slack = account("slack", "T1", botToken="xoxb-1")
    async with httpx.AsyncClient() as http:
        ok = await locate(settings, http, slack, "https://files.slack.com/files-pri/T1-F1/a.png")
        assert ok.headers == {"Authorization": "Bearer xoxb-1"}
        with pytest.raises(FetchFailed) as refused:
            await locate(settings, http, slack, "https://evil.example/files-pri/a.png")
    assert refused.value.reason == "forbidden"
