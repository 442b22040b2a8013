"""Email replies over SMTP: TLS by default (implicit on 465, STARTTLS elsewhere), threaded
under the message answered with `In-Reply-To`/`References`.

`smtplib` runs in a thread: one reply is one short session, within
`HUB_SMTP_SESSION_DEADLINE` in all. The `Message-ID` derives from the hub's id, so the
platform id of a reply is known before it leaves.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate
from typing import cast

from connectors.blocking import connect_pinned, shut, smtp_lane, watched_tls
from connectors.errors import SendError
from connectors.platforms.email import single_address
from hubcore.account_rules import as_bool, as_port
from hubcore.accounts import Account
from hubcore.errors import InvalidInput
from hubcore.outbound import OutboundPolicy
from hubcore.settings import Settings
from schemas import OutboundMessage
from schemas.attachments import OutboundAttachment

WHAT = "SMTP"


def compose(
    account: Account,
    msg: OutboundMessage,
    sender: str,
    files: Sequence[tuple[OutboundAttachment, bytes]] = (),
) -> EmailMessage:
    """The reply as an RFC 5322 message to exactly one address; attachments as MIME
    parts (multipart/mixed)."""
    # Again here, whatever the state holds: `To` gets one bare addr-spec or nothing is sent.
    recipient = single_address(msg.recipient or "")
    if recipient is None:
        raise SendError(
            f"{WHAT}: the message answered names no single reply address "
            f"({(msg.recipient or 'none')[:100]!r})",
            reason="rejected",
        )
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = recipient
    subject = msg.subject or ""
    mail["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}".strip()
    mail["Date"] = formatdate(msg.issued_at.timestamp(), usegmt=True)
    mail["Message-ID"] = f"<{msg.message_id}@hub.invalid>"
    if msg.reply_to:
        mail["In-Reply-To"] = msg.reply_to
        root = msg.external_conversation_id
        mail["References"] = msg.reply_to if root == msg.reply_to else f"{root} {msg.reply_to}"
    mail.set_content(msg.text)
    for attachment, data in files:
        maintype, _, subtype = attachment.mime_type.partition("/")
        mail.add_attachment(
            data,
            maintype=maintype,
            subtype=subtype or "octet-stream",
            filename=attachment.name or "attachment",
        )
    return mail


class _Deadline:
    """A session's overall deadline. Each step's socket timeout (`HUB_SEND_TIMEOUT`) does
    not bound a server that answers every step slowly, and a session holds a thread of the
    SMTP lane: when the deadline passes, a timer shuts the session's socket down, so the
    read or write blocked on it returns at once and the session fails."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._cut_done = False
        self._ends = time.monotonic() + seconds
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._timer.cancel()

    @property
    def passed(self) -> bool:
        """The session has run its time (a socket timeout may come just before the timer)."""
        return self._cut_done or time.monotonic() >= self._ends

    def left(self) -> float:
        """Seconds until the deadline (a connect waits no longer)."""
        return max(0.001, self._ends - time.monotonic())

    def watch(self, sock: socket.socket) -> None:
        """The socket the session now talks over (STARTTLS replaces it)."""
        with self._lock:
            self._sock = sock
            passed = self._cut_done
        if passed:
            shut(sock)

    def _cut(self) -> None:
        with self._lock:
            self._cut_done = True
            sock = self._sock
        if sock is not None:
            shut(sock)


class _WatchedStartTls:
    """What STARTTLS wraps the session's socket with: `context`, the TLS socket watched by
    the deadline before its handshake (smtplib calls only `wrap_socket`)."""

    def __init__(self, context: ssl.SSLContext, deadline: _Deadline) -> None:
        self.context = context
        self.deadline = deadline

    def wrap_socket(self, sock: socket.socket, server_hostname: str) -> ssl.SSLSocket:
        return watched_tls(sock, self.context, server_hostname, self.deadline.watch)


def _connect(
    address: str,
    port: int,
    timeout: float,
    deadline: _Deadline,
    tls: tuple[ssl.SSLContext, str] | None = None,
) -> socket.socket:
    # The connect waits no longer than the session has left (the hub sets no source
    # address); later steps are cut by the deadline's timer.
    wait = min(timeout, deadline.left())
    return connect_pinned(address, port, timeout, deadline.watch, tls=tls, connect_timeout=wait)


class _PinnedSmtp(smtplib.SMTP):
    """Connects to the address the policy checked; STARTTLS still verifies `host`."""

    def __init__(
        self, host: str, address: str, port: int, timeout: float, deadline: _Deadline
    ) -> None:
        self._address = address
        self._deadline = deadline
        super().__init__(host, port, timeout=timeout)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return _connect(self._address, port, timeout, self._deadline)


