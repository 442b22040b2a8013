"""The pure parts of serving attachments: Range parsing, safe names, dispositions, signed
URLs, and which platform call each kind of file goes out as."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from connectors.outbound.senders import telegram_method, whatsapp_type
from gateway.api.attachments import Unsatisfiable, parse_range
from gateway.attachments import content_disposition, is_inline_media, safe_name
from hubcore.media_urls import signed_url, verify
from hubcore.settings import Settings
from schemas.attachments import AttachmentKind, OutboundAttachment


@pytest.mark.parametrize(
    ("header", "span"),
    [
        (None, None),
        ("bytes=0-9", (0, 10)),
        ("bytes=10-", (10, 100)),
        ("bytes=-5", (95, 100)),
        ("bytes=-500", (0, 100)),
        ("bytes=90-500", (90, 100)),
        ("bytes=5-1", None),  # invalid: ignored, the whole file
        ("bytes=0-1,5-6", None),  # several ranges: the whole file
        ("items=0-1", None),
        ("bytes=-", None),
    ],
)
def test_parse_range(header: str | None, span: tuple[int, int] | None) -> None:
    assert parse_range(header, 100) == span


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=250-300", "bytes=-0"])
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, 100)


@pytest.mark.parametrize(
    ("name", "mime", "safe"),
    [
        ("report.pdf", "application/pdf", "report.pdf"),
        ("../../etc/passwd", "text/plain", "passwd"),
        ("C:\\Users\\x\\evil.exe", "application/octet-stream", "evil.exe"),
        ("invoice\u202efdp.exe", "application/pdf", "invoicefdp.exe"),
        ("a\r\nSet-Cookie: x", "text/plain", "aSet-Cookie: x"),
        ("...", "image/png", "attachment.png"),
        (None, "application/pdf", "attachment.pdf"),
        ("x" * 400, "text/plain", "x" * 150),
    ],
)
def test_safe_name(name: str | None, mime: str, safe: str) -> None:
    assert safe_name(name, mime) == safe


def test_content_disposition_has_an_ascii_fallback_and_the_exact_name() -> None:
    assert content_disposition("attachment", 'Bericht "März"; 100%.pdf') == (
        'attachment; filename="Bericht _M_rz__ 100_.pdf"; '
        "filename*=UTF-8''Bericht%20%22M%C3%A4rz%22%3B%20100%25.pdf"
    )


@pytest.mark.parametrize(
    ("mime", "inline"),
    [
        ("image/png", True),
        ("audio/ogg", True),
        ("video/mp4", True),
        ("image/svg+xml", False),
        ("text/html", False),
        ("application/pdf", False),
        ("text/plain", False),
    ],
)
def test_only_images_audio_and_video_are_inline(mime: str, inline: bool) -> None:
    assert is_inline_media(mime) is inline


def test_signed_urls_open_one_attachment_until_they_expire() -> None:
    settings = Settings(_env_file=None, jwt_secret="s" * 40, public_url="https://hub.example/")
    url = signed_url(settings, "att_1", now=1000.0)
    assert url.startswith("https://hub.example/api/attachments/att_1?expires=4600&signature=")
    signature = url.rsplit("=", 1)[1]
    assert verify(settings, "att_1", "file", 4600, signature, now=4599.0)
    assert not verify(settings, "att_1", "file", 4600, signature, now=4601.0)
    assert not verify(settings, "att_2", "file", 4600, signature, now=2000.0)
    assert not verify(settings, "att_1", "thumbnail", 4600, signature, now=2000.0)
    assert not verify(settings, "att_1", "file", 9999, signature, now=2000.0)
    other_key = settings.model_copy(update={"media_url_key": SecretStr("another key")})
    assert not verify(other_key, "att_1", "file", 4600, signature, now=2000.0)
    # A signature of any characters is only wrong, never an error (the REST fuzzer's 500).
    assert not verify(settings, "att_1", "file", 4600, "\u00cf\u0089\udcff", now=2000.0)
    assert not verify(settings, "att_1", "file", 10**40, signature[:-1] + "\u00e9", now=2000.0)


def _attachment(kind: AttachmentKind, mime: str) -> OutboundAttachment:
    return OutboundAttachment(id="att_1", kind=kind, mime_type=mime, size=1, sha256="0" * 64)


@pytest.mark.parametrize(
    ("kind", "mime", "telegram", "whatsapp"),
    [
        ("image", "image/jpeg", ("sendPhoto", "photo"), "image"),
        ("image", "image/gif", ("sendDocument", "document"), "document"),
        ("voice", "audio/ogg", ("sendVoice", "voice"), "audio"),
        ("audio", "audio/mpeg", ("sendAudio", "audio"), "audio"),
        ("audio", "audio/wav", ("sendDocument", "document"), "document"),
        ("video", "video/mp4", ("sendVideo", "video"), "video"),
        ("sticker", "image/webp", ("sendSticker", "sticker"), "sticker"),
        ("document", "application/pdf", ("sendDocument", "document"), "document"),
    ],
)
def test_each_kind_goes_out_as_the_platform_supports(
    kind: AttachmentKind, mime: str, telegram: tuple[str, str], whatsapp: str
) -> None:
    attachment = _attachment(kind, mime)
    assert telegram_method(attachment) == telegram
    assert whatsapp_type(attachment) == whatsapp
