"""The webhook endpoints' REST API on a real gateway: create (secret once), list, get,
patch, rotate, delete, the outbound policy for URLs, the per-user cap, other users' ids."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from hubcore.settings import Settings
from tests.integration.gateway_kit import running_gateway, token

pytestmark = pytest.mark.integration


def _client(base: str, settings: Settings, user: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {token(settings, user)}"}, timeout=30
    )


async def test_endpoint_lifecycle(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory(
        outbound_allowed_hosts=["127.0.0.1"],
        outbound_allow_plaintext=True,
        webhooks_max_per_user=2,
        webhook_secret_grace=3600,
    )
    async with (
        running_gateway(settings) as gw,
        _client(gw.base_url, settings, "alice") as alice,
        _client(gw.base_url, settings, "bob") as bob,
    ):
        url = "http://127.0.0.1:9/hook"
        created = await alice.post(
            "/api/webhooks", json={"url": url, "events": ["new_message"], "description": "crm"}
        )
        assert created.status_code == 201, created.text
        hook = created.json()
        assert hook["secret"].startswith("whsec_") and len(hook["secret"]) > 40
        assert hook["events"] == ["new_message"] and hook["paused"] is False
        listed = (await alice.get("/api/webhooks")).json()["webhooks"]
        assert [h["id"] for h in listed] == [hook["id"]]
        assert "secret" not in listed[0] and "signingSecrets" not in listed[0]

        # Another user's id does not exist for them, whatever the verb.
        for method, path in [
            ("GET", ""),
            ("PATCH", ""),
            ("DELETE", ""),
            ("POST", "/rotate-secret"),
            ("GET", "/deliveries"),
            ("POST", "/test"),
        ]:
            json = {"paused": True} if method == "PATCH" else None
            answer = await bob.request(method, f"/api/webhooks/{hook['id']}{path}", json=json)
            assert answer.status_code == 404, (method, path, answer.text)

        patched = await alice.patch(
            f"/api/webhooks/{hook['id']}",
            json={"paused": True, "events": ["message_deleted", "new_message", "new_message"]},
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["paused"] is True
        assert patched.json()["events"] == ["message_deleted", "new_message"]
        bad = await alice.patch(f"/api/webhooks/{hook['id']}", json={"events": ["presence"]})
        assert bad.status_code == 422

        rotated = (await alice.post(f"/api/webhooks/{hook['id']}/rotate-secret")).json()
        assert rotated["secret"].startswith("whsec_") and rotated["secret"] != hook["secret"]
        stored = await gw.app.runtime.webhooks.get(hook["id"])
        assert stored is not None
        # Both sign during the grace period, the new one first.
        assert stored.signing_secrets == [rotated["secret"], hook["secret"]]
        raw = await gw.app.runtime.webhooks.webhooks.find_one({"_id": hook["id"]})
        assert raw is not None and hook["secret"] not in str(raw)  # sealed at rest

        second = await alice.post("/api/webhooks", json={"url": url, "events": ["error"]})
        assert second.status_code == 201
        third = await alice.post("/api/webhooks", json={"url": url, "events": ["error"]})
        assert third.status_code == 409 and third.json()["code"] == "too_many_webhooks"

        assert (await alice.delete(f"/api/webhooks/{hook['id']}")).status_code == 204
        assert (await alice.get(f"/api/webhooks/{hook['id']}")).status_code == 404


@pytest.mark.parametrize(
    ("url", "allowed", "plaintext", "problem"),
    [
        ("https://127.0.0.1/hook", [], False, "loopback"),
        ("https://10.1.2.3/hook", [], False, "private"),
        ("https://[::1]:8443/hook", [], False, "loopback"),
        ("http://127.0.0.1/hook", ["127.0.0.1"], False, "plaintext"),
        ("ftp://example.com/x", [], False, "pattern"),
        ("https://[::1/x", [], False, "is not a URL"),
        ("https://user:pw@example.com/x", [], False, "must not carry credentials"),
    ],
)
async def test_refused_urls(
    settings_factory: Callable[..., Settings],
    url: str,
    allowed: list[str],
    plaintext: bool,
    problem: str,
) -> None:
    settings = settings_factory(outbound_allowed_hosts=allowed, outbound_allow_plaintext=plaintext)
    async with running_gateway(settings) as gw, _client(gw.base_url, settings, "alice") as alice:
        answer = await alice.post("/api/webhooks", json={"url": url, "events": ["new_message"]})
        assert answer.status_code == 422, answer.text
        assert problem in answer.text
        assert (await alice.get("/api/webhooks")).json()["webhooks"] == []
