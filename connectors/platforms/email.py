"""Mail (RFC 5322) fetched over IMAP, normalized into raw messages.

Message id: the `Message-ID` header (a digest of the whole source when there is none), so
the same mail seen again - after a restart, a UIDVALIDITY change or in another folder
of the same account - keeps its hub id.
Conversation: the thread root, i.e. the first id of `References`, else `In-Reply-To`, else
the mail's own id (it starts a thread). Subjects are not used to join threads: unrelated
mails share subjects like "Hello" too often.
Text: the text/plain body; for HTML-only mail the HTML converted to text.
Sender: the one addr-spec of `From` (a display name is only a name: `"a@x, b@y" <>` names
no address at all); a mail without exactly one address has no reply address.
Times: anyone can mail an account and write any `Date:`, so a mail's `sentAt` is never
later than when the hub received it, and a thread is ordered by receipt (streams).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from typing import Any

from connectors.errors import BadPayload
from connectors.html_text import html_to_text
from connectors.platforms import media
from connectors.platforms.base import raw_message
from hubcore.accounts import Account
from schemas import DeadLetter, InboundAttachment, RawMessage
from schemas.attachments import MAX_INBOUND_ATTACHMENTS

MAX_TEXT_CHARS = 100_000
UNKNOWN_SENDER = "unknown"  # the sender id of a mail naming no single address
MAX_SOURCE_IN_RAW = 256 * 1024  # bytes; larger sources (attachments) keep headers only
# One addr-spec and nothing else: no space, list separator, route, comment, quote or control.
_ATOMS = r'[^\s<>()\[\],;:\\"@\x00-\x1f\x7f]+'
_BARE = re.compile(f"{_ATOMS}@{_ATOMS}")
MAX_PARTS = 200  # MIME parts looked at per mail: a mail of a thousand parts costs no more
_ID = re.compile(r"<([^<>\s]+)>")
_ENCODING = re.compile(r"[^A-Za-z0-9-]")
_REPLY_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|wg|sv|vs)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class FetchedMail:
    """One mail as the IMAP server returned it."""

    uid: int
    source: bytes
    internal_date: datetime | None = None
    size: int | None = None  # the whole mail's (RFC822.SIZE), when `source` is cut short


def email_message(
    account: Account,
    mail: FetchedMail,
    *,
    mailbox: str,
    uid_validity: int,
    received_at: datetime,
    parts: dict[str, bytes] | None = None,
) -> RawMessage:
    """The raw-message record of one fetched mail; `BadPayload` if it cannot be read.

    Its attachments' bytes are already in hand: `parts` (when given) gets them by
    attachment id, for the media fetch jobs."""
    try:
        msg = BytesParser(policy=policy.default).parsebytes(mail.source)
        own_id = _first_id(msg.get("Message-ID")) or (
            "sha256:" + hashlib.sha256(mail.source).hexdigest()[:40]
        )
        root = _first_id(msg.get("References")) or _first_id(msg.get("In-Reply-To")) or own_id
        name, address = _from(msg)
        subject = _REPLY_PREFIX.sub("", str(msg.get("Subject") or "")).strip()
        text = body_text(msg)[:MAX_TEXT_CHARS]
        headers = [[key, str(value)] for key, value in msg.items()]
        # The sender writes `Date:`: a future one would sort the mail first for good.
        sent_at = min(_date(msg.get("Date")) or mail.internal_date or received_at, received_at)
        # A mail cut short (HUB_EMAIL_MAX_BYTES) has parts cut short: none travels in the
        # job, each is fetched by IMAP; its size is not known until then.
        truncated = mail.size is not None and mail.size > len(mail.source)
        where = ImapPlace(uid_validity, mail.uid)
        attachments = mail_attachments(
            account, msg, own_id, None if truncated else parts, where=where, sized=not truncated
        )
    except (ValueError, TypeError, LookupError, AttributeError) as exc:
        raise BadPayload(f"mail UID {mail.uid} cannot be read: {exc}") from None
    raw: dict[str, Any] = {
        "uid": mail.uid,
        "uidValidity": uid_validity,
        "mailbox": mailbox,
        "size": max(mail.size or 0, len(mail.source)),
        "headers": headers,
    }
    if mail.size is not None and mail.size > len(mail.source):
        raw["truncated"] = True  # only the first HUB_EMAIL_MAX_BYTES were fetched
    if len(mail.source) <= MAX_SOURCE_IN_RAW:
        raw["source"], raw["sourceEncoding"] = DeadLetter.encode_payload(mail.source)
    return raw_message(
        account,
        chat=root,
        message=own_id,
        sender=(address or UNKNOWN_SENDER, name or None),
        text=text,
        sent_at=sent_at,
        received_at=received_at,
        raw=raw,
        title=subject or None,
        attachments=attachments,
    )


@dataclass(frozen=True, slots=True)
class ImapPlace:
    """Where a mail is on its IMAP server: its parts' `source` names it, so a part too
    large to travel in its fetch job is fetched from there (`BODY.PEEK[<section>]`)."""

    uid_validity: int
    uid: int

    def source(self, section: str, encoding: str) -> str:
        """`imap:<uidvalidity>:<uid>:<section>:<content-transfer-encoding>`."""
        return f"imap:{self.uid_validity}:{self.uid}:{section}:{encoding}"


def imap_sections(msg: EmailMessage) -> dict[int, str]:
    """IMAP section numbers (RFC 3501 6.4.5) of the leaf parts of `msg`, by `id()` of the
    part object: a multipart's children are 1, 2, ...; an encapsulated message/rfc822 of
    part N has its parts at N.1, N.2, ... (N.1 when it is not multipart); a message that
    is not multipart has its body at 1."""
    sections: dict[int, str] = {}

    def visit(part: Message, at: str) -> None:
        if len(sections) >= MAX_PARTS:
            return
        payload = part.get_payload()
        if part.get_content_maintype() == "multipart" and isinstance(payload, list):
            for n, child in enumerate(payload, 1):
                if isinstance(child, Message):
                    visit(child, f"{at}.{n}" if at else str(n))
        elif part.get_content_type() == "message/rfc822" and isinstance(payload, list):
            inner = payload[0] if payload and isinstance(payload[0], Message) else None
            inner_payload = inner.get_payload() if inner is not None else None
            if inner is None:
                return
            if inner.get_content_maintype() == "multipart" and isinstance(inner_payload, list):
                for n, child in enumerate(inner_payload, 1):
                    visit(child, f"{at}.{n}")
            else:
                sections[id(inner)] = f"{at}.1"
        else:
            sections[id(part)] = at or "1"

    visit(msg, "")
    return sections


def mail_attachments(
    account: Account,
    msg: EmailMessage,
    own_id: str,
    parts: dict[str, bytes] | None,
    *,
    where: ImapPlace | None = None,
    sized: bool = True,
) -> list[InboundAttachment]:
    """Attachments and inline (`cid:`) parts: every leaf part but the text body, up to
    `MAX_PARTS` looked at and `MAX_INBOUND_ATTACHMENTS` kept. A part's id comes from the mail's
    id and the part's position, so the same mail seen again gives the same ids. With
    `where`, a part's `source` names its IMAP section (else `part:<n>`)."""
    body = msg.get_body(preferencelist=("plain", "html"))
    sections = imap_sections(msg) if where is not None else {}
    found: list[InboundAttachment] = []
    for index, part in enumerate(msg.walk()):
        if index >= MAX_PARTS or len(found) >= MAX_INBOUND_ATTACHMENTS:
            break
        if part.is_multipart() or part is body or not isinstance(part, EmailMessage):
            continue
        disposition = part.get_content_disposition()
        name = part.get_filename()
        content_id = part.get("Content-ID")
        if part.get_content_maintype() == "text" and not (disposition == "attachment" or name):
            continue  # an alternative body (the HTML of a plain mail), not a file
        mime_type = part.get_content_type()
        data = part.get_payload(decode=True)
        data = data if isinstance(data, bytes) else b""
        section = sections.get(id(part))
        encoding = _ENCODING.sub("", str(part.get("Content-Transfer-Encoding") or "7bit"))
        encoding = encoding.lower()[:32] or "7bit"
        source = (
            where.source(section, encoding)
            if where is not None and section is not None
            else f"part:{index}"
        )
        found_one = media.attachment(
            account,
            media.kind_of(mime_type),
            source,
            ref=f"{own_id}\x1f{index}",
            mime_type=mime_type,
            size=len(data) if sized else None,
            name=name or (str(content_id).strip("<> ") if content_id else None),
        )
        if found_one is not None:
            found.append(found_one)
            if parts is not None:
                parts[found_one.id] = data
    return found


