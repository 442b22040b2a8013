"""OpenAPI-driven fuzzing of the REST API (schemathesis) against a real gateway: whatever
the paths, queries and bodies, no answer is a 5xx. Examples are bounded for CI."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

from hubcore.outbound import OutboundPolicy
from hubcore.settings import Settings
from tests.integration.gateway_kit import running_gateway, token

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    # The gateway under test runs in another thread, and aiokafka's fetcher shuffles its
    # partitions with the global `random` every fetch: Hypothesis sees the state move
    # while it draws and blames the strategies.
    pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies"),
]
EXAMPLES_PER_OPERATION = 40


def fuzz(base_url: str, headers: dict[str, str]) -> tuple[int, list[str]]:
    """Fuzz every operation (blocking: runs in a thread while the gateway serves); the
    number of requests sent and the failures."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    failures: list[str] = []
    sent = 0
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            failures.append(f"unusable operation in the OpenAPI document: {result}")
            continue
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case[Any]) -> None:
            nonlocal sent
            sent += 1
            response = case.call(base_url=base_url, headers=headers, timeout=15)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code}")
            case.validate_response(response, checks=[not_a_server_error])

        try:
            run()
        except Exception as exc:
            failures.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:300]}")
    return sent, failures


async def test_rest_api_answers_no_5xx_to_fuzzed_requests(
    settings_factory: Callable[..., Settings],
) -> None:
    s = settings_factory(rate_rest_per_user="1000000/s")
    async with running_gateway(s) as gw:
        # Fuzzed email hosts must never reach a real resolver: every name is private here.
        gw.app.runtime.accounts.policy = OutboundPolicy.from_settings(
            s, lambda host, port: ["10.0.0.1"]
        )
        headers = {"Authorization": f"Bearer {token(s, 'fuzzer')}"}
        sent, failures = await asyncio.to_thread(fuzz, gw.base_url, headers)
    assert failures == []
    assert sent >= 5 * EXAMPLES_PER_OPERATION // 2  # every operation was exercised
