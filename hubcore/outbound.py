"""Where the hub may connect on a user's behalf: IMAP and SMTP hosts, generic callback URLs.

A user-supplied host is refused when any address it resolves to is loopback, private,
link-local, multicast, reserved or otherwise not global - unless the operator lists it in
`HUB_OUTBOUND_ALLOWED_HOSTS`. The check runs when the account is created and again at
every connect, and the connection goes to the address that passed, so a DNS answer that
changes in between (rebinding) cannot redirect it. Platform API base URLs are operator
settings and are not subject to this policy.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from hubcore.errors import InvalidField
from hubcore.settings import Settings

Resolver = Callable[[str, int], list[str]]
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+$")


class AddressRefused(InvalidField):
    """A user-supplied address the hub will not connect to; names the field."""

    code = "address_refused"


def system_resolver(host: str, port: int) -> list[str]:
    """Every address of `host` from the system resolver (blocking)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def _kind(address: IpAddress) -> str | None:
    """Why `address` is not a public one, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for kind, flag in (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
    ):
        if flag:
            return kind
    return None if address.is_global else "non-global"


def _literal(name: str) -> list[IpAddress]:
    try:
        return [ipaddress.ip_address(name.strip("[]"))]
    except ValueError:
        return []


@dataclass(frozen=True)
class OutboundPolicy:
    """The operator's outbound rules and the resolver used to apply them."""

    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[IpNetwork, ...] = ()
    allow_plaintext: bool = False
    resolver: Resolver = field(default=system_resolver, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings, resolver: Resolver | None = None) -> OutboundPolicy:
        names: set[str] = set()
        networks: list[IpNetwork] = []
        for entry in settings.outbound_allowed_hosts:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                names.add(entry.lower().rstrip("."))
        return cls(
            frozenset(names),
            tuple(networks),
            settings.outbound_allow_plaintext,
            resolver or system_resolver,
        )

    def check_tls(self, use_tls: bool, field: str = "credentials.ssl") -> None:
        """Refuse plaintext unless the operator allows it."""
        if not use_tls and not self.allow_plaintext:
            raise AddressRefused(
                field, "plaintext connections are off (HUB_OUTBOUND_ALLOW_PLAINTEXT)"
            )

    def _resolve(self, name: str, port: int) -> list[IpAddress]:
        try:
            return [ipaddress.ip_address(a.split("%")[0]) for a in self.resolver(name, port)]
        except (OSError, UnicodeError, ValueError):
            return []

    def address_for(self, host: str, port: int, field: str = "credentials.host") -> str:
        """The checked address to connect to for `host`; `AddressRefused` otherwise.

        Blocking (it may resolve): call it from a thread in async code.
        """
        name = host.strip().lower().rstrip(".")
        addresses = _literal(name)
        if not addresses:
            if not _HOSTNAME.match(name):
                raise AddressRefused(field, "is not a host name or IP address")
            addresses = self._resolve(name, port)
            if not addresses:
                raise AddressRefused(field, f"{host[:100]!r} does not resolve")
        if name in self.allowed_hosts:
            return str(addresses[0])
        for address in addresses:
            kind = _kind(address)
            if kind is not None and not any(address in net for net in self.allowed_networks):
                # Any bad answer refuses: a round-robin name must not hide an internal one.
                raise AddressRefused(
                    field,
                    f"{host[:100]!r} resolves to a {kind} address; the hub only connects "
                    "to public hosts (operators may allow one: HUB_OUTBOUND_ALLOWED_HOSTS)",
                )
        return str(addresses[0])

    def url_address(self, url: str, field: str = "credentials.callbackUrl") -> str:
        """The checked address for an http(s) URL's host (https unless plaintext is on).

        Blocking (it may resolve): call it from a thread in async code.
        """
        parts = urlsplit(url)
        self.check_tls(parts.scheme == "https", field)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return self.address_for(parts.hostname or "", port, field)

    def pin_url(self, url: str, field: str = "credentials.callbackUrl") -> tuple[str, str, str]:
        """(the URL to the checked address, its Host header, the TLS server name): a request
        to the first with the other two cannot be redirected by a changed DNS answer.

        Blocking (it may resolve): call it from a thread in async code.
        """
        parts = urlsplit(url)
        address = self.url_address(url, field)
        netloc = f"[{address}]" if ":" in address else address
        if parts.port:
            netloc += f":{parts.port}"
        pinned = urlunsplit(parts._replace(netloc=netloc))
        return pinned, parts.netloc.rpartition("@")[2], parts.hostname or ""
