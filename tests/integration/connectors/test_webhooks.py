"""Every webhook platform against the real broker and store: the contract's status table."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from prometheus_client import REGISTRY

from connectors.metrics import IGNORED
from hubcore.accounts import Account
from schemas import EditMessage, StatusReport, message_id
from tests import platform_payloads as p
from tests.integration.connectors.harness import (
    SECRETS,
    Harness,
    commands,
    dead_letters,
    eventually,
    raw_messages,
)

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Case:
    """One platform's valid delivery, its signature, and a malformed (but signed) body."""

    payload: Callable[[Account], bytes]
    sign: Callable[[str, bytes], dict[str, str]]  # (secret, body) -> headers
    secret_key: str
    ids: Callable[[Account], list[str]]
    malformed: bytes
    problem: str


CASES = {
    "telegram": Case(
        payload=lambda a: p.body(p.telegram_update(1001, 7)),
        sign=lambda secret, raw: p.telegram_headers(secret),
        secret_key="webhookSecret",
        ids=lambda a: [message_id("telegram", a.id, "123456789", "7")],
        malformed=b'{"update_id": 5, "message": {"message_id": 1, "date": 1}}',
        problem="message.chat is missing",
    ),
    "whatsapp": Case(
        payload=lambda a: p.body(
            p.whatsapp_messages(
                a.external_id,
                [("wamid.ID1", "1603059201", "Hello"), ("wamid.ID2", "1603059202", "again")],
            )
        ),
        sign=p.hub_signature,
        secret_key="appSecret",
        ids=lambda a: [
            message_id("whatsapp", a.id, "16315551234", "wamid.ID1"),
            message_id("whatsapp", a.id, "16315551234", "wamid.ID2"),
        ],
        malformed=b'{"object": "whatsapp_business_account"}',
        problem="entry is missing",
    ),
    "slack": Case(
        payload=lambda a: p.body(p.slack_message(a.external_id)),
        sign=lambda secret, raw: p.slack_headers(secret, raw),
        secret_key="signingSecret",
        ids=lambda a: [message_id("slack", a.id, "C123ABC456", "1355517523.000005")],
        malformed=b'{"type": "event_callback", "team_id": "T123ABC456"}',
        problem="event is missing",
    ),
    "generic": Case(
        payload=lambda a: p.body(p.generic_message("m-1")),
        sign=p.hub_signature,
        secret_key="secret",
        ids=lambda a: [message_id("generic", a.id, "support-42", "m-1")],
        malformed=b'{"conversationId": "c", "sender": {"id": "x"}}',
        problem="messageId: Field required",
    ),
}
PLATFORMS = list(CASES)


