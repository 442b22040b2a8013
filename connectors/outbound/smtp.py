"""Email replies over SMTP: TLS by default (implicit on 465, STARTTLS elsewhere), threaded
under the message answered with `In-Reply-To`/`References`.

`smtplib` runs in a thread: one reply is one short session. The `Message-ID` derives from
the hub's id, so the platform id of a reply is known before it leaves.
"""

from __future__ import annotations

import asyncio
import smtplib
import socket
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate

from connectors.errors import SendError
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
    """The reply as an RFC 5322 message; attachments as MIME parts (multipart/mixed)."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = msg.recipient or ""
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


class _PinnedSmtp(smtplib.SMTP):
    """Connects to the address the policy checked; STARTTLS still verifies `host`."""

    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        self._address = address
        super().__init__(host, port, timeout=timeout)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return socket.create_connection((self._address, port), timeout, self.source_address)


class _PinnedSmtpTls(smtplib.SMTP_SSL):
    """Implicit TLS to the checked address, the certificate verified for `host`."""

    def __init__(
        self, host: str, address: str, port: int, context: ssl.SSLContext, timeout: float
    ) -> None:
        self._address = address
        self._server_name = host
        super().__init__(host, port, timeout=timeout, context=context)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = socket.create_connection((self._address, port), timeout, self.source_address)
        return self.context.wrap_socket(sock, server_hostname=self._server_name)


def _deliver(settings: Settings, account: Account, mail: EmailMessage) -> None:
    creds = account.credentials
    host = str(creds.get("smtpHost") or "")
    if not host or not msg_recipient(mail):
        raise SendError("the email account has no smtpHost, or the reply no recipient")
    try:
        port = as_port(creds.get("smtpPort", 465), "smtpPort")
        tls = as_bool(creds.get("smtpTls", True), "smtpTls")
        # Again at every send: the DNS answer may have changed since the account was made.
        policy = OutboundPolicy.from_settings(settings)
        policy.check_tls(tls, "credentials.smtpTls")
        address = policy.address_for(host, port, "credentials.smtpHost")
    except InvalidInput as exc:
        raise SendError(f"{WHAT}: refused, {exc}") from None
    timeout = settings.send_timeout
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    try:
        if tls and port == 465:
            smtp = _PinnedSmtpTls(host, address, port, context, timeout)
        else:
            smtp = _PinnedSmtp(host, address, port, timeout)
    except (OSError, smtplib.SMTPException) as exc:
        raise SendError(f"{WHAT}: could not connect ({exc})", retriable=True) from None
    with smtp:
        try:
            if tls and port != 465:
                smtp.starttls(context=context)
            if creds.get("smtpUsername"):
                smtp.login(str(creds["smtpUsername"]), str(creds.get("smtpPassword") or ""))
        except smtplib.SMTPAuthenticationError as exc:
            raise SendError(f"{WHAT}: login refused ({exc.smtp_code})") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise SendError(
                f"{WHAT}: session failed before sending ({exc})", retriable=True
            ) from None
        try:
            smtp.send_message(mail)
        except smtplib.SMTPResponseException as exc:
            # 4xx is "try again later", 5xx final; either way the server did not take it.
            raise SendError(
                f"{WHAT}: {exc.smtp_code} {exc.smtp_error!r}", retriable=400 <= exc.smtp_code < 500
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise SendError(f"{WHAT}: recipient refused ({', '.join(exc.recipients)})") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise SendError(
                f"{WHAT}: connection lost while sending ({type(exc).__name__}); "
                "the server may have the message",
                ambiguous=True,
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
    await asyncio.to_thread(_deliver, settings, account, mail)
    return str(mail["Message-ID"])
