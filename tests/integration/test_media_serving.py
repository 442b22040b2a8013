"""Attachments over REST against a real uvicorn, FerretDB and Kafka: uploads (sniffed,
capped, quota'd), owner-only serving with Range/ETag and safe headers, signed URLs, and a
reply carrying an upload onto `hub.commands`."""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator, Callable
from urllib.parse import quote

import httpx
import pytest
from PIL import Image
from pymongo.asynchronous.database import AsyncDatabase

from hub.demo import media_samples
from hubcore.attachments import ATTACHMENTS, ready_doc
from hubcore.blobs import blob_store
from hubcore.media_urls import signed_url
from hubcore.mongo import CONVERSATIONS, Document
from hubcore.settings import Settings
from schemas import SendMessage, parse_command
from schemas.base import utc_now
from tests.integration.connectors.harness import read_topic
from tests.integration.gateway_kit import (
    RunningGateway,
    running_gateway,
    user_client,
)

pytestmark = pytest.mark.integration

QUOTA = 3 * 1024 * 1024
MAX_BYTES = 1024 * 1024


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(
        media_max_bytes=MAX_BYTES, media_user_quota_bytes=QUOTA, media_thumbnail_px=64
    )


@pytest.fixture
async def gw(
    settings: Settings, mongo_db: AsyncDatabase[Document]
) -> AsyncIterator[RunningGateway]:
    for conv, user in (("a_conv", "alice"), ("b_conv", "bob")):
        await mongo_db[CONVERSATIONS].insert_one(
            {
                "_id": conv,
                "userId": user,
                "platform": "generic",
                "accountId": f"acc_{user}",
                "title": conv,
                "updatedAt": utc_now(),
            }
        )
    async with running_gateway(settings) as running:
        yield running


@pytest.fixture
def as_user(gw: RunningGateway) -> Callable[[str], httpx.AsyncClient]:
    return lambda user: user_client(gw, gw.app.settings, user)


async def _upload(
    client: httpx.AsyncClient, data: bytes, name: str, conv: str = "a_conv", **fields: str
) -> httpx.Response:
    # The declared type is a lie on purpose: the hub sniffs.
    files = {"file": (name, data, "application/pdf")}
    return await client.post(f"/api/conversations/{conv}/attachments", files=files, data=fields)


async def test_upload_is_sniffed_and_served_to_its_owner_only(
    gw: RunningGateway, as_user: Callable[[str], httpx.AsyncClient]
) -> None:
    photo = media_samples.png(40, 30)
    async with as_user("alice") as alice, as_user("bob") as bob:
        made = await _upload(alice, photo, "../../etc/Ünï\u202ecode.pdf")
        assert made.status_code == 201, made.text
        body = made.json()
        assert body["id"].startswith("att_")
        assert (body["kind"], body["mimeType"], body["size"]) == ("image", "image/png", len(photo))
        assert (body["width"], body["height"], body["status"]) == (40, 30, "ready")
        assert body["name"] == "Ünïcode.pdf"  # no directories, no bidi override

        url = f"/api/attachments/{body['id']}"
        got = await alice.get(url)
        assert got.status_code == 200
        assert got.content == photo
        assert got.headers["content-type"] == "image/png"
        assert got.headers["x-content-type-options"] == "nosniff"
        assert got.headers["etag"] == f'"{hashlib.sha256(photo).hexdigest()}"'
        assert got.headers["content-disposition"] == (
            "inline; filename=\"_n_code.pdf\"; filename*=UTF-8''" + quote("Ünïcode.pdf")
        )
        assert "sandbox" not in got.headers.get("content-security-policy", "")

        for path in (url, url + "/thumbnail"):
            assert (await bob.get(path)).status_code == 404
        assert (await bob.get("/api/attachments/att_nonexistent")).status_code == 404
        async with httpx.AsyncClient(base_url=gw.base_url) as anonymous:
            assert (await anonymous.get(url)).status_code == 401
        # Bob cannot upload into Alice's conversation either.
        assert (await _upload(bob, photo, "x.png")).status_code == 404


