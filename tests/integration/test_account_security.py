"""Accounts as an attacker sees them: SSRF through IMAP hosts, credentials at rest, keys.

No test here opens a connection to anything but loopback: every name is answered by a
resolver the test controls, and `socket.create_connection` fails the test when asked for
any other address.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from connectors.admin import add_account
from connectors.errors import PollError
from connectors.pollers.imap import ImapMailbox
from hubcore.accounts import SEALED, AccountStore
from hubcore.errors import InvalidField
from hubcore.mongo import ACCOUNTS, Document
from hubcore.outbound import AddressRefused, OutboundPolicy
from hubcore.sealing import UnreadableCredentials, new_key
from hubcore.settings import Settings, SettingsError
from tests.integration.gateway_kit import RunningGateway, running_gateway, token
from tests.local_servers import Dovecot, dovecot_server

pytestmark = pytest.mark.integration

PUBLIC = "93.184.215.14"
SECRETS = {"password": "imap-pa55word", "botToken": "123:tg-bot-token", "secret": "gen-s3cret"}


class Dns:
    """A resolver whose answers the test sets and changes."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = dict(table)

    def __call__(self, host: str, port: int) -> list[str]:
        if host not in self.table:
            raise OSError(f"{host} does not resolve")
        return self.table[host]


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any outbound connection to a non-loopback address fails the test instead."""
    real = socket.create_connection

    def guarded(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        if not ipaddress.ip_address(address[0]).is_loopback:
            raise AssertionError(f"the test tried to connect to {address}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)


def mail(host: str, **more: Any) -> dict[str, Any]:
    return {"host": host, "username": "alice", "password": SECRETS["password"], **more}


@pytest.fixture
async def gw(
    settings: Settings, mongo_db: AsyncDatabase[Document]
) -> AsyncIterator[RunningGateway]:
    async with running_gateway(settings) as running:
        yield running


async def post_account(gw: RunningGateway, body: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token(gw.app.settings, 'alice')}"}
    async with httpx.AsyncClient(base_url=gw.base_url, headers=headers, timeout=15) as client:
        return await client.post("/api/accounts", json=body)


def smtp(host: str, **more: Any) -> dict[str, Any]:
    return {**mail("imap.example.com"), "smtpHost": host, **more}


def hook(url: str) -> dict[str, Any]:
    return {"secret": "s", "callbackUrl": url}


@pytest.mark.parametrize(
    ("platform", "credentials", "field", "says"),
    [
        ("email", mail("127.0.0.1"), "credentials.host", "loopback"),
        ("email", mail("169.254.169.254", port=80), "credentials.host", "link-local"),
        ("email", mail("10.0.0.7"), "credentials.host", "private"),
        ("email", mail("intranet.corp.example"), "credentials.host", "private"),
        ("email", mail("imap.example.com", ssl=False), "credentials.ssl", "plaintext"),
        ("email", mail("imap.example.com", port="x"), "credentials.port", "must be a number"),
        ("email", {"host": "imap.example.com", "username": "a"}, "credentials.password", "req"),
        ("email", smtp("10.0.0.7"), "credentials.smtpHost", "private"),
        ("email", smtp("intranet.corp.example"), "credentials.smtpHost", "private"),
        ("email", smtp("smtp.example.com", smtpTls="no"), "credentials.smtpTls", "plaintext"),
        ("email", smtp("smtp.example.com\r\nRCPT TO:<x@y>"), "credentials.smtpHost", "control"),
        ("generic", hook("https://10.1.2.3/hook"), "credentials.callbackUrl", "private"),
        ("generic", hook("https://metadata.internal/"), "credentials.callbackUrl", "link-local"),
        ("generic", hook("http://smtp.example.com/"), "credentials.callbackUrl", "plaintext"),
    ],
)
async def test_rest_refuses_bad_and_internal_servers(
    gw: RunningGateway,
    mongo_db: AsyncDatabase[Document],
    platform: str,
    credentials: dict[str, Any],
    field: str,
    says: str,
) -> None:
    dns = Dns(
        {
            "intranet.corp.example": ["10.20.0.3"],
            "metadata.internal": ["169.254.169.254"],
            "imap.example.com": [PUBLIC],
            "smtp.example.com": [PUBLIC],
        }
    )
    gw.app.runtime.accounts.policy = OutboundPolicy.from_settings(gw.app.settings, dns)
    answer = await post_account(
        gw, {"platform": platform, "externalId": "a@example.com", "credentials": credentials}
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field and says in answer.json()["detail"]
    assert SECRETS["password"] not in answer.text
    assert await mongo_db[ACCOUNTS].count_documents({}) == 0


HOSTILE = [
    # (platform, externalId, credentials, field): each was answered 201 before issue 22.
    ("telegram", "1", {"botToken": "123:abc\nX-Evil: 1", "webhookSecret": "w"}, "botToken"),
    ("telegram", "1", {"botToken": "123:abc/../x?y#", "webhookSecret": "w"}, "botToken"),
    ("telegram", "1", {"botToken": "123:abc", "webhookSecret": "w\x1b[2J"}, "webhookSecret"),
    ("slack", "T1", {"signingSecret": "s", "botToken": "xoxb-\r\nX: 1"}, "botToken"),
    ("whatsapp", "1", {"appSecret": "a", "verifyToken": "v", "accessToken": "t\u00f6k"}, None),
    ("generic", "crm", {"secret": "s", "callbackUrl": "https://hooks.example.com/a\x07b"}, None),
    ("generic", "crm", {"secret": "s", "callbackUrl": "https://hooks.example.com:99999/"}, None),
    ("generic", "crm\n2", {"secret": "s"}, "externalId"),
    ("email", "a@example.com", mail("imap.example.com", mailbox="INBOX\r\nA1 LOGOUT"), None),
    ("email", "a@example.com", mail("imap.example.com", password="p\u2028w"), "password"),
]


@pytest.mark.parametrize(("platform", "external_id", "credentials", "field"), HOSTILE)
async def test_rest_refuses_control_characters_and_unusable_urls(
    gw: RunningGateway,
    mongo_db: AsyncDatabase[Document],
    platform: str,
    external_id: str,
    credentials: dict[str, Any],
    field: str | None,
) -> None:
    dns = Dns({"imap.example.com": [PUBLIC], "hooks.example.com": [PUBLIC]})
    gw.app.runtime.accounts.policy = OutboundPolicy.from_settings(gw.app.settings, dns)
    body = {"platform": platform, "externalId": external_id, "credentials": credentials}
    answer = await post_account(gw, body)
    assert answer.status_code == 422, answer.text
    named = answer.json()["field"]
    assert named == (field if field == "externalId" else f"credentials.{field}") or (
        field is None and named.startswith("credentials.")
    ), named
    for value in credentials.values():
        if len(str(value)) > 4:
            assert str(value) not in answer.text  # a secret pasted wrong is never echoed
    assert await mongo_db[ACCOUNTS].count_documents({}) == 0


async def test_rest_accepts_a_public_mail_server_and_names_bad_modes(gw: RunningGateway) -> None:
    dns = Dns({"imap.example.com": [PUBLIC]})
    gw.app.runtime.accounts.policy = OutboundPolicy.from_settings(gw.app.settings, dns)
    body: dict[str, Any] = {
        "platform": "email",
        "externalId": "a@example.com",
        "credentials": mail("imap.example.com"),
    }
    created = await post_account(gw, body)
    assert created.status_code == 201 and created.json()["mode"] == "poll", created.text
    wrong = await post_account(gw, {**body, "mode": "webhook"})
    assert wrong.status_code == 422 and wrong.json()["field"] == "mode"


async def test_store_holds_no_credential_in_clear(
    settings: Settings, mongo_db: AsyncDatabase[Document]
) -> None:
    store = AccountStore(mongo_db, settings, resolver=Dns({"imap.example.com": [PUBLIC]}))
    made = [
        await store.create("alice", "email", "a@example.com", mail("imap.example.com")),
        await store.create(
            "alice", "telegram", "1", {"botToken": SECRETS["botToken"], "webhookSecret": "w-1"}
        ),
        await store.create("alice", "generic", "crm", {"secret": SECRETS["secret"]}),
    ]
    raw = [doc async for doc in mongo_db[ACCOUNTS].find({})]
    assert len(raw) == 3
    for doc in raw:
        assert "credentials" not in doc and isinstance(doc[SEALED], str)
        for secret in [*SECRETS.values(), "w-1", "alice@"]:
            assert secret not in str(doc), (secret, doc)
    assert [await store.get(a.id) for a in made] == made  # and they open again


async def test_dns_change_after_creation_is_refused_at_connect(
    settings: Settings, mongo_db: AsyncDatabase[Document]
) -> None:
    dns = Dns({"mail.example.com": [PUBLIC]})
    store = AccountStore(mongo_db, settings, resolver=dns)
    account = await store.create("alice", "email", "a@example.com", mail("mail.example.com"))
    dns.table["mail.example.com"] = ["10.0.0.9"]  # rebinding to an internal address
    policy = OutboundPolicy.from_settings(settings, dns)
    mailbox = ImapMailbox.from_credentials(account.credentials, 5.0, policy)
    with pytest.raises(PollError, match=r"refused.*private address"):
        mailbox.open()
    dns.table["mail.example.com"] = ["169.254.169.254"]
    with pytest.raises(PollError, match=r"refused.*link-local"):
        mailbox.open()


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    with dovecot_server() as server:
        yield server


async def test_connects_to_the_checked_address(
    settings_factory: Callable[..., Settings], dovecot: Dovecot
) -> None:
    """A name the system resolver cannot answer reaches the local Dovecot: the connection
    went to the address the policy checked, not to a second lookup."""
    dns = Dns({"mail.hub-tests.invalid": ["127.0.0.1"]})
    s = settings_factory(
        outbound_allowed_hosts=["mail.hub-tests.invalid"], outbound_allow_plaintext=True
    )
    credentials = {
        **mail("mail.hub-tests.invalid", ssl=False, port=dovecot.port),
        "username": dovecot.username,
        "password": dovecot.password,
        "mailbox": "INBOX",
    }
    mailbox = ImapMailbox.from_credentials(credentials, 5.0, OutboundPolicy.from_settings(s, dns))
    try:
        assert mailbox.open() > 0  # UIDVALIDITY
    finally:
        mailbox.close()
    with pytest.raises(PollError, match="plaintext"):
        ImapMailbox.from_credentials(
            credentials,
            5.0,
            OutboundPolicy.from_settings(
                settings_factory(outbound_allowed_hosts=["mail.hub-tests.invalid"]), dns
            ),
        ).open()


async def test_cli_path_checks_like_rest(settings: Settings) -> None:
    with pytest.raises(InvalidField) as info:
        await add_account(
            settings,
            user_id="alice",
            platform="email",
            external_id="a@example.com",
            credentials=["host=169.254.169.254", "username=a", "password=p"],
            mode=None,
        )
    assert isinstance(info.value, AddressRefused) and info.value.field == "credentials.host"
    with pytest.raises(InvalidField, match=r"credentials\.port"):
        await add_account(
            settings,
            user_id="alice",
            platform="email",
            external_id="a@example.com",
            credentials=["host=imap.example.com", "username=a", "password=p", "port=0"],
            mode=None,
        )


async def test_key_rotation(
    settings_factory: Callable[..., Settings], settings: Settings, mongo_db: AsyncDatabase[Document]
) -> None:
    old, new = settings.require_credentials_key().get_secret_value(), new_key()
    account = await AccountStore(mongo_db, settings).create(
        "alice", "generic", "crm", {"secret": "s"}
    )
    await mongo_db[ACCOUNTS].insert_one(  # an account stored before sealing existed
        {
            "_id": "acc_legacy",
            "userId": "bob",
            "platform": "generic",
            "externalId": "x",
            "mode": "webhook",
            "createdAt": account.created_at,
            "credentials": {"secret": "old-plain-s3cret"},
        }
    )
    both = AccountStore(
        mongo_db, settings_factory(mongo_db=settings.mongo_db, credentials_key=f"{new},{old}")
    )
    assert (await both.get(account.id)) == account
    assert await both.rotate_keys() == 2
    only_new = AccountStore(
        mongo_db, settings_factory(mongo_db=settings.mongo_db, credentials_key=new)
    )
    assert (await only_new.get(account.id)) == account
    legacy = await only_new.get("acc_legacy")
    assert legacy is not None and legacy.credentials == {"secret": "old-plain-s3cret"}
    assert "old-plain-s3cret" not in str(await mongo_db[ACCOUNTS].find_one({"_id": "acc_legacy"}))
    with pytest.raises(UnreadableCredentials):
        await AccountStore(mongo_db, settings).get(account.id)


def test_missing_or_bad_key_is_a_start_up_error(settings_factory: Callable[..., Settings]) -> None:
    from connectors.app import create_app
    from gateway.app import create_app as create_gateway

    for key in (None, "not-a-fernet-key"):
        s = settings_factory(credentials_key=key)
        for build in (create_app, create_gateway):
            with pytest.raises(SettingsError, match="HUB_CREDENTIALS_KEY") as info:
                build(s)
            assert "not-a-fernet-key" not in str(info.value)


async def test_no_credential_in_answers_logs_or_metrics(
    gw: RunningGateway, capfd: pytest.CaptureFixture[str]
) -> None:
    secret = "Sup3r-s3cret-" + "q" * 20
    gw.app.runtime.accounts.policy = OutboundPolicy.from_settings(
        gw.app.settings, Dns({"imap.example.com": [PUBLIC]})
    )
    answers = [
        await post_account(
            gw, {"platform": "generic", "externalId": "crm", "credentials": {"secret": secret}}
        ),
        await post_account(  # refused: the secret sits beside a wrong field
            gw,
            {
                "platform": "email",
                "externalId": "a@example.com",
                "credentials": mail("imap.example.com", password=secret, port=secret),
            },
        ),
        await post_account(
            gw, {"platform": "generic", "externalId": "crm", "credentials": {secret: secret}}
        ),
    ]
    assert [a.status_code for a in answers] == [201, 422, 422]
    headers = {"Authorization": f"Bearer {token(gw.app.settings, 'alice')}"}
    async with httpx.AsyncClient(base_url=gw.base_url, headers=headers, timeout=15) as client:
        listed = await client.get("/api/accounts")
        metrics = await client.get("/metrics")
    out, err = capfd.readouterr()
    assert "http_request" in out + err  # the request log lines were captured
    for text in (*(a.text for a in answers), listed.text, metrics.text, out, err):
        assert secret[:12] not in text
