"""Property tests of what faces the internet: every webhook's signature check and parser.

Whatever the bytes and headers: a forged or unsigned delivery is `BadSignature` (401,
no event), an authentic but malformed one `BadPayload` (400, dead letter), and nothing
else escapes (a 5xx) or stalls (hypothesis' deadline). Example counts are bounded so CI
stays fast.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.errors import BadPayload, BadSignature
from connectors.platforms import WEBHOOK_PLATFORMS, WebhookOutcome
from connectors.signatures import check_hub_signature, check_slack_signature
from hubcore.accounts import Account
from tests import platform_payloads as p
from tests.integration.connectors.harness import EXTERNAL_IDS, SECRETS
from tests.strategies import json_values as any_json

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
FUZZ = settings(
    max_examples=100,
    deadline=1000,  # ms per example: a parser that stalls fails
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

json_values = any_json(text_size=40, leaves=20, nan=False)


def account(platform: str) -> Account:
    return Account(
        id=f"acc_{platform}",
        user_id="alice",
        platform=platform,
        external_id=EXTERNAL_IDS[platform],
        mode="webhook",
        created_at=NOW,
        credentials=SECRETS[platform],
    )


VALID: dict[str, Callable[[], Any]] = {
    "telegram": lambda: p.telegram_update(1001, 7, text="hi"),
    "whatsapp": lambda: p.whatsapp_messages(
        EXTERNAL_IDS["whatsapp"], [("wamid.X", "1603059201", "hi")]
    ),
    "slack": lambda: p.slack_message(EXTERNAL_IDS["slack"], ts="1700000000.000001"),
    "generic": lambda: p.generic_message("m-1"),
}


def signed(platform: str, raw: bytes, secrets: dict[str, str]) -> dict[str, str]:
    """The headers a platform holding `secrets` sends with `raw`, names lowercased."""
    return {k.lower(): v for k, v in p.signed_headers(platform, raw, secrets).items()}


def mutate(value: Any, path: list[int], replacement: Any) -> Any:
    """`value` with the node that `path` walks to replaced."""
    if not path or not isinstance(value, dict | list) or not value:
        return replacement
    keys = list(value) if isinstance(value, dict) else list(range(len(value)))
    key = keys[path[0] % len(keys)]
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[key] = mutate(value[key], path[1:], replacement)
    return copy


def parse_or_bad_payload(platform: str, raw: bytes) -> WebhookOutcome | None:
    acc = account(platform)
    adapter = WEBHOOK_PLATFORMS[platform]
    adapter.verify(acc, signed(platform, raw, acc.credentials), raw, time.time())
    try:
        outcome = adapter.parse(acc, raw, NOW)
    except BadPayload:
        return None
    for record in outcome.records:
        assert record.user_id == acc.user_id and record.account_id == acc.id
    return outcome


header_names = st.sampled_from(
    [
        "x-telegram-bot-api-secret-token",
        "x-hub-signature-256",
        "x-slack-signature",
        "x-slack-request-timestamp",
        "content-type",
    ]
)
headers = st.dictionaries(header_names, st.text(max_size=80), max_size=5)


@pytest.mark.parametrize("platform", sorted(WEBHOOK_PLATFORMS))
@FUZZ
@given(body=st.binary(max_size=2048), sent=headers)
def test_unsigned_or_forged_deliveries_are_refused(
    platform: str, body: bytes, sent: dict[str, str]
) -> None:
    acc = account(platform)
    with pytest.raises(BadSignature):
        WEBHOOK_PLATFORMS[platform].verify(acc, sent, body, time.time())


@pytest.mark.parametrize("platform", sorted(WEBHOOK_PLATFORMS))
@FUZZ
@given(other=st.text(min_size=1, max_size=40))
def test_valid_bodies_signed_with_another_secret_are_refused(platform: str, other: str) -> None:
    acc = account(platform)
    raw = p.body(VALID[platform]())
    forged = {k: other + "-not-it" for k in acc.credentials}
    with pytest.raises(BadSignature):
        WEBHOOK_PLATFORMS[platform].verify(acc, signed(platform, raw, forged), raw, time.time())


@pytest.mark.parametrize("platform", sorted(WEBHOOK_PLATFORMS))
@FUZZ
@given(body=st.binary(max_size=2048))
def test_signed_garbage_is_bad_payload_or_parsed(platform: str, body: bytes) -> None:
    parse_or_bad_payload(platform, body)


@pytest.mark.parametrize("platform", sorted(WEBHOOK_PLATFORMS))
@FUZZ
@given(payload=json_values)
def test_signed_arbitrary_json_is_bad_payload_or_parsed(platform: str, payload: Any) -> None:
    parse_or_bad_payload(platform, json.dumps(payload).encode())


@pytest.mark.parametrize("platform", sorted(WEBHOOK_PLATFORMS))
@FUZZ
@given(path=st.lists(st.integers(min_value=0, max_value=50), max_size=8), value=json_values)
def test_signed_mutations_of_valid_payloads_are_bad_payload_or_parsed(
    platform: str, path: list[int], value: Any
) -> None:
    parse_or_bad_payload(platform, json.dumps(mutate(VALID[platform](), path, value)).encode())


@FUZZ
@given(
    secret=st.text(max_size=40),
    header=st.none() | st.text(max_size=120),
    body=st.binary(max_size=512),
)
def test_signature_checks_only_refuse(secret: str, header: str | None, body: bytes) -> None:
    with pytest.raises(BadSignature):
        check_hub_signature(secret + "x", header, body)
    with pytest.raises(BadSignature):
        check_slack_signature(secret + "x", header, header, body, time.time())