def body_text(msg: EmailMessage) -> str:
    """The plain-text body, else the HTML body as text, else empty."""
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # unknown or lying charset: decode leniently
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if not isinstance(content, str):
        return ""
    content = content.replace("\r\n", "\n")
    if part.get_content_subtype() == "html":
        return html_to_text(content)
    return content.strip()


def _from(msg: EmailMessage) -> tuple[str, str]:
    """(display name, the lowercased addr-spec or "" unless `From` names exactly one)."""
    header = msg.get("From")
    addresses: tuple[Address, ...] = getattr(header, "addresses", ())
    if len(addresses) != 1:
        return "", ""
    [only] = addresses
    return str(only.display_name or ""), single_address(only.addr_spec) or ""


def single_address(value: str) -> str | None:
    """`value` lowercased when it is exactly one bare addr-spec (no display name, no list,
    no control character), else None: where a reply goes must be one mailbox."""
    return value.lower() if _BARE.fullmatch(value) else None


def _first_id(header: Any) -> str | None:
    if header is None:
        return None
    value = str(header).strip()
    found = _ID.search(value)
    if found:
        return found.group(1)
    return value.split()[0] if value else None


def _date(header: Any) -> datetime | None:
    if header is None:
        return None
    try:
        parsed = parsedate_to_datetime(str(header))
    except (TypeError, ValueError, IndexError):
        return None
    # RFC 5322 "-0000" (no zone information) parses naive: treat it as UTC.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
