"""P3m and P7m: media in the webhook mix (issue 24).

Every `EVERY`-th webhook of a run carries a file instead of plain text, in the platform's
own format (`hub.demo.payloads`): a Telegram photo (two sizes, the caption the bench text),
a WhatsApp voice note (no caption) and a Telegram PDF document, in turn. The text
webhooks are P3's generic ones, unchanged. The files are served by `python -m
bench.media_mix --port N`, a child process running the demo's platform file stand-ins
(`hub.demo.media_files`: Telegram `getFile` and its file endpoint, WhatsApp's media URL
and its download) with files of realistic sizes, each reference its own bytes (so every
fetch stores a new blob, as real traffic does); the connectors' media fetcher fetches
them into GridFS as it would from the platforms (`HUB_TELEGRAM_API_BASE` and
`HUB_WHATSAPP_API_BASE` point at the child).
"""

from __future__ import annotations

import argparse
import io
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.stats import ratio
from hub.demo import payloads
from hub.demo.media_files import OGG, PDF, MediaFiles
from hubcore.accounts import Account, AccountStore
from hubcore.mongo import create_client, database
from hubcore.settings import Settings
from schemas import message_id

EVERY = 10  # one webhook in ten carries a file
KINDS = ("photo", "voice", "pdf")
PLATFORM = {"photo": "telegram", "voice": "whatsapp", "pdf": "telegram"}
# Sizes of the served files: a phone photo as Telegram recompresses it, its smallest
# size (the thumbnail), a few seconds of Opus, a short PDF.
PHOTO_BYTES, THUMB_BYTES, VOICE_BYTES, PDF_BYTES = 120_000, 6_000, 24_000, 100_000
_T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def is_media(n: int) -> bool:
    """True for the webhooks of a run that carry a file (the 10th, 20th, ...)."""
    return n % EVERY == EVERY - 1


