"""The outbound address policy, with a resolver the test controls (no lookup, no traffic)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from hubcore.outbound import AddressRefused, OutboundPolicy, Resolver, system_resolver
from hubcore.settings import Settings

PUBLIC = "93.184.215.14"


def answers(table: dict[str, list[str]]) -> Resolver:
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError("no such name")
        return table[host]

    return resolve


def policy(table: dict[str, list[str]], **settings: Any) -> OutboundPolicy:
    return OutboundPolicy.from_settings(Settings(_env_file=None, **settings), answers(table))


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),  # the cloud metadata address
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("::1", "loopback"),
        ("[::ffff:127.0.0.1]", "loopback"),
        ("fd00::1", "private"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - a refused address, not a bind
        ("100.64.0.1", "non-global"),
        ("internal.example", "private"),
        ("mixed.example", "loopback"),
    ],
)
def test_internal_addresses_are_refused(host: str, kind: str) -> None:
    table = {"internal.example": ["10.0.0.5"], "mixed.example": [PUBLIC, "127.0.0.1"]}
    with pytest.raises(AddressRefused, match=f"a {kind} address") as info:
        policy(table).address_for(host, 993)
    assert info.value.field == "credentials.host"


def test_public_host_resolves_to_the_checked_address() -> None:
    assert policy({"imap.example": [PUBLIC]}).address_for("imap.example.", 993) == PUBLIC
    assert policy({}).address_for(PUBLIC, 993) == PUBLIC


def test_unresolvable_or_malformed_hosts_are_refused() -> None:
    with pytest.raises(AddressRefused, match="does not resolve"):
        policy({}).address_for("nowhere.example", 993)
    with pytest.raises(AddressRefused, match="not a host name"):
        policy({}).address_for("http://x/", 993)


def test_operator_allows_named_hosts_and_networks() -> None:
    allowed = policy(
        {"mail.lan": ["10.0.0.5"], "other.lan": ["10.9.0.1"]},
        outbound_allowed_hosts="mail.lan,127.0.0.0/8",
    )
    assert allowed.address_for("mail.lan", 143) == "10.0.0.5"
    assert allowed.address_for("127.0.0.1", 143) == "127.0.0.1"
    with pytest.raises(AddressRefused):
        allowed.address_for("other.lan", 143)


def test_plaintext_needs_the_operator() -> None:
    with pytest.raises(AddressRefused, match="plaintext") as info:
        policy({}).check_tls(False)
    assert info.value.field == "credentials.ssl"
    policy({}).check_tls(True)
    policy({}, outbound_allow_plaintext=True).check_tls(False)


def test_the_system_resolver_answers_each_address_once_in_order() -> None:
    # localhost comes from the hosts file: no network.
    addresses = system_resolver("localhost", 993)
    assert "127.0.0.1" in addresses
    assert addresses == sorted(set(addresses))
    assert all(ipaddress.ip_address(a) for a in addresses)
    assert system_resolver("192.0.2.7", 25) == ["192.0.2.7"]
