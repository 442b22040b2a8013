"""An SMTP server that answers every step slowly, each within `HUB_SEND_TIMEOUT`, holds a
reply no longer than `HUB_SMTP_SESSION_DEADLINE`: the session is cut, the reply fails
saying so, and the consumer goes on with the next reply."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient

from connectors.outbound.smtp import _Deadline, _PinnedSmtpTls
from hubcore.accounts import Account
from hubcore.mongo import Document
from hubcore.settings import Settings
from schemas import SendResult
from tests.integration.connectors.sending_rig import (
    Rig,
    SmtpInbox,
    email_account,
    outbound,
    sending_rig,
    smtp_account,
)

pytestmark = pytest.mark.integration

DEADLINE = 1.0
# Each of MAIL, RCPT and DATA is answered this late: within the rig's HUB_SEND_TIMEOUT (2 s),
# 2.4 s together, so only the session's deadline ends the send before it succeeds.
STEP = 0.8


class SlowInbox(SmtpInbox):
    """Accepts mail like `SmtpInbox`, answering each envelope step after `STEP` seconds."""

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        await asyncio.sleep(STEP)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        await asyncio.sleep(STEP)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(STEP)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
async def rig(
    settings_factory: Callable[..., Settings], mongo_client: AsyncMongoClient[Document]
) -> AsyncIterator[Rig]:
    def with_deadline(**overrides: Any) -> Settings:
        return settings_factory(**overrides, smtp_session_deadline=DEADLINE)

    async with sending_rig(with_deadline, mongo_client) as made:
        yield made


def _email_send_seconds() -> float:
    found = REGISTRY.get_sample_value("hub_connectors_send_seconds_sum", {"platform": "email"})
    return found or 0.0


async def _failed_at_the_deadline(rig: Rig, account: Account) -> tuple[SendResult, float]:
    """Send a reply from `account`; it fails at the deadline, in one platform call: its
    result and that call's seconds."""
    before = _email_send_seconds()
    await rig.produce(outbound(account, recipient="ada@example.com"))
    [result] = await rig.results(1)
    took = _email_send_seconds() - before
    assert result.status == "failed", result.detail
    assert result.detail and "HUB_SMTP_SESSION_DEADLINE" in result.detail
    assert result.attempts == 1  # not retried: the next session would be as slow
    return result, took


async def test_a_slow_smtp_server_fails_the_reply_at_the_deadline_and_the_next_goes_out(
    rig: Rig,
) -> None:
    inbox = SlowInbox()
    async with smtp_account(rig, inbox) as (account, _):
        result, took = await _failed_at_the_deadline(rig, account)
    # Cut within the mail transaction (RCPT): said to be ambiguous, as any connection lost
    # while sending (connectors/outbound/smtp.py does not tell the steps apart).
    assert result.detail and "may have the message" in result.detail and result.ambiguous
    assert not inbox.messages
    # The one session ended at the deadline, not after its 2.4 s of slow steps.
    assert DEADLINE <= took < 3 * STEP - 0.2, took

    telegram = await rig.account("telegram")
    await rig.produce(outbound(telegram, client_id="after"))
    got = await rig.results(2)
    assert got[1].status == "sent", got[1].detail
    assert got[1].message_id == outbound(telegram, client_id="after").message_id


async def _starttls_tarpit(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Speaks SMTP up to `220` to STARTTLS, then never answers the TLS handshake."""
    writer.write(b"220 tarpit ESMTP\r\n")
    while line := await reader.readline():
        verb = line[:8].upper()
        if verb.startswith((b"EHLO", b"HELO")):
            writer.write(b"250-tarpit\r\n250 STARTTLS\r\n")
        elif verb.startswith(b"STARTTLS"):
            writer.write(b"220 Ready to start TLS\r\n")
            await writer.drain()
            await reader.read()  # the ClientHello, unanswered, until the client goes
            break
        else:
            writer.write(b"502 Command not implemented\r\n")
        await writer.drain()
    writer.close()


async def test_a_starttls_handshake_that_never_ends_fails_the_reply_at_the_deadline(
    rig: Rig,
) -> None:
    server = await asyncio.start_server(_starttls_tarpit, "127.0.0.1", 0)
    async with server:
        account = await email_account(rig, server.sockets[0].getsockname()[1], tls=True)
        result, took = await _failed_at_the_deadline(rig, account)
    assert not result.ambiguous  # cut before MAIL FROM: the server has nothing
    # The deadline cut the handshake, not the step's HUB_SEND_TIMEOUT (2 s in the rig).
    assert DEADLINE <= took < rig.settings.send_timeout - 0.2, took


def test_a_tls_handshake_that_never_ends_is_cut_at_the_deadline() -> None:
    """Implicit TLS (port 465) to a server that accepts and never answers: the socket is
    watched before the handshake, so the deadline ends it, not the step's timeout."""
    with socket.create_server(("127.0.0.1", 0)) as tarpit:
        port = tarpit.getsockname()[1]
        context = ssl.create_default_context()
        started = time.monotonic()
        with _Deadline(0.3) as deadline, pytest.raises((OSError, smtplib.SMTPException)):
            _PinnedSmtpTls("localhost", "127.0.0.1", port, context, 30.0, deadline)
        took = time.monotonic() - started
    assert deadline.passed
    assert 0.3 <= took < 5.0, took