async def test_range_etag_and_unsatisfiable(as_user: Callable[[str], httpx.AsyncClient]) -> None:
    audio = media_samples.wav(40_000)
    async with as_user("alice") as alice:
        made = (await _upload(alice, audio, "note.wav", kind="voice")).json()
        assert (made["kind"], made["mimeType"]) == ("voice", "audio/wav")
        url = f"/api/attachments/{made['id']}"
        part = await alice.get(url, headers={"Range": "bytes=100-199"})
        assert part.status_code == 206
        assert part.content == audio[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(audio)}"
        assert part.headers["content-length"] == "100"
        tail = await alice.get(url, headers={"Range": "bytes=-10"})
        assert (tail.status_code, tail.content) == (206, audio[-10:])
        past = await alice.get(url, headers={"Range": f"bytes={len(audio)}-"})
        assert past.status_code == 416
        assert past.headers["content-range"] == f"bytes */{len(audio)}"
        etag = part.headers["etag"]
        assert (await alice.get(url, headers={"If-None-Match": etag})).status_code == 304
        stale = await alice.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
        assert (stale.status_code, stale.content) == (200, audio)


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (b"<!doctype html><script>alert(document.cookie)</script>", "text/html"),
        (
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "image/svg+xml",
        ),
        (media_samples.pdf(), "application/pdf"),
    ],
)
async def test_active_content_is_a_sandboxed_download(
    as_user: Callable[[str], httpx.AsyncClient], data: bytes, mime: str
) -> None:
    async with as_user("alice") as alice:
        made = (await _upload(alice, data, "page.png")).json()
        assert (made["mimeType"], made["kind"]) == (mime, "document")
        got = await alice.get(f"/api/attachments/{made['id']}")
        assert got.headers["content-disposition"].startswith("attachment;")
        assert got.headers["content-security-policy"].startswith("sandbox")
        assert got.headers["x-content-type-options"] == "nosniff"


async def test_caps_bombs_and_quota(
    as_user: Callable[[str], httpx.AsyncClient], mongo_db: AsyncDatabase[Document]
) -> None:
    async with as_user("alice") as alice:
        over = await _upload(alice, b"\x00" * (MAX_BYTES + 1), "big.bin")
        assert over.status_code == 413
        far_over = await _upload(alice, b"\x00" * (MAX_BYTES + 200_000), "bigger.bin")
        assert far_over.status_code == 413  # refused by the body limit while streaming
        bomb = await _upload(alice, media_samples.png_header(70_000, 70_000), "bomb.png")
        assert bomb.status_code == 413
        assert "too_large" in bomb.text
        assert await mongo_db[ATTACHMENTS].count_documents({}) == 0
        for n in range(3):
            ok = await _upload(alice, bytes([n + 1]) * (MAX_BYTES - 10), f"f{n}.bin")
            assert ok.status_code == 201, ok.text
        past_quota = await _upload(alice, b"\x09" * 100_000, "one-more.bin")
        assert past_quota.status_code == 413
        assert "quota" in past_quota.text


async def test_thumbnail_is_a_small_jpeg(as_user: Callable[[str], httpx.AsyncClient]) -> None:
    async with as_user("alice") as alice:
        made = (await _upload(alice, media_samples.png(400, 200), "wide.png")).json()
        thumb = await alice.get(f"/api/attachments/{made['id']}/thumbnail")
        assert thumb.status_code == 200
        assert thumb.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(thumb.content)).size == (64, 32)
        small = (await _upload(alice, media_samples.gif(8, 8), "dot.gif")).json()
        same = await alice.get(f"/api/attachments/{small['id']}/thumbnail")
        assert same.content == media_samples.gif(8, 8)  # already small: itself
        doc = (await _upload(alice, media_samples.pdf(), "a.pdf")).json()
        assert (await alice.get(f"/api/attachments/{doc['id']}/thumbnail")).status_code == 404