def kind_of(n: int) -> str:
    """The file media webhook `n` carries: photo, voice, pdf in turn."""
    return KINDS[(n // EVERY) % len(KINDS)]


def run_base(run_id: str) -> int:
    """A run's first Telegram message id (ints, unique per chat): runs of a stage differ."""
    return (zlib.crc32(run_id.encode()) % 100_000) * 10_000_000


@dataclass(frozen=True, slots=True)
class MediaAccount:
    """A user's Telegram or WhatsApp account, as the load generator needs it."""

    id: str
    external_id: str
    credentials: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "external_id": self.external_id, "credentials": self.credentials}


def media_webhook(
    n: int, run_id: str, user: int, accounts: dict[str, dict[str, Any]], text: str, files: str
) -> tuple[str, dict[str, str], bytes, str]:
    """Webhook `n` with its file, of user number `user` ({platform: account}):
    (path, headers, body, the hub message id its `new_message` will carry)."""
    kind = kind_of(n)
    platform = PLATFORM[kind]
    account = accounts[platform]
    number = run_base(run_id) + n
    sent_at = _T0 + timedelta(milliseconds=n)
    if platform == "telegram":
        chat, sender = str(1_000_000_000 + user), str(5_000 + user)
    else:
        chat = sender = f"1555{user:07d}"
    msg = payloads.FakeMessage(
        chat_id=chat,
        chat_title=f"Bench {user}",
        sender_id=sender,
        sender_name="Ada Lovelace",
        message_id=str(number),
        text=text,
        sent_at=sent_at,
        media=kind,
        files_url=files,
    )
    if platform == "telegram":
        message = payloads.telegram_message(msg)
        if kind == "photo":  # the sizes as Telegram gives them: the thumbnail first
            message["photo"][0].update(width=90, height=68, file_size=THUMB_BYTES)
            message["photo"][1].update(width=640, height=480, file_size=PHOTO_BYTES)
        update = {"update_id": number, "message": message}
        req = payloads.signed_telegram(account["id"], account["credentials"], update)
        expected = message_id("telegram", account["id"], chat, str(number))
    else:
        req = payloads.whatsapp(account["id"], account["external_id"], account["credentials"], msg)
        expected = message_id("whatsapp", account["id"], chat, f"wamid.{number}")
    return req.path, req.headers, req.body, expected


def media_figures(e2e: Mapping[str, Any], plain: Mapping[str, Any] | None) -> dict[str, Any]:
    """P3m's and P7m's figures of one open loop (`bench.load_e2e` with media): every
    message's p50/p99, the text and media messages' apart, the files' settling, and the
    text p99 over `plain`'s p99 (P3 or a P7 step of the same invocation) as `ratio`."""
    text, media, settled = e2e["text"], e2e["media"], e2e["media_settled"]
    out: dict[str, Any] = {
        "p50_ms": e2e.get("p50_ms"),
        "p99_ms": e2e.get("p99_ms"),
        "text_p50_ms": text.get("p50_ms"),
        "text_p99_ms": text.get("p99_ms"),
        "media_p50_ms": media.get("p50_ms"),
        "media_p99_ms": media.get("p99_ms"),
        "media_messages": media.get("count", 0),
        "media_settled_p50_ms": settled.get("p50_ms"),
        "media_settled_p99_ms": settled.get("p99_ms"),
        "media_unsettled": e2e["media_unsettled"],
        "media_failed": e2e["media_failed"],
    }
    return {**out, **against_plain(out["text_p99_ms"], plain)}


def against_plain(text_p99: float | None, plain: Mapping[str, Any] | None) -> dict[str, Any]:
    """`ratio`: the text messages' p99 with media in the mix over plain P3's p99 of the
    same invocation (1.0: unchanged), or none with `ratio_note` saying why."""
    if plain is None or "error" in plain:
        why = "P3 did not run" if plain is None else "P3 failed"
        return {"ratio": None, "ratio_note": f"{why} in this invocation: no ratio"}
    if text_p99 is None:
        return {"ratio": None, "ratio_note": "no text message arrived"}
    return {"ratio": ratio(text_p99, float(plain["p99_ms"])), "baseline_p99_ms": plain["p99_ms"]}


def files_all_ready(r: Mapping[str, Any]) -> bool:
    """Every measured media message's files settled, none failed."""
    return r["media_messages"] > 0 and not r["media_unsettled"] and not r["media_failed"]


async def media_accounts(settings: Settings, users: list[str]) -> list[dict[str, Any]]:
    """A Telegram and a WhatsApp account per user ({platform: account dict}), with
    credentials the file stand-ins take (they take any token)."""
    client = create_client(settings.mongo_url)
    out: list[dict[str, Any]] = []
    try:
        store = AccountStore(database(client, settings), settings)
        for i, user in enumerate(users):
            secret = f"bench-media-secret-{i}"
            made: dict[str, Account] = {
                "telegram": await store.create(
                    user,
                    "telegram",
                    str(2_000_000_000 + i),
                    {"botToken": f"123456:bench{i}", "webhookSecret": secret},
                ),
                "whatsapp": await store.create(
                    user,
                    "whatsapp",
                    str(100_000_000_000_000 + i),
                    {"appSecret": secret, "verifyToken": "bench", "accessToken": f"EAAG-{i}"},
                ),
            }
            out.append(
                {
                    platform: MediaAccount(a.id, a.external_id, a.credentials).as_dict()
                    for platform, a in made.items()
                }
            )
    finally:
        await client.close()
    return out


def _jpeg(width: int, height: int, target: int) -> bytes:
    """A noisy JPEG of about `target` bytes (noise compresses as badly as a photo)."""
    from PIL import Image

    quality = 90
    while True:
        out = io.BytesIO()
        Image.effect_noise((width, height), 40).convert("RGB").save(out, "JPEG", quality=quality)
        if out.tell() <= target or quality <= 20:
            return out.getvalue()
        quality -= 10


class BenchFiles(MediaFiles):
    """The demo's file stand-ins, every `demo-<kind>-...` reference its own bytes: the
    kind's sample of realistic size followed by the reference."""

    def __init__(self) -> None:
        super().__init__("", "", "", any_token=True)
        self.samples = {
            "photo": (_jpeg(640, 480, PHOTO_BYTES), "image/jpeg"),
            "thumb": (_jpeg(90, 68, THUMB_BYTES), "image/jpeg"),
            "voice": (OGG + os.urandom(VOICE_BYTES - len(OGG)), "audio/ogg"),
            "pdf": (PDF + b"%" + os.urandom(PDF_BYTES - len(PDF) - 1), "application/pdf"),
        }

    def file(self, ref: str) -> tuple[bytes, str] | None:
        name = ref.rpartition("/")[2]
        kind, _, rest = name.partition("-")[2].partition("-")
        kind = "thumb" if kind == "photo" and rest.endswith("-s") else kind
        found = self.samples.get(kind) if name.startswith("demo-") else None
        return None if found is None else (found[0] + name.encode(), found[1])


async def _health(_: Request) -> Response:
    return Response("ok")


def main() -> None:
    """Serve the file stand-ins on 127.0.0.1:`--port` until stopped."""
    parser = argparse.ArgumentParser(prog="python -m bench.media_mix")
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    app = Starlette(routes=[Route("/health", _health), *BenchFiles().routes()])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
