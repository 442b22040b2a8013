"""The send metrics, read from the connectors' own /metrics while replies go out through
the platform API stand-ins (real Kafka, real store)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.connectors.sending_rig import Rig, outbound

pytestmark = pytest.mark.integration


async def scrape(rig: Rig) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every hub_connectors_send_* sample the process serves now."""
    answer = await rig.harness.http.get("/metrics")
    assert answer.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
        if s.name.startswith("hub_connectors_send_")
    }


def grew(
    before: dict[tuple[str, frozenset[tuple[str, str]]], float],
    after: dict[tuple[str, frozenset[tuple[str, str]]], float],
    name: str,
    **labels: str,
) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_a_rate_limited_call_then_a_sent_one(rig: Rig) -> None:
    rig.fake.retry_after = 1
    rig.fake.script = ["429"]
    account = await rig.account("telegram")
    before = await scrape(rig)
    await rig.produce(outbound(account))
    [result] = await rig.results()
    after = await scrape(rig)
    assert result.status == "sent"
    assert grew(before, after, "hub_connectors_send_attempts_total", platform="telegram") == 2
    failures = {
        dict(labels)["reason"]: value - before.get((name, labels), 0.0)
        for (name, labels), value in after.items()
        if name == "hub_connectors_send_failures_total" and dict(labels)["platform"] == "telegram"
    }
    assert {r: n for r, n in failures.items() if n} == {"rate_limited": 1}
    assert grew(before, after, "hub_connectors_send_seconds_count", platform="telegram") == 2
    # Two calls to a local stand-in: both well under a second.
    fast = grew(before, after, "hub_connectors_send_seconds_bucket", platform="telegram", le="1.0")
    assert fast == 2


async def test_failures_by_reason(rig: Rig) -> None:
    rig.fake.hang_seconds = 5  # beyond the rig's HUB_SEND_TIMEOUT of 2 s: no answer
    rig.fake.script = ["500", "hang"]
    slack = await rig.account("slack")
    whatsapp = await rig.account("whatsapp")
    await rig.set_credential(whatsapp, "accessToken", "bad")
    before = await scrape(rig)
    await rig.produce(outbound(slack), outbound(whatsapp))
    results = await rig.results(2)
    after = await scrape(rig)
    assert {r.status for r in results} == {"failed"}
    failed = "hub_connectors_send_failures_total"
    assert grew(before, after, failed, platform="slack", reason="server_error") == 1
    assert grew(before, after, failed, platform="slack", reason="no_answer") == 1
    assert grew(before, after, failed, platform="whatsapp", reason="rejected") == 1
    assert grew(before, after, "hub_connectors_send_attempts_total", platform="slack") == 2
    assert grew(before, after, "hub_connectors_send_attempts_total", platform="whatsapp") == 1
    # The unanswered call lasted the send timeout (2 s), not the stand-in's 5 s.
    slow = grew(before, after, "hub_connectors_send_seconds_bucket", platform="slack", le="2.5")
    assert slow == 2
    assert (
        grew(before, after, "hub_connectors_send_seconds_bucket", platform="slack", le="1.0") == 1
    )


async def test_a_reply_whose_account_is_gone_fails_without_a_call(rig: Rig) -> None:
    account = await rig.account("generic")
    assert await rig.harness.store.delete(account.user_id, account.id)
    before = await scrape(rig)
    await rig.produce(outbound(account))
    [result] = await rig.results()
    after = await scrape(rig)
    assert result.status == "failed"
    failed = "hub_connectors_send_failures_total"
    assert grew(before, after, failed, platform="generic", reason="account_gone") == 1
    assert grew(before, after, "hub_connectors_send_attempts_total", platform="generic") == 0
    assert rig.fake.of("generic") == []
