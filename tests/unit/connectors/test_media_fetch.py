"""How the fetcher reads the platforms' answers about files (no network)."""

from __future__ import annotations

import httpx
import pytest

from connectors.media.fetch import status_failure


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
