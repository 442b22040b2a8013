"""The one account check behind REST, CLI and demo: per platform keys, types and modes."""

from __future__ import annotations

from typing import Any

import pytest

from hubcore.account_rules import as_bool, as_port, callback_url, check_account
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


SMTP = {"smtpHost": "smtp.example.com", "smtpUsername": "a", "smtpPassword": "p"}


@pytest.mark.parametrize(
    ("platform", "external_id", "credentials", "mode", "field", "message"),
    [
        ("generic", "x" * 513, {"secret": "s"}, None, "externalId", "must be 1 to 512 characters"),
        ("generic", "", {"secret": "s"}, None, "externalId", "must be 1 to 512 characters"),
        ("generic", "e", {"secret": " "}, None, "credentials.secret", "must not be empty"),
        (
            "generic",
            "e",
            {"secret": "s" * 4097},
            None,
            "credentials.secret",
            "must be at most 4096 characters",
        ),
        (
            "generic",
            "e",
            {"secret": "a\x00b"},
            None,
            "credentials.secret",
            "must not contain control characters or line breaks",
        ),
        ("generic", "e", {"secret": 1}, None, "credentials.secret", "must be a string for generic"),
        (
            "telegram",
            "e",
            {"botToken": "b", "webhookSecret": "w"},
            "push",
            "mode",
            "telegram accounts take mode webhook or poll",
        ),
        (
            "slack",
            "e",
            {"signingSecret": "s", "x": "y"},
            None,
            "credentials",
            "has keys slack does not take (it takes signingSecret, botToken)",
        ),
        (
            "email",
            "e",
            {**MAIL, "port": 0},
            None,
            "credentials.port",
            "must be between 1 and 65535",
        ),
        (
            "email",
            "e",
            {**MAIL, "port": 65536},
            None,
            "credentials.port",
            "must be between 1 and 65535",
        ),
        ("email", "e", {**MAIL, "port": "x"}, None, "credentials.port", "must be a number"),
        ("email", "e", {**MAIL, "port": 1.5}, None, "credentials.port", "must be a number"),
        ("email", "e", {**MAIL, "ssl": "y"}, None, "credentials.ssl", "must be true or false"),
        (
            "email",
            "e",
            {**MAIL, "smtpUsername": "a"},
            None,
            "credentials.smtpHost",
            "is required to send email",
        ),
        (
            "email",
            "e",
            {**MAIL, **SMTP, "smtpTls": "sometimes"},
            None,
            "credentials.smtpTls",
            "must be true or false",
        ),
        (
            "email",
            "e",
            {**MAIL, **SMTP, "smtpPort": "0"},
            None,
            "credentials.smtpPort",
            "must be between 1 and 65535",
        ),
        (
            "email",
            "e",
            {**MAIL, **SMTP, "smtpPassword": ""},
            None,
            "credentials.smtpPassword",
            "must not be empty",
        ),
        (
            "email",
            "e",
            {**MAIL, "mailbox": 7},
            None,
            "credentials.mailbox",
            "must be a string for email",
        ),
    ],
)
def test_refusals_say_exactly_what_is_wrong(
    platform: str,
    external_id: str,
    credentials: dict[str, Any],
    mode: str | None,
    field: str,
    message: str,
) -> None:
    with pytest.raises(InvalidField) as info:
        check_account(platform, external_id, credentials, mode)
    assert (info.value.field, str(info.value)) == (field, f"{field}: {message}")


def test_an_unknown_platform_names_the_known_ones_and_cuts_its_own_name() -> None:
    with pytest.raises(InvalidField) as info:
        check_account("f" * 40, "e", {}, None)
    assert info.value.message == f"platform: unknown platform {'f' * 32!r}"
    assert info.value.fix == "use telegram, whatsapp, slack, email, generic"


def test_limits_are_inclusive() -> None:
    clean, _ = check_account("generic", "x" * 512, {"secret": "s" * 4096}, None)
    assert clean == {"secret": "s" * 4096}
    assert check_account("email", "e", {**MAIL, "port": 1}, None)[0]["port"] == 1
    assert check_account("email", "e", {**MAIL, "port": "65535"}, None)[0]["port"] == 65535


def test_email_sending_credentials_are_typed_and_defaulted() -> None:
    clean, _ = check_account("email", "e", {**MAIL, **SMTP, "ssl": False}, None)
    assert clean == {
        **MAIL,
        **SMTP,
        "ssl": False,
        "port": 143,
        "mailbox": "INBOX",
        "smtpTls": True,
        "smtpPort": 465,
    }
    typed, _ = check_account(
        "email", "e", {**MAIL, **SMTP, "smtpTls": "off", "smtpPort": "587", "mailbox": "Work"}, None
    )
    assert (typed["smtpTls"], typed["smtpPort"], typed["mailbox"]) == (False, 587, "Work")


def test_optional_tokens_are_checked_as_text() -> None:
    clean, _ = check_account("slack", "T", {"signingSecret": "s", "botToken": "xoxb"}, None)
    assert clean == {"signingSecret": "s", "botToken": "xoxb"}
    with pytest.raises(InvalidField) as info:
        check_account(
            "whatsapp", "W", {"appSecret": "a", "verifyToken": "v", "accessToken": 3}, None
        )
    assert str(info.value) == "credentials.accessToken: must be a string for whatsapp"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/hook", "must be an absolute https:// URL"),
        ("https:///hook", "must be an absolute https:// URL"),
        ("/relative", "must be an absolute https:// URL"),
        ("https://user@example.com/hook", "must not carry a user name or password"),
        ("https://:secret@example.com/hook", "must not carry a user name or password"),
        ("https://example.com:99999/hook", "has an invalid port"),
    ],
)
def test_callback_urls_must_be_plain_absolute_http(url: str, message: str) -> None:
    with pytest.raises(InvalidField) as info:
        check_account("generic", "e", {"secret": "s", "callbackUrl": url}, None)
    assert str(info.value) == f"credentials.callbackUrl: {message}"
    with pytest.raises(InvalidField) as direct:
        callback_url(url, "url")
    assert direct.value.field == "url"


def test_callback_urls_are_kept_as_given() -> None:
    for url in ("https://example.com/hook?a=1", "http://example.com:8080/x"):
        clean, _ = check_account("generic", "e", {"secret": "s", "callbackUrl": url}, None)
        assert clean == {"secret": "s", "callbackUrl": url}
    with pytest.raises(InvalidField) as info:
        callback_url(5)
    assert str(info.value) == "credentials.callbackUrl: must be a string for generic"


def test_as_bool_and_as_port_name_their_field() -> None:
    assert as_bool(True) is True and as_bool(" On ") is True and as_bool("0") is False
    with pytest.raises(InvalidField) as info:
        as_bool("perhaps")
    assert str(info.value) == "credentials.ssl: must be true or false"
    assert as_port("25") == 25 and as_port(25) == 25
    with pytest.raises(InvalidField) as port:
        as_port(None, "smtp.port")
    assert str(port.value) == "smtp.port: must be a number"
