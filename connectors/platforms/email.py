"""Mail (RFC 5322) fetched over IMAP, normalized into raw messages.

Message id: the `Message-ID` header (a digest of the whole source when there is none), so
the same mail seen again - after a restart, a UIDVALIDITY change or in another folder
of the same account - keeps its hub id.
Conversation: the thread root, i.e. the first id of `References`, else `In-Reply-To`, else
the mail's own id (it starts a thread). Subjects are not used to join threads: unrelated
mails share subjects like "Hello" too often.
Text: the text/plain body; for HTML-only mail the HTML converted to text.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parseaddr, parsedate_to_datetime
from typing import Any

from connectors.errors import BadPayload
from connectors.html_text import html_to_text
from connectors.platforms import media
from connectors.platforms.base import raw_message
from hubcore.accounts import Account
from schemas import DeadLetter, InboundAttachment, RawMessage
from schemas.attachments import MAX_INBOUND_ATTACHMENTS

MAX_TEXT_CHARS = 100_000
MAX_SOURCE_IN_RAW = 256 * 1024  # bytes; larger sources (attachments) keep headers only
MAX_PARTS = 200  # MIME parts looked at per mail: a mail of a thousand parts costs no more
_ID = re.compile(r"<([^<>\s]+)>")
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
        name, address = parseaddr(str(msg.get("From") or ""))
        subject = _REPLY_PREFIX.sub("", str(msg.get("Subject") or "")).strip()
        text = body_text(msg)[:MAX_TEXT_CHARS]
        headers = [[key, str(value)] for key, value in msg.items()]
        sent_at = _date(msg.get("Date")) or mail.internal_date or received_at
        attachments = mail_attachments(account, msg, own_id, parts)
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
        sender=(address.lower() or name or "unknown", name or None),
        text=text,
        sent_at=sent_at,
        received_at=received_at,
        raw=raw,
        title=subject or None,
        attachments=attachments,
    )


def mail_attachments(
    account: Account, msg: EmailMessage, own_id: str, parts: dict[str, bytes] | None
) -> list[InboundAttachment]:
    """Attachments and inline (`cid:`) parts: every leaf part but the text body, up to
    `MAX_PARTS` looked at and `MAX_INBOUND_ATTACHMENTS` kept. A part's id comes from the mail's
    id and the part's position, so the same mail seen again gives the same ids."""
    body = msg.get_body(preferencelist=("plain", "html"))
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
        found_one = media.attachment(
            account,
            media.kind_of(mime_type),
            f"part:{index}",
            ref=f"{own_id}\x1f{index}",
            mime_type=mime_type,
            size=len(data),
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
