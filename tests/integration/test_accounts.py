"""The shared account store on the real MongoDB-compatible server."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.accounts import AccountStore
from hubcore.errors import InvalidInput
from hubcore.mongo import Document
from hubcore.settings import Settings

pytestmark = pytest.mark.integration


async def test_create_get_list_delete(
    settings_factory: Callable[..., Settings], mongo_db: AsyncDatabase[Document], settings: Settings
) -> None:
    local_mail = settings_factory(
        mongo_db=settings.mongo_db,
        outbound_allowed_hosts=["127.0.0.1"],
        outbound_allow_plaintext=True,
    )
    store = AccountStore(mongo_db, local_mail)
    slack = await store.create("alice", "slack", "T1", {"signingSecret": "s3cret"})
    mail = await store.create(
        "alice",
        "email",
        "a@example.com",
        {
            "host": "127.0.0.1",
            "port": 143,
            "username": "a",
            "password": "p",
            "ssl": False,
            "mailbox": "INBOX",
        },
    )
    await store.create("bob", "generic", "x", {"secret": "b"})
    assert slack.id.startswith("acc_") and slack.mode == "webhook" and mail.mode == "poll"
    got = await store.get(slack.id)
    assert got == slack and got.credentials == {"signingSecret": "s3cret"}
    assert [a.id for a in await store.list("alice")] == [slack.id, mail.id]
    assert [a.id for a in await store.list(mode="poll")] == [mail.id]
    assert "credentials" not in slack.view().to_dict()
    assert "s3cret" not in repr(slack)
    assert not await store.delete("bob", slack.id)  # not bob's
    assert await store.delete("alice", slack.id)
    assert await store.get(slack.id) is None


@pytest.mark.parametrize(
    ("platform", "credentials", "message"),
    [
        ("slack", {}, "signingSecret: is required"),
        ("slack", {"signingSecret": "x", "token": "y"}, "has keys slack does not take"),
        ("fax", {}, "unknown platform"),
        ("generic", {"secret": ""}, "secret: must not be empty"),
    ],
)
async def test_bad_credentials_are_refused(
    settings: Settings,
    mongo_db: AsyncDatabase[Document],
    platform: str,
    credentials: dict[str, str],
    message: str,
) -> None:
    with pytest.raises(InvalidInput, match=message):
        await AccountStore(mongo_db, settings).create("alice", platform, "ext", credentials)
