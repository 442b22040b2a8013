"""Replies with attachments out through each platform's own upload API (stand-ins that
speak the real formats), the bytes read from GridFS on the real store."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser
from urllib.parse import parse_qs, urlsplit

import pytest

from hub.demo import media_samples
from hub.demo.platform_apis import Call
from hubcore.accounts import Account
from hubcore.attachments import new_attachment_id
from hubcore.blobs import StoredBlob, blob_store
from hubcore.media_urls import verify
from schemas import OutboundMessage, SendResult
from schemas.attachments import AttachmentKind, OutboundAttachment
from tests.integration.connectors.sending_rig import Rig, outbound, smtp_account

pytestmark = pytest.mark.integration

PHOTO = media_samples.png(12, 9)
VOICE = media_samples.ogg_opus()
PDF = media_samples.pdf()


async def _stored(rig: Rig, data: bytes, kind: AttachmentKind, name: str) -> OutboundAttachment:
    store = blob_store(rig.settings, rig.db)  # where the senders read (HUB_GRIDFS_DATABASE)
    blob: StoredBlob = await store.put(data)
    return OutboundAttachment(
        id=new_attachment_id(),
        kind=kind,
        mime_type=blob.mime_type,
        size=blob.size,
        name=name,
        width=blob.width,
        height=blob.height,
        status="ready",
        sha256=blob.sha256,
    )


async def _sent(rig: Rig, msg: OutboundMessage) -> SendResult:
    """Produce the reply; its result, which must be `sent`."""
    await rig.produce(msg)
    [result] = await rig.results()
    assert result.status == "sent", result.detail
    return result


async def _send_three(
    rig: Rig, platform: str, text: str, reply_to: str
) -> tuple[Account, SendResult, list[Call]]:
    """A reply with a photo, a voice note and a PDF through `platform`: its account, its
    (sent) result and the stand-in's calls."""
    account = await rig.account(platform)
    attachments = [
        await _stored(rig, PHOTO, "image", "photo.png"),
        await _stored(rig, VOICE, "voice", "note.ogg"),
        await _stored(rig, PDF, "document", "Rechnung März.pdf"),
    ]
    msg = outbound(account, text=text, reply_to=reply_to, attachments=attachments)
    result = await _sent(rig, msg)
    return account, result, rig.fake.of(platform)


async def test_telegram_send_photo_voice_and_document_multipart(rig: Rig) -> None:
    _, result, calls = await _send_three(rig, "telegram", "Here you go", "55")
    base = f"/telegram/bot{rig.fake.telegram_token}"
    assert [c.path for c in calls] == [
        f"{base}/sendPhoto",
        f"{base}/sendVoice",
        f"{base}/sendDocument",
    ]
    photo, voice, document = calls
    assert photo.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert photo.body["chat_id"] == "777"
    assert photo.body["caption"] == "Here you go"
    assert photo.body["reply_parameters"] == '{"message_id":55,"allow_sending_without_reply":true}'
    assert photo.files["photo"] == ("photo.png", "image/png", PHOTO)
    assert voice.files["voice"] == ("note.ogg", "audio/ogg", VOICE)
    assert "caption" not in voice.body and "reply_parameters" not in voice.body
    assert document.files["document"] == ("Rechnung März.pdf", "application/pdf", PDF)
    assert result.platform_message_id == "9003"  # the last part's id


async def test_telegram_long_text_goes_first_as_a_message(rig: Rig) -> None:
    account = await rig.account("telegram")
    photo = await _stored(rig, PHOTO, "image", "p.png")
    await _sent(rig, outbound(account, text="x" * 1500, attachments=[photo]))
    first, second = rig.fake.of("telegram")
    assert first.path.endswith("/sendMessage") and first.body["text"] == "x" * 1500
    assert second.path.endswith("/sendPhoto") and "caption" not in second.body


async def test_whatsapp_uploads_media_then_sends_media_messages(rig: Rig) -> None:
    account, result, calls = await _send_three(rig, "whatsapp", "Invoice attached", "wamid.IN1")
    media_path = f"/whatsapp/{account.external_id}/media"
    uploads = [c for c in calls if c.path == media_path]
    sends = [c for c in calls if c.path.endswith("/messages")]
    assert len(uploads) == 3 and len(sends) == 3
    for upload, data, mime in zip(
        uploads, (PHOTO, VOICE, PDF), ("image/png", "audio/ogg", "application/pdf"), strict=True
    ):
        assert upload.headers["authorization"] == f"Bearer {rig.fake.access_token}"
        assert upload.body == {"messaging_product": "whatsapp", "type": mime}
        assert upload.files["file"][1:] == (mime, data)
    image, audio, document = (c.body for c in sends)
    assert image["type"] == "image"
    assert image["image"]["caption"] == "Invoice attached"
    assert rig.fake.media[image["image"]["id"]][1] == PHOTO
    assert image["context"] == {"message_id": "wamid.IN1"}
    assert audio["type"] == "audio" and "caption" not in audio["audio"] and "context" not in audio
    assert rig.fake.media[audio["audio"]["id"]][1] == VOICE
    assert document["type"] == "document"
    assert document["document"]["filename"] == "Rechnung März.pdf"
    assert result.platform_message_id and result.platform_message_id.startswith("wamid.")


