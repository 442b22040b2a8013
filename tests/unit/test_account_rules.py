"""The one account check behind REST, CLI and demo: per platform keys, types and modes."""

from __future__ import annotations

from typing import Any

import pytest

from hubcore.account_rules import as_bool, check_account
from hubcore.errors import InvalidField

MAIL = {"host": "imap.example.com", "username": "a", "password": "p=q"}


def test_email_credentials_are_typed_and_defaulted() -> None:
    clean, mode = check_account(
        "email", "a@example.com", {**MAIL, "ssl": "no", "port": "1143"}, None
    )
    assert clean == {**MAIL, "ssl": False, "port": 1143, "mailbox": "INBOX"}
    assert mode == "poll"
    assert check_account("email", "a@example.com", MAIL, None)[0]["port"] == 993
    assert as_bool("TRUE") and not as_bool("off")


def test_default_and_allowed_modes() -> None:
    assert (
        check_account("telegram", "1", {"botToken": "b", "webhookSecret": "w"}, "poll")[1] == "poll"
    )
    assert check_account("slack", "T", {"signingSecret": "s"}, None)[1] == "webhook"


@pytest.mark.parametrize(
    ("platform", "credentials", "mode", "field", "message"),
    [
        ("fax", {}, None, "platform", "unknown platform"),
        ("slack", {}, None, "credentials.signingSecret", "is required for slack"),
        ("slack", {"signingSecret": "x", "token": "y"}, None, "credentials", "slack does not"),
        ("generic", {"secret": ""}, None, "credentials.secret", "must not be empty"),
        ("generic", {"secret": 5}, None, "credentials.secret", "must be a string"),
        ("generic", {"secret": ["a"]}, None, "credentials.secret", "must be a string"),
        ("email", {**MAIL, "port": "x"}, None, "credentials.port", "must be a number"),
        ("email", {**MAIL, "port": 70000}, None, "credentials.port", "between 1 and 65535"),
        ("email", {**MAIL, "port": True}, None, "credentials.port", "must be a number"),
        ("email", {**MAIL, "ssl": "maybe"}, None, "credentials.ssl", "true or false"),
        ("email", {**MAIL, "mailbox": 3}, None, "credentials.mailbox", "must be a string"),
        ("email", MAIL, "webhook", "mode", "take mode poll"),
        ("whatsapp", {"appSecret": "a", "verifyToken": "v"}, "poll", "mode", "take mode webhook"),
    ],
)
def test_bad_accounts_name_the_field(
    platform: str, credentials: dict[str, Any], mode: str | None, field: str, message: str
) -> None:
    with pytest.raises(InvalidField, match=message) as info:
        check_account(platform, "ext", credentials, mode)
    assert info.value.field == field


def test_empty_external_id_is_refused() -> None:
    with pytest.raises(InvalidField) as info:
        check_account("generic", " ", {"secret": "s"}, None)
    assert info.value.field == "externalId"
