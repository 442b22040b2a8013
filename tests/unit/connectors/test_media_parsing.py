"""Attachments read from each platform's real format: metadata only, pending, stable ids."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import orjson

from connectors.media.jobs import fetch_jobs
from connectors.platforms import generic, slack, telegram, whatsapp
from connectors.platforms.email import FetchedMail, email_message, imap_sections
from hubcore.settings import Settings
from schemas import MediaFetch, RawMessage
from tests import media_payloads as m
from tests import platform_payloads as p

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def only(records: list[RawMessage]) -> RawMessage:
    [record] = records
    return record


def test_telegram_photo_takes_the_largest_size_and_the_smallest_as_thumbnail() -> None:
    acc = p.account("telegram")
    record = only(telegram.parse(acc, p.body(m.telegram_photo(1, 10)), NOW).records)
    [photo] = record.attachments
    assert (photo.kind, photo.source, photo.thumbnail_source) == ("image", "ph-l-10", "ph-s-10")
    assert (photo.width, photo.height, photo.size, photo.status) == (1280, 853, 90_000, "pending")
    assert record.text == ""
    # The client's view has no platform references; the message carries it.
    [public] = record.to_message().attachments
    assert public.id == photo.id and "source" not in public.to_dict()


def test_telegram_photo_over_the_bot_download_limit_is_skipped_for_a_smaller_size() -> None:
    update = m.telegram_photo(1, 10)
    update["message"]["photo"][2]["file_size"] = 21 * 1024 * 1024
    record = only(telegram.parse(p.account("telegram"), p.body(update), NOW).records)
    assert record.attachments[0].source == "ph-m-10"


def test_telegram_voice_and_document_keep_caption_duration_and_name() -> None:
    acc = p.account("telegram")
    voice = only(telegram.parse(acc, p.body(m.telegram_voice(2, 11)), NOW).records)
    [note] = voice.attachments
    assert (note.kind, note.duration_ms, note.mime_type, note.source) == (
        "voice",
        3000,
        "audio/ogg",
        "vo-11",
    )
    doc = only(telegram.parse(acc, p.body(m.telegram_document(3, 12)), NOW).records)
    assert doc.text == "the report"
    assert [(a.kind, a.name) for a in doc.attachments] == [("document", "report.pdf")]


def test_attachment_ids_are_deterministic_per_platform_file() -> None:
    acc = p.account("telegram")
    first = only(telegram.parse(acc, p.body(m.telegram_photo(1, 10)), NOW).records)
    again = only(telegram.parse(acc, p.body(m.telegram_photo(1, 10)), NOW).records)
    other = only(telegram.parse(acc, p.body(m.telegram_photo(2, 11)), NOW).records)
    assert first.attachments[0].id == again.attachments[0].id != other.attachments[0].id
    assert first.attachments[0].id.startswith("att_")


def test_whatsapp_media_ids_voice_notes_and_documents() -> None:
    acc = p.account("whatsapp", "106540352242922")
    voice = p.whatsapp_media(
        acc.external_id, "w1", "audio", "1001", mime_type="audio/ogg; codecs=opus", voice=True
    )
    [note] = only(whatsapp.parse(acc, p.body(voice), NOW).records).attachments
    assert (note.kind, note.source, note.mime_type) == ("voice", "1001", "audio/ogg; codecs=opus")
    pdf = p.whatsapp_media(
        acc.external_id,
        "w2",
        "document",
        "1002",
        mime_type="application/pdf",
        filename="q.pdf",
        caption="see",
    )
    record = only(whatsapp.parse(acc, p.body(pdf), NOW).records)
    assert record.text == "see"
    assert [(a.kind, a.name, a.source) for a in record.attachments] == [
        ("document", "q.pdf", "1002")
    ]


def test_slack_files_use_url_private_and_the_thumbnail() -> None:
    acc = p.account("slack", "T123ABC456")
    record = only(
        slack.parse(
            acc, p.body(m.slack_file_share(acc.external_id, "https://files.slack.com")), NOW
        ).records
    )
    [file] = record.attachments
    assert file.kind == "image" and file.name == "tedair.png" and file.size == len(m.PNG)
    assert file.source.endswith("/download/tedair.png")
    assert file.thumbnail_source is not None and file.thumbnail_source.endswith("_360.png")


def test_generic_attachment_urls() -> None:
    acc = p.account("generic", secret="s")
    body = p.generic_message(
        attachments=[
            {"url": "https://cdn.example.com/a.pdf", "name": "a.pdf", "mimeType": "application/pdf"}
        ]
    )
    [file] = only(generic.parse(acc, p.body(body), NOW).records).attachments
    assert (file.kind, file.source, file.name) == (
        "document",
        "https://cdn.example.com/a.pdf",
        "a.pdf",
    )


def test_email_attachment_and_inline_cid_image_bytes_go_into_the_jobs() -> None:
    acc = p.account("email")
    parts: dict[str, bytes] = {}
    mail = FetchedMail(uid=7, source=m.email_with_files("q3@example.com"))
    record = email_message(acc, mail, mailbox="INBOX", uid_validity=1, received_at=NOW, parts=parts)
    assert record.text.startswith("Hi, the report is attached.")
    kinds = [(a.kind, a.mime_type, a.name) for a in record.attachments]
    assert kinds == [
        ("image", "image/png", "logo@example.com"),
        ("document", "application/pdf", "report.pdf"),
    ]
    assert parts == {record.attachments[0].id: m.PNG, record.attachments[1].id: m.PDF}
    jobs = fetch_jobs("hub.media-fetch", [record], parts, Settings(media_inline_max_bytes=100))
    decoded = [MediaFetch.from_json(value) for _, _, value in jobs]
    assert [(j.index, j.too_large) for j in decoded] == [(0, False), (1, False)]
    assert base64.b64decode(decoded[1].data or "") == m.PDF
    # Each part names its IMAP section (the PNG inside multipart/related, the PDF after it).
    assert [a.source for a in record.attachments] == ["imap:1:7:1.2:base64", "imap:1:7:2:base64"]
    # Over the inline bound: no bytes in the job, the fetcher reads the part by IMAP...
    assert len(m.PDF) > len(m.PNG)
    small = fetch_jobs("t", [record], parts, Settings(media_inline_max_bytes=len(m.PNG)))
    sent = [orjson.loads(v) for _, _, v in small]
    assert [(j["data"] is None, j["tooLarge"]) for j in sent] == [(False, False), (True, False)]
    # ...unless that is off, or the part is over the per-file cap: then `too_large` at once.
    off = fetch_jobs(
        "t", [record], parts, Settings(media_inline_max_bytes=len(m.PNG), media_imap_fetch=False)
    )
    assert [orjson.loads(v)["tooLarge"] for _, _, v in off] == [False, True]
    big_parts: dict[str, bytes] = {}
    big_mail = FetchedMail(uid=8, source=m.email_with_files("b@example.com", m.PDF + b"%" * 2000))
    big = email_message(
        acc, big_mail, mailbox="INBOX", uid_validity=1, received_at=NOW, parts=big_parts
    )
    capped = Settings(media_inline_max_bytes=len(m.PNG), media_max_bytes=1024)
    over = fetch_jobs("t", [big], big_parts, capped)
    assert [orjson.loads(v)["tooLarge"] for _, _, v in over] == [False, True]


def test_imap_sections_of_nested_parts() -> None:
    source = (
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="a"\r\n\r\n'
        b"--a\r\nContent-Type: text/plain\r\n\r\nbody\r\n"
        b"--a\r\nContent-Type: message/rfc822\r\n\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\ninner\r\n"
        b"--b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.b64encode(m.PNG)
        + b"\r\n--b--\r\n"
        b"--a\r\nContent-Type: message/rfc822\r\n\r\n"
        b"Content-Type: application/pdf\r\n\r\n%PDF-1.4\r\n"
        b"--a--\r\n"
    )
    msg = BytesParser(policy=policy.default).parsebytes(source)
    assert isinstance(msg, EmailMessage)
    found = sorted(imap_sections(msg).values())
    # RFC 3501's example numbering: a forwarded message's parts are N.1, N.2, ...
    assert found == ["1", "2.1", "2.2", "3.1"]
    plain = BytesParser(policy=policy.default).parsebytes(b"Subject: x\r\n\r\nhello\r\n")
    assert isinstance(plain, EmailMessage)
    assert list(imap_sections(plain).values()) == ["1"]


def test_messages_without_attachments_make_no_jobs() -> None:
    acc = p.account("telegram")
    record = only(telegram.parse(acc, p.body(p.telegram_update(1, 1)), NOW).records)
    assert record.attachments == [] and fetch_jobs("t", [record], None, Settings()) == []
    assert (
        "attachments" not in orjson.loads(record.to_message().to_json())
        or record.to_message().attachments == []
    )