async def test_whatsapp_voice_first_sends_the_text_separately(rig: Rig) -> None:
    account = await rig.account("whatsapp")
    voice = await _stored(rig, VOICE, "voice", "note.ogg")
    await _sent(rig, outbound(account, text="Listen", attachments=[voice]))
    sends = [c.body for c in rig.fake.of("whatsapp") if c.path.endswith("/messages")]
    assert [b["type"] for b in sends] == ["text", "audio"]
    assert sends[0]["text"]["body"] == "Listen"


async def test_slack_external_upload_flow(rig: Rig) -> None:
    _, result, calls = await _send_three(rig, "slack", "Files", "1700000000.000100")
    reserve = [c for c in calls if c.path == "/slack/files.getUploadURLExternal"]
    uploads = [c for c in calls if c.path.startswith("/slack-files/upload/")]
    [complete] = [c for c in calls if c.path == "/slack/files.completeUploadExternal"]
    assert len(reserve) == len(uploads) == 3
    assert reserve[0].headers["content-type"] == "application/x-www-form-urlencoded"
    assert reserve[0].body == {"filename": "photo.png", "length": str(len(PHOTO))}
    assert reserve[2].body["filename"] == "Rechnung März.pdf"
    assert all("authorization" not in c.headers for c in uploads)  # the URL is the grant
    file_ids = [c.path.rsplit("/", 1)[1] for c in uploads]
    assert [rig.fake.media[f][1] for f in file_ids] == [PHOTO, VOICE, PDF]
    assert complete.body == {
        "files": [
            {"id": file_ids[0], "title": "photo.png"},
            {"id": file_ids[1], "title": "note.ogg"},
            {"id": file_ids[2], "title": "Rechnung März.pdf"},
        ],
        "channel_id": "C0123",
        "initial_comment": "Files",
        "thread_ts": "1700000000.000100",
    }
    assert result.platform_message_id == file_ids[0]


async def test_generic_callback_gets_signed_urls(rig: Rig) -> None:
    account = await rig.account("generic")
    photo = await _stored(rig, PHOTO, "image", "photo.png")
    msg = outbound(account, text="", attachments=[photo])
    await _sent(rig, msg)
    [call] = rig.fake.of("generic")
    [sent] = call.body["attachments"]
    assert {k: sent[k] for k in ("id", "kind", "mimeType", "size", "name", "width", "height")} == {
        "id": photo.id,
        "kind": "image",
        "mimeType": "image/png",
        "size": len(PHOTO),
        "name": "photo.png",
        "width": 12,
        "height": 9,
    }
    url = urlsplit(sent["url"])
    assert url.path == f"/api/attachments/{photo.id}"
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert verify(rig.settings, photo.id, "file", int(query["expires"]), query["signature"])
    assert "sha256" not in sent  # the store's key stays inside the hub


async def test_email_attaches_mime_parts(rig: Rig) -> None:
    async with smtp_account(rig) as (account, inbox):
        pdf = await _stored(rig, PDF, "document", "Rechnung März.pdf")
        photo = await _stored(rig, PHOTO, "image", "photo.png")
        msg = outbound(
            account,
            external_conversation_id="<root@example.com>",
            recipient="ada@example.com",
            subject="Order 42",
            attachments=[pdf, photo],
        )
        await _sent(rig, msg)
    [(_, _, content)] = inbox.messages
    mail = BytesParser(policy=policy.default).parsebytes(content)
    assert mail.get_content_type() == "multipart/mixed"
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None and body.get_content().strip() == msg.text
    parts = [
        (p.get_content_type(), p.get_filename(), p.get_content()) for p in mail.iter_attachments()
    ]
    assert parts == [
        ("application/pdf", "Rechnung März.pdf", PDF),
        ("image/png", "photo.png", PHOTO),
    ]


async def test_a_missing_blob_fails_the_reply_before_any_call(rig: Rig) -> None:
    account = await rig.account("telegram")
    photo = await _stored(rig, PHOTO, "image", "p.png")
    gone = photo.model_copy(update={"sha256": "0" * 64})
    await rig.produce(outbound(account, attachments=[gone]))
    [result] = await rig.results()
    assert result.status == "failed"
    assert "no longer stored" in (result.detail or "")
    assert rig.fake.of("telegram") == []
