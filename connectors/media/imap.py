"""An email part too large to travel in its fetch job, fetched from the mailbox.

The poller names each part's place in its `source` (connectors/platforms/email.py,
`imap:<uidvalidity>:<uid>:<section>:<encoding>`); here the fetcher opens the account's
mailbox read-only (EXAMINE, as the poller does: nothing is marked seen), checks that
UIDVALIDITY still is the one the mail was read under (else the UID may name another mail:
`not_found`), and asks for that part alone, `UID FETCH <uid> (BODY.PEEK[<section>]<0.n>)`,
`n` the most bytes the per-file cap allows in the part's transfer encoding: the server
never sends more, nothing larger is ever read into memory. The IMAP calls run in the
IMAP thread lane the pollers use (connectors/blocking.py), within
`HUB_MEDIA_FETCH_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from dataclasses import dataclass

from connectors.blocking import imap_lane
from connectors.errors import PollError
from connectors.media.fetch import FetchFailed
from connectors.pollers.imap import ImapMailbox
from hubcore.accounts import Account
from hubcore.outbound import OutboundPolicy
from hubcore.settings import Settings

_SOURCE = re.compile(r"imap:(\d{1,10}):(\d{1,10}):(\d{1,4}(?:\.\d{1,4}){0,15}):([a-z0-9-]{1,32})")


@dataclass(frozen=True, slots=True)
class ImapPart:
    """One part of one mail on the account's IMAP server."""

    uid_validity: int
    uid: int
    section: str
    encoding: str

    @classmethod
    def parse(cls, source: str) -> ImapPart | None:
        """The part a `source` names, None if it names none (a `part:<n>` of old)."""
        found = _SOURCE.fullmatch(source)
        if found is None:
            return None
        validity, uid, section, encoding = found.groups()
        return cls(int(validity), int(uid), section, encoding)


def encoded_limit(encoding: str, max_bytes: int) -> int:
    """The most bytes a part of `max_bytes` decoded bytes takes in `encoding` (base64:
    4 per 3, a line break per 76; quoted-printable: at worst 3 per byte and soft breaks)."""
    if encoding == "base64":
        chars = -(-max_bytes // 3) * 4
        return chars + 2 * (chars // 76 + 1) + 1024
    if encoding == "quoted-printable":
        return 3 * max_bytes + 3 * (max_bytes // 25 + 1) + 1024
    return max_bytes + 1024  # 7bit, 8bit, binary: as they are


def decode(encoding: str, data: bytes) -> bytes:
    """The part's bytes from its transfer encoding (lenient, as mail readers are)."""
    if encoding == "base64":
        return base64.b64decode(data, validate=False)  # line breaks and stray bytes skipped
    if encoding == "quoted-printable":
        return binascii.a2b_qp(data)
    return data


async def fetch_part(
    settings: Settings, account: Account, part: ImapPart, *, max_bytes: int
) -> bytes:
    """The decoded bytes of `part`; `FetchFailed` (IMAP errors and the deadline retriable)."""
    limit = encoded_limit(part.encoding, max_bytes)
    try:
        mailbox = ImapMailbox.from_credentials(
            account.credentials,
            settings.imap_timeout,
            OutboundPolicy.from_settings(settings),
            limit + 1,
        )
    except (KeyError, ValueError) as exc:
        raise FetchFailed("forbidden", f"the email account's settings: {exc}") from None

    def fetch() -> bytes | None:
        try:
            if mailbox.open() != part.uid_validity:
                raise FetchFailed("not_found", "the mailbox was renumbered (UIDVALIDITY)")
            return mailbox.fetch_section(part.uid, part.section, limit + 1)
        finally:
            mailbox.close()

    try:
        async with asyncio.timeout(settings.media_fetch_timeout):
            raw = await imap_lane(settings).run(account.user_id, fetch)
    except TimeoutError:
        mailbox.abort()
        raise FetchFailed(
            "timeout", f"no part within {settings.media_fetch_timeout:g}s", retriable=True
        ) from None
    except PollError as exc:
        raise FetchFailed("timeout", str(exc), retriable=True) from None
    if raw is None:
        raise FetchFailed("not_found", f"no mail UID {part.uid} (expunged)")
    if len(raw) > limit:
        raise FetchFailed("too_large", f"part {part.section}: over {max_bytes} bytes")
    data = await asyncio.to_thread(decode, part.encoding, raw)
    if len(data) > max_bytes:
        raise FetchFailed("too_large", f"part {part.section}: {len(data)} bytes, over {max_bytes}")
    return data
