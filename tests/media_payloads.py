"""Messages carrying files, in each platform's real, documented format.

Telegram: Message `photo` (PhotoSize[]), `voice`, `document` (https://core.telegram.org/bots/api#message).
WhatsApp: Cloud API webhook media messages are `tests.platform_payloads.whatsapp_media`.
Slack: a `file_share` message event with `files[]` (https://docs.slack.dev/reference/objects/file-object).
Email: multipart/mixed with a PDF attachment and a multipart/related inline `cid:` image.
"""

from __future__ import annotations

import base64
from typing import Any

from hub.demo.media_files import OGG, PDF, PNG
from tests.platform_payloads import slack_message, telegram_update

JPEG = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffd9")
__all__ = ["JPEG", "OGG", "PDF", "PNG"]


def telegram_photo(update_id: int, message_id: int, caption: str | None = None) -> dict[str, Any]:
    """A photo in three sizes (Telegram sends them smallest first)."""
    sizes = [
        {"file_id": f"ph-s-{message_id}", "file_unique_id": f"u-s-{message_id}", "file_size": 900,
         "width": 90, "height": 60},
        {"file_id": f"ph-m-{message_id}", "file_unique_id": f"u-m-{message_id}",
         "file_size": 9_000, "width": 320, "height": 213},
        {"file_id": f"ph-l-{message_id}", "file_unique_id": f"u-l-{message_id}",
         "file_size": 90_000, "width": 1280, "height": 853},
    ]  # fmt: skip
    extra: dict[str, Any] = {"photo": sizes}
    if caption is not None:
        extra["caption"] = caption
    return telegram_update(update_id, message_id, text=None, **extra)


def telegram_voice(update_id: int, message_id: int) -> dict[str, Any]:
    voice = {
        "file_id": f"vo-{message_id}",
        "file_unique_id": f"u-vo-{message_id}",
        "duration": 3,
        "mime_type": "audio/ogg",
        "file_size": len(OGG),
    }
    return telegram_update(update_id, message_id, text=None, voice=voice)


def telegram_document(update_id: int, message_id: int, name: str = "report.pdf") -> dict[str, Any]:
    document = {
        "file_id": f"doc-{message_id}",
        "file_unique_id": f"u-doc-{message_id}",
        "file_name": name,
        "mime_type": "application/pdf",
        "file_size": len(PDF),
    }
    return telegram_update(
        update_id, message_id, text=None, caption="the report", document=document
    )


def slack_file_share(team_id: str, base: str, ts: str = "1355517524.000007") -> dict[str, Any]:
    """A file uploaded into a channel: `file_share` with one file object."""
    file = {
        "id": "F0S43PZDF",
        "created": 1531763342,
        "name": "tedair.png",
        "title": "tedair.png",
        "mimetype": "image/png",
        "filetype": "png",
        "user": "U123ABC456",
        "size": len(PNG),
        "url_private": f"{base}/files-pri/T0-F0S43PZDF/tedair.png",
        "url_private_download": f"{base}/files-pri/T0-F0S43PZDF/download/tedair.png",
        "thumb_360": f"{base}/files-tmb/T0-F0S43PZDF/tedair_360.png",
        "original_w": 1,
        "original_h": 1,
    }
    return slack_message(team_id, ts=ts, text="", subtype="file_share", files=[file])


def _b64(data: bytes) -> str:
    return base64.encodebytes(data).decode().replace("\n", "\r\n")


def email_with_files(message_id: str, pdf: bytes = PDF) -> bytes:
    """A mail with a text body, an inline `cid:` image and a PDF attachment."""
    return (
        "From: Bob Example <bob@example.com>\r\n"
        "To: Alice <alice@example.com>\r\n"
        "Subject: Quarterly report\r\n"
        "Date: Wed, 25 Nov 2026 09:30:00 +0000\r\n"
        f"Message-ID: <{message_id}>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="mixed"\r\n\r\n'
        "--mixed\r\n"
        'Content-Type: multipart/related; boundary="rel"\r\n\r\n'
        "--rel\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        "Hi, the report is attached. Our logo is inline.\r\n"
        "--rel\r\n"
        "Content-Type: image/png\r\n"
        "Content-ID: <logo@example.com>\r\n"
        "Content-Disposition: inline\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
        f"{_b64(PNG)}"
        "--rel--\r\n"
        "--mixed\r\n"
        'Content-Type: application/pdf; name="report.pdf"\r\n'
        'Content-Disposition: attachment; filename="report.pdf"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
        f"{_b64(pdf)}"
        "--mixed--\r\n"
    ).encode()
