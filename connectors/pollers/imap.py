"""A blocking IMAP session (stdlib imaplib) that the email poller drives from a thread.

The mailbox is opened read-only (EXAMINE) and bodies fetched with BODY.PEEK, so polling
never marks a mail as seen. Every connect checks the host against the outbound policy
again and connects to the address that passed (TLS still verifies the host name).
"""

from __future__ import annotations

import contextlib
import imaplib
import re
import socket
import ssl
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from connectors.blocking import connect_pinned, shut
from connectors.errors import PollError
from connectors.platforms.email import FetchedMail
from hubcore.account_rules import as_bool, as_port
from hubcore.outbound import AddressRefused, OutboundPolicy

T = TypeVar("T")
_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
# Room for a literal beyond the partial fetch's bytes (none is expected; a server that
# sends a bigger one anyway is cut off, not read into memory).
_LITERAL_SLACK = 64 * 1024
_INTERNALDATE = re.compile(rb'INTERNALDATE "([^"]+)"')


def _quote(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _CappedLiterals(imaplib.IMAP4):
    """Refuses to read a literal (a mail's bytes) over `max_literal` from the server."""

    max_literal = 1024 * 1024 + _LITERAL_SLACK

    def read(self, size: int) -> bytes:
        if size > self.max_literal:
            raise self.abort(f"the server sent {size} bytes for one item, over the cap")
        return super().read(size)


class _PinnedImap(_CappedLiterals):
    """Plain IMAP to a checked address (`self.host` stays the name)."""

    def __init__(
        self,
        host: str,
        address: str,
        port: int,
        timeout: float,
        max_literal: int,
        watch: Callable[[socket.socket], None],
    ) -> None:
        self.address = address
        self.max_literal = max_literal
        self.watch = watch
        super().__init__(host, port, timeout=timeout)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return connect_pinned(self.address, self.port, timeout, self.watch)


class _PinnedImapTls(_CappedLiterals, imaplib.IMAP4_SSL):
    """IMAP over TLS to a checked address; the certificate is verified against the name."""

    def __init__(
        self,
        host: str,
        address: str,
        port: int,
        context: ssl.SSLContext,
        timeout: float,
        max_literal: int,
        watch: Callable[[socket.socket], None],
    ) -> None:
        self.address = address
        self.max_literal = max_literal
        self.watch = watch
        super().__init__(host, port, ssl_context=context, timeout=timeout)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        tls = (self.ssl_context, self.host)
        return connect_pinned(self.address, self.port, timeout, self.watch, tls=tls)


class ImapMailbox:
    """One mailbox of one account; connects on first use and again after any failure."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str,
        password: str,
        use_ssl: bool,
        mailbox: str,
        timeout: float,
        policy: OutboundPolicy,
        max_bytes: int = 1024 * 1024,
    ) -> None:
        self.host, self.port, self.use_ssl = host, port, use_ssl
        self.max_bytes = max_bytes
        self.policy = policy
        self.username, self._password = username, password
        self.mailbox = mailbox
        self.timeout = timeout
        self._conn: imaplib.IMAP4 | None = None
        # The socket of the connection being made or used, for `abort` from another thread.
        self._socket: socket.socket | None = None
        self.busy = False  # a call runs in some thread (maybe one a deadline gave up on)

    @classmethod
    def from_credentials(
        cls,
        credentials: dict[str, Any],
        timeout: float,
        policy: OutboundPolicy,
        max_bytes: int = 1024 * 1024,
    ) -> ImapMailbox:
        """From an email account's credentials (host, port, username, password, ssl, mailbox)."""
        return cls(
            host=str(credentials["host"]),
            port=as_port(credentials["port"]),
            username=str(credentials["username"]),
            password=str(credentials["password"]),
            use_ssl=as_bool(credentials["ssl"]),
            mailbox=str(credentials.get("mailbox") or "INBOX"),
            timeout=timeout,
            policy=policy,
            max_bytes=max_bytes,
        )

    def _connect(self) -> imaplib.IMAP4:
        conn: imaplib.IMAP4
        try:
            # Again at every connect: the DNS answer may have changed since creation.
            self.policy.check_tls(self.use_ssl)
            address = self.policy.address_for(self.host, self.port)
        except AddressRefused as exc:
            raise PollError(f"IMAP {self.host[:100]}: refused, {exc}") from None
        literal = self.max_bytes + _LITERAL_SLACK
        if self.use_ssl:
            context = ssl.create_default_context()
            conn = _PinnedImapTls(
                self.host, address, self.port, context, self.timeout, literal, self._watch
            )
        else:
            conn = _PinnedImap(self.host, address, self.port, self.timeout, literal, self._watch)
        try:
            conn.login(self.username, self._password)
        except imaplib.IMAP4.error:
            conn.shutdown()
            raise
        except UnicodeEncodeError:
            conn.shutdown()
            raise imaplib.IMAP4.error(
                "the user name or password is not ASCII, which IMAP LOGIN cannot send"
            ) from None
        return conn

    def _watch(self, sock: socket.socket) -> None:
        self._socket = sock

    def _call(self, action: Callable[[imaplib.IMAP4], T]) -> T:
        self.busy = True
        try:
            if self._conn is None:
                self._conn = self._connect()
            return action(self._conn)
        except (imaplib.IMAP4.error, OSError, EOFError) as exc:
            self.close()
            raise PollError(f"IMAP {self.host}:{self.port}: {exc}") from None
        finally:
            self.busy = False

    def abort(self) -> None:
        """End, from any thread, a call blocked on the server: its socket is shut down, so
        the blocked read returns at once and the call fails (a slow or silent server
        holds a thread only until a poll's deadline, not per operation's timeout)."""
        sock = self._socket
        if sock is not None:
            shut(sock)

    def open(self) -> int:
        """Select the mailbox read-only; returns its UIDVALIDITY."""

        def select(conn: imaplib.IMAP4) -> int:
            typ, data = conn.select(_quote(self.mailbox), readonly=True)
            if typ != "OK":
                raise imaplib.IMAP4.error(f"cannot open mailbox {self.mailbox!r}: {data!r}")
            _, values = conn.response("UIDVALIDITY")
            if not values or values[0] is None:
                raise imaplib.IMAP4.error("the server sent no UIDVALIDITY")
            return int(values[-1])

        return self._call(select)

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs above `last_uid`, ascending (the mailbox must be open)."""

        def search(conn: imaplib.IMAP4) -> list[int]:
            typ, data = conn.uid("SEARCH", "UID", f"{last_uid + 1}:*")
            if typ != "OK":
                raise imaplib.IMAP4.error(f"UID SEARCH failed: {data!r}")
            found = [int(u) for chunk in data if chunk for u in chunk.split()]
            # `n:*` always matches the highest UID, even below n: filter.
            return sorted(u for u in found if u > last_uid)

        return self._call(search)

    def fetch(self, uids: Sequence[int]) -> list[FetchedMail]:
        """Sources (without setting \\Seen), sizes and INTERNALDATEs of `uids`; of a mail
        over `max_bytes` only its first `max_bytes` (a partial fetch)."""

        def fetch(conn: imaplib.IMAP4) -> list[FetchedMail]:
            wanted = ",".join(str(u) for u in uids)
            items = f"(UID INTERNALDATE RFC822.SIZE BODY.PEEK[]<0.{self.max_bytes}>)"
            typ, data = conn.uid("FETCH", wanted, items)
            if typ != "OK":
                raise imaplib.IMAP4.error(f"UID FETCH failed: {data!r}")
            mails = []
            for item in data:
                if not isinstance(item, tuple) or len(item) < 2:
                    continue  # the closing b")" of each response
                head, source = item[0], item[1]
                uid = _UID.search(head)
                if uid is None:
                    continue
                size = _SIZE.search(head)
                mails.append(
                    FetchedMail(
                        int(uid.group(1)),
                        source,
                        _internal_date(head),
                        int(size.group(1)) if size else None,
                    )
                )
            return sorted(mails, key=lambda m: m.uid)

        return self._call(fetch)

    def fetch_section(self, uid: int, section: str, limit: int) -> bytes | None:
        """At most `limit` bytes of one MIME part (`section`, e.g. "2" or "1.3") of mail
        `uid`, as transfer-encoded on the server, without setting \\Seen; None when the
        server has no such mail (the mailbox must be open)."""

        def fetch(conn: imaplib.IMAP4) -> bytes | None:
            typ, data = conn.uid("FETCH", str(uid), f"(BODY.PEEK[{section}]<0.{limit}>)")
            if typ != "OK":
                raise imaplib.IMAP4.error(f"UID FETCH failed: {data!r}")
            for item in data:
                if isinstance(item, tuple) and len(item) >= 2 and _UID.search(item[0]):
                    return bytes(item[1])
            return None

        return self._call(fetch)

    def close(self) -> None:
        """Log out (best effort) and forget the connection."""
        conn, self._conn = self._conn, None
        self._socket = None
        if conn is None:
            return
        try:
            conn.logout()
        except (imaplib.IMAP4.error, OSError, EOFError):
            with contextlib.suppress(OSError):
                conn.shutdown()


def _internal_date(head: bytes) -> datetime | None:
    found = _INTERNALDATE.search(head)
    if found is None:
        return None
    try:
        return datetime.strptime(found.group(1).decode(), "%d-%b-%Y %H:%M:%S %z")
    except ValueError:
        return None