class _PinnedSmtpTls(smtplib.SMTP_SSL):
    """Implicit TLS to the checked address, the certificate verified for `host`."""

    def __init__(
        self,
        host: str,
        address: str,
        port: int,
        context: ssl.SSLContext,
        timeout: float,
        deadline: _Deadline,
    ) -> None:
        self._address = address
        self._server_name = host
        self._deadline = deadline
        super().__init__(host, port, timeout=timeout, context=context)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        tls = (self.context, self._server_name)
        return _connect(self._address, port, timeout, self._deadline, tls)


def _deliver(settings: Settings, account: Account, mail: EmailMessage) -> None:
    creds = account.credentials
    host = str(creds.get("smtpHost") or "")
    if not host or not msg_recipient(mail):
        raise SendError(
            "the email account has no smtpHost, or the reply no recipient", reason="credentials"
        )
    try:
        port = as_port(creds.get("smtpPort", 465), "smtpPort")
        tls = as_bool(creds.get("smtpTls", True), "smtpTls")
        # Again at every send: the DNS answer may have changed since the account was made.
        policy = OutboundPolicy.from_settings(settings)
        policy.check_tls(tls, "credentials.smtpTls")
        address = policy.address_for(host, port, "credentials.smtpHost")
    except InvalidInput as exc:
        raise SendError(f"{WHAT}: refused, {exc}", reason="address_refused") from None
    with _Deadline(settings.smtp_session_deadline) as deadline:
        try:
            _session(settings, account, mail, host, address, port, tls, deadline)
        except SendError as exc:
            if not deadline.passed:
                raise
            # Not retried: a server this slow would hold the lane's thread again as long.
            raise SendError(
                f"{WHAT}: the session took longer than its deadline "
                f"({deadline.seconds:g} s, HUB_SMTP_SESSION_DEADLINE)"
                + ("; the server may have the message" if exc.ambiguous else ""),
                ambiguous=exc.ambiguous,
                reason="no_answer",
            ) from None


def _session(
    settings: Settings,
    account: Account,
    mail: EmailMessage,
    host: str,
    address: str,
    port: int,
    tls: bool,
    deadline: _Deadline,
) -> None:
    creds = account.credentials
    timeout = settings.send_timeout
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    try:
        if tls and port == 465:
            smtp = _PinnedSmtpTls(host, address, port, context, timeout, deadline)
        else:
            smtp = _PinnedSmtp(host, address, port, timeout, deadline)
    except (OSError, smtplib.SMTPException) as exc:
        raise SendError(
            f"{WHAT}: could not connect ({exc})", retriable=True, reason="connect"
        ) from None
    with smtp:
        try:
            if tls and port != 465:
                smtp.starttls(context=cast(ssl.SSLContext, _WatchedStartTls(context, deadline)))
            if creds.get("smtpUsername"):
                smtp.login(str(creds["smtpUsername"]), str(creds.get("smtpPassword") or ""))
        except smtplib.SMTPAuthenticationError as exc:
            raise SendError(
                f"{WHAT}: login refused ({exc.smtp_code})", reason="credentials"
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise SendError(
                f"{WHAT}: session failed before sending ({exc})", retriable=True, reason="connect"
            ) from None
        try:
            smtp.send_message(mail)
        except smtplib.SMTPResponseException as exc:
            # 4xx is "try again later", 5xx final; either way the server did not take it.
            raise SendError(
                f"{WHAT}: {exc.smtp_code} {exc.smtp_error!r}",
                retriable=400 <= exc.smtp_code < 500,
                reason="server_error" if 400 <= exc.smtp_code < 500 else "rejected",
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise SendError(
                f"{WHAT}: recipient refused ({', '.join(exc.recipients)})", reason="rejected"
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise SendError(
                f"{WHAT}: connection lost while sending ({type(exc).__name__}); "
                "the server may have the message",
                ambiguous=True,
                reason="no_answer",
            ) from None


def msg_recipient(mail: EmailMessage) -> str:
    return str(mail["To"] or "")


async def send_email(
    settings: Settings,
    account: Account,
    msg: OutboundMessage,
    files: Sequence[tuple[OutboundAttachment, bytes]] = (),
) -> str:
    """Send the reply (with `files` attached); its `Message-ID` is the platform id."""
    creds = account.credentials
    username = str(creds.get("smtpUsername") or "")
    sender = username if "@" in username else account.external_id
    mail = compose(account, msg, sender, files)
    # A pool of its own, a few threads per user: one user's slow server delays their sends.
    await smtp_lane(settings).run(account.user_id, _deliver, settings, account, mail)
    return str(mail["Message-ID"])