async def test_a_received_image_gets_its_thumbnail_on_the_first_request(
    settings: Settings,
    as_user: Callable[[str], httpx.AsyncClient],
    mongo_db: AsyncDatabase[Document],
) -> None:
    # As the media fetcher leaves a received photo: stored, no thumbnail yet.
    store = blob_store(settings, mongo_db)  # the gateway's
    image = await store.put(media_samples.png(400, 200))
    received = ready_doc(
        user_id="alice", conversation_id="a_conv", blob=image, kind="image", name="photo.png"
    )
    await mongo_db[ATTACHMENTS].insert_one(received)
    async with as_user("alice") as alice, as_user("bob") as bob:
        url = f"/api/attachments/{received['_id']}/thumbnail"
        assert (await bob.get(url)).status_code == 404  # still the owner's only
        first = await alice.get(url)
        assert (first.status_code, first.headers["content-type"]) == (200, "image/jpeg")
        assert Image.open(io.BytesIO(first.content)).size == (64, 32)
        stored = await mongo_db[ATTACHMENTS].find_one({"_id": received["_id"]})
        assert stored is not None and stored["thumbnailSha256"]
        again = await alice.get(url)  # made once: the stored one
        assert (again.content, again.headers["etag"]) == (
            first.content,
            f'"{stored["thumbnailSha256"]}"',
        )
    # Bytes no decoder reads: tried once, then 404 without decoding again.
    broken = await store.put(b"\x89PNG\r\n\x1a\n" + b"\0" * 500)
    bad = ready_doc(
        user_id="alice", conversation_id="a_conv", blob=broken, kind="image", name="bad.png"
    )
    await mongo_db[ATTACHMENTS].insert_one(bad)
    async with as_user("alice") as alice:
        assert (await alice.get(f"/api/attachments/{bad['_id']}/thumbnail")).status_code == 404
    tried = await mongo_db[ATTACHMENTS].find_one({"_id": bad["_id"]})
    assert tried is not None and tried["thumbnailTried"] and tried["thumbnailSha256"] is None


async def test_signed_url_works_without_a_token_until_it_expires(
    gw: RunningGateway, as_user: Callable[[str], httpx.AsyncClient]
) -> None:
    settings = gw.app.settings.model_copy(update={"public_url": gw.base_url})
    async with as_user("alice") as alice, httpx.AsyncClient() as anonymous:
        made = (await _upload(alice, media_samples.pdf(), "report.pdf")).json()
        url = signed_url(settings, made["id"])
        got = await anonymous.get(url)
        assert (got.status_code, got.content) == (200, media_samples.pdf())
        tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
        assert (await anonymous.get(tampered)).status_code == 404
        expired = signed_url(settings, made["id"], now=0)
        assert (await anonymous.get(expired)).status_code == 404
        # A file URL's signature does not open the thumbnail, nor another attachment.
        other = (await _upload(alice, media_samples.gif(), "x.gif")).json()
        assert (await anonymous.get(url.replace(made["id"], other["id"]))).status_code == 404


async def test_a_reply_carries_its_uploads_onto_the_send_command(
    gw: RunningGateway,
    as_user: Callable[[str], httpx.AsyncClient],
    mongo_db: AsyncDatabase[Document],
) -> None:
    async with as_user("alice") as alice, as_user("bob") as bob:
        photo = (await _upload(alice, media_samples.png(10, 10), "p.png")).json()
        theirs = (await _upload(bob, media_samples.gif(), "g.gif", conv="b_conv")).json()
        url = "/api/conversations/a_conv/messages"
        refused = await alice.post(
            url, json={"clientMessageId": "c-0", "attachments": [theirs["id"]]}
        )
        assert refused.status_code == 404
        sent = await alice.post(url, json={"clientMessageId": "c-1", "attachments": [photo["id"]]})
        assert sent.status_code == 202, sent.text
        too_many = await alice.post(
            url, json={"clientMessageId": "c-2", "text": "x", "attachments": ["a"] * 11}
        )
        assert too_many.status_code == 422

    topic = gw.app.runtime.topics.commands
    commands = [parse_command(r.value) for r in await read_topic(gw.app.settings, topic)]
    assert len(commands) == 1
    command = commands[0]
    assert isinstance(command, SendMessage)
    assert command.text == ""
    assert [a.id for a in command.attachments] == [photo["id"]]
    assert command.attachments[0].sha256 == hashlib.sha256(media_samples.png(10, 10)).hexdigest()
    doc = await mongo_db[ATTACHMENTS].find_one({"_id": photo["id"]})
    assert doc is not None and doc["messageId"] == sent.json()["id"]
