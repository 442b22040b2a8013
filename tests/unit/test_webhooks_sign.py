"""The webhook signature against the reference implementation (`standardwebhooks`), ids,
secrets and the default retry schedule."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from hubcore.settings import Settings
from hubcore.webhooks import SECRET_PREFIX, delivery_id, new_secret, retry_schedule, sign


def test_secrets_have_the_standard_form() -> None:
    secret = new_secret()
    assert secret.startswith(SECRET_PREFIX)
    assert len(base64.b64decode(secret.removeprefix(SECRET_PREFIX))) == 32
    assert new_secret() != secret


def test_the_library_verifies_each_of_two_signatures_and_refuses_a_third_secret() -> None:
    new, old, other = new_secret(), new_secret(), new_secret()
    body = b'{"type":"new_message","id":"evt_1"}'
    now = int(time.time())
    header = sign([new, old], "msg_1", now, body)
    assert header.count("v1,") == 2 and " " in header
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(now), "webhook-signature": header}
    for secret in (new, old):
        assert Verifier(secret).verify(body, headers) == {"type": "new_message", "id": "evt_1"}
    with pytest.raises(WebhookVerificationError):
        Verifier(other).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Verifier(new).verify(body + b" ", headers)
    assert sign([new], "msg_1", now, body) == Verifier(new).sign(
        "msg_1", datetime.fromtimestamp(now, tz=UTC), body
    )


def test_delivery_ids_are_stable_and_distinct() -> None:
    first = delivery_id("hub.user-events", 3, 1042, "wh_a")
    assert first == delivery_id("hub.user-events", 3, 1042, "wh_a")
    others = {
        delivery_id("hub.user-events", 3, 1043, "wh_a"),
        delivery_id("hub.user-events", 2, 1042, "wh_a"),
        delivery_id("hub.user-events", 3, 1042, "wh_b"),
        delivery_id("other.user-events", 3, 1042, "wh_a"),
    }
    assert first not in others and len(others) == 4
    assert first.startswith("msg_") and len(first) == 36


def test_the_default_schedule_spans_about_a_day() -> None:
    settings = Settings(_env_file=None)
    backoff = retry_schedule(settings)
    # Jitter draws each wait from half to all of its base.
    bases = [
        min(backoff.first * backoff.factor**n, backoff.max_delay)
        for n in range(backoff.attempts - 1)
    ]
    hours = sum(bases) / 3600
    assert hours / 2 > 12 and hours < 27, hours
    assert all(0.5 * b <= backoff.delay(n + 1) <= b for n, b in enumerate(bases))
    assert backoff.delay(3, retry_after=7.0) == 7.0
    assert backoff.delay(3, retry_after=10 * 86_400) == settings.webhook_backoff_max