@pytest.fixture(params=PLATFORMS)
async def platform(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    yield request.param


async def test_valid_delivery_lands_keyed_by_user_with_deterministic_ids(
    connectors: Harness, platform: str
) -> None:
    case = CASES[platform]
    account = await connectors.account(platform, user="alice")
    raw = case.payload(account)
    headers = case.sign(SECRETS[platform][case.secret_key], raw)

    first = await connectors.post(platform, account.id, raw, headers)
    assert first.status_code == 200, first.text
    assert first.json()["messageIds"] == case.ids(account)
    # The same delivery again (a platform retry): 200, the same ids, not produced twice.
    again = await connectors.post(
        platform, account.id, raw, case.sign(SECRETS[platform][case.secret_key], raw)
    )
    assert again.status_code == 200
    assert again.json()["messageIds"] == case.ids(account)
    assert again.json()["duplicates"] == len(case.ids(account))

    produced = await raw_messages(connectors.settings)
    assert [record.id for _, record in produced] == case.ids(account)
    for key, record in produced:
        assert key == "alice" == record.user_id
        assert (record.platform, record.account_id) == (platform, account.id)
        assert record.raw, "the platform payload is kept"
    assert await dead_letters(connectors.settings) == []


async def test_wrong_or_missing_signature_is_401_and_produces_nothing(
    connectors: Harness, platform: str
) -> None:
    case = CASES[platform]
    account = await connectors.account(platform)
    raw = case.payload(account)
    forged = await connectors.post(platform, account.id, raw, case.sign("not-the-secret", raw))
    assert forged.status_code == 401, forged.text
    unsigned = await connectors.post(platform, account.id, raw, {})
    assert unsigned.status_code == 401
    assert "missing" in unsigned.json()["message"]
    assert await raw_messages(connectors.settings) == []
    assert await dead_letters(connectors.settings) == []
    # Signed, then altered in transit: the signature covers the raw bytes. Telegram's is
    # a shared token, not a body signature: nothing to tamper, the delivery is taken.
    tampered = await connectors.post(
        platform,
        account.id,
        raw.replace(b"1", b"2", 1),
        case.sign(SECRETS[platform][case.secret_key], raw),
    )
    taken = platform == "telegram"
    assert tampered.status_code == (200 if taken else 401)
    produced = [record.id for _, record in await raw_messages(connectors.settings)]
    assert produced == (tampered.json()["messageIds"] if taken else [])
    assert await dead_letters(connectors.settings) == []


async def test_malformed_body_is_400_naming_the_problem_and_dead_lettered(
    connectors: Harness, platform: str
) -> None:
    case = CASES[platform]
    account = await connectors.account(platform)
    headers = case.sign(SECRETS[platform][case.secret_key], case.malformed)
    response = await connectors.post(platform, account.id, case.malformed, headers)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_payload"
    assert case.problem in response.json()["message"]
    not_json = b"<xml/>"
    response = await connectors.post(
        platform, account.id, not_json, case.sign(SECRETS[platform][case.secret_key], not_json)
    )
    assert response.status_code == 400 and "JSON" in response.json()["message"]

    letters = await dead_letters(connectors.settings)
    assert [letter.payload.encode() for _, letter in letters] == [case.malformed, not_json]
    for key, letter in letters:
        assert key == account.id
        assert (letter.source.platform, letter.source.account_id) == (platform, account.id)
        assert letter.error_type == "BadPayload" and letter.reason
    assert await raw_messages(connectors.settings) == []


async def test_unknown_accounts_and_platforms_are_404(connectors: Harness) -> None:
    slack = await connectors.account("slack")
    raw = p.body(p.slack_message(slack.external_id))
    headers = p.slack_headers(SECRETS["slack"]["signingSecret"], raw)
    assert (
        await connectors.post("slack", "acc_000000000000000000000000", raw, headers)
    ).status_code == 404
    assert (await connectors.post("generic", slack.id, raw, headers)).status_code == 404
    assert (await connectors.post("fax", slack.id, raw, headers)).status_code == 404
    assert (await connectors.post("email", slack.id, raw, headers)).status_code == 404
    # Deleting an account takes effect within the lookup cache's TTL (2 s).
    assert (await connectors.post("slack", slack.id, raw, headers)).status_code == 200
    assert await connectors.store.delete("alice", slack.id)

    async def gone() -> bool:
        fresh = p.slack_headers(SECRETS["slack"]["signingSecret"], raw)
        return (await connectors.post("slack", slack.id, raw, fresh)).status_code == 404

    await eventually(gone, timeout=10, what="a deleted account answers 404")


async def test_bodies_over_the_limit_are_413(connectors: Harness) -> None:
    account = await connectors.account("generic")
    limit = connectors.settings.max_body_bytes
    big = b"x" * (limit + 1)
    declared = await connectors.post("generic", account.id, big, p.hub_signature("secret", big))
    assert declared.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for _ in range(limit // 65536 + 1):
            yield b"y" * 65536

    streamed = await connectors.http.post(f"/webhooks/generic/{account.id}", content=chunks())
    assert streamed.status_code == 413
    assert "limit" in streamed.json()["message"]
    assert await raw_messages(connectors.settings) == []


async def test_slack_window_challenge_bots_and_retries(connectors: Harness) -> None:
    secret = SECRETS["slack"]["signingSecret"]
    account = await connectors.account("slack")
    raw = p.body(p.slack_message(account.external_id, ts="1700000000.000100", event_id="Ev1"))
    stale = p.slack_headers(secret, raw, timestamp=int(time.time()) - 301)
    response = await connectors.post("slack", account.id, raw, stale)
    assert response.status_code == 401 and "5 minutes" in response.json()["message"]
    future = p.slack_headers(secret, raw, timestamp=int(time.time()) + 301)
    assert (await connectors.post("slack", account.id, raw, future)).status_code == 401

    challenge = p.body(p.slack_url_verification("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmd"))
    answer = await connectors.post(
        "slack", account.id, challenge, p.slack_headers(secret, challenge)
    )
    assert answer.status_code == 200 and answer.text == "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmd"
    forged = await connectors.post("slack", account.id, challenge, p.slack_headers("x", challenge))
    assert forged.status_code == 401

    bot = p.body(p.slack_message(account.external_id, ts="1700000001.000100", bot_id="B1"))
    ignored = await connectors.post("slack", account.id, bot, p.slack_headers(secret, bot))
    assert ignored.status_code == 200 and ignored.json() == {
        "status": "ok",
        "messageIds": [],
        "duplicates": 0,
        "ignored": 1,
        "changes": 0,
    }

    first = await connectors.post("slack", account.id, raw, p.slack_headers(secret, raw))
    retry = await connectors.post(
        "slack", account.id, raw, {**p.slack_headers(secret, raw), "X-Slack-Retry-Num": "1"}
    )
    assert first.status_code == retry.status_code == 200
    assert first.json()["messageIds"] == retry.json()["messageIds"]
    assert len({r.id for _, r in await raw_messages(connectors.settings)}) == 1


async def test_whatsapp_verification_handshake_and_status_callbacks(connectors: Harness) -> None:
    account = await connectors.account("whatsapp")
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": "wa-verify",
        "hub.challenge": "1158201444",
    }
    url = f"/webhooks/whatsapp/{account.id}"
    ok = await connectors.http.get(url, params=params)
    assert ok.status_code == 200 and ok.text == "1158201444"
    assert ok.headers["content-type"].startswith("text/plain")
    wrong = await connectors.http.get(url, params={**params, "hub.verify_token": "nope"})
    assert wrong.status_code == 401
    assert (await connectors.http.get(url, params={**params, "hub.mode": "x"})).status_code == 400
    missing = await connectors.http.get("/webhooks/whatsapp/acc_nothere", params=params)
    assert missing.status_code == 404

    statuses = p.body(p.whatsapp_status(account.external_id))
    answer = await connectors.post(
        "whatsapp", account.id, statuses, p.hub_signature("wa-app-secret", statuses)
    )
    assert answer.status_code == 200 and answer.json()["changes"] == 1
    assert await raw_messages(connectors.settings) == []
    [(key, report)] = await commands(connectors.settings)
    assert key == account.user_id
    assert isinstance(report, StatusReport) and report.status == "delivered"


async def test_telegram_edit_is_the_same_message(connectors: Harness) -> None:
    account = await connectors.account("telegram")
    headers = p.telegram_headers("tg-secret_1")
    original = p.body(p.telegram_update(1, 42, text="typo"))
    edited = p.body(p.telegram_update(2, 42, text="fixed", kind="edited_message"))
    first = await connectors.post("telegram", account.id, original, headers)
    second = await connectors.post("telegram", account.id, edited, headers)
    assert first.json()["messageIds"] == second.json()["messageIds"]
    texts = [(r.id, r.text) for _, r in await raw_messages(connectors.settings)]
    assert texts == [
        (first.json()["messageIds"][0], "typo"),
        (first.json()["messageIds"][0], "fixed"),
    ]
    [(_, edit)] = await commands(connectors.settings)
    assert isinstance(edit, EditMessage)
    assert (edit.message_id, edit.text) == (first.json()["messageIds"][0], "fixed")


def _ignored_series() -> set[tuple[str, str]]:
    return {
        (s.labels["platform"], s.labels["reason"])
        for metric in IGNORED.collect()
        for s in metric.samples
    }


async def test_signed_bodies_add_no_metric_series_of_their_own(connectors: Harness) -> None:
    """Whoever holds an account's secret signs what they like: 20,000 distinct WhatsApp
    `changes[].field` values and Slack event types count as `other`, not as new series."""
    wa = await connectors.account("whatsapp")
    slack = await connectors.account("slack")
    before = _ignored_series()
    entry = {"id": "1", "changes": [{"field": f"f{i:05d}", "value": {}} for i in range(20_000)]}
    raw = p.body({"object": "whatsapp_business_account", "entry": [entry]})
    answer = await connectors.post("whatsapp", wa.id, raw, p.hub_signature("wa-app-secret", raw))
    assert answer.status_code == 200, answer.text
    for i in range(50):
        event = {"type": "event_callback", "team_id": slack.external_id, "event": {"type": f"x{i}"}}
        raw = p.body(event)
        headers = p.slack_headers(SECRETS["slack"]["signingSecret"], raw)
        assert (await connectors.post("slack", slack.id, raw, headers)).status_code == 200
    added = _ignored_series() - before
    assert {reason for _, reason in added} <= {"other"}, sorted(added)[:5]
    counted = REGISTRY.get_sample_value(
        "hub_connectors_ignored_total", {"platform": "whatsapp", "reason": "other"}
    )
    assert counted is not None and counted >= 20_000
