"""Open-loop end-to-end load (P3): webhooks at a fixed rate, their `new_message` frames timed.

One WebSocket per user is authenticated first; then webhook n is sent at `n / rate`
seconds whatever the answers do (open loop, so a slow hub cannot slow the load down),
and its latency is the time from its scheduled send to the arrival of the
`new_message` frame carrying its text. Sender and receiver share this process's clock.
With `media` (P3m, P7m: `bench/media_mix.py`) one webhook in ten carries a file in a
Telegram or WhatsApp format instead (its frame matched by the message id it will have);
the text and media messages' latencies are then reported apart, and each media message's
time until a `message_updated` frame shows its attachment no longer pending (`ready` or
`failed`) beside them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiohttp
import orjson
import websockets

from bench import media_mix
from bench.arrivals import Arrivals
from bench.data import signature_header, webhook_body
from bench.hops import HopProbe
from bench.stats import Latency

_TAG = "bench-e2e "  # text = tag + sequence number: how an arriving frame is matched
_DRAIN_SECONDS = 60.0  # after the last send, how long stragglers may take


class MediaTimes:
    """The media messages of a run: their hub ids, and when their files settled."""

    def __init__(self, ids: dict[str, int]) -> None:
        self.ids = ids  # hub message id -> sequence number
        self.settled: dict[int, float] = {}
        self.failed: dict[str, int] = {}  # reason -> count
        self._all = asyncio.Event()
        if not ids:
            self._all.set()

    def update(self, message: dict[str, Any], at: float) -> None:
        """A `message_updated` frame's message: settled once no attachment is pending."""
        n = self.ids.get(str(message.get("id")))
        attachments = message.get("attachments") or []
        if n is None or n in self.settled or not attachments:
            return
        if any(a.get("status") == "pending" for a in attachments):
            return
        self.settled[n] = at
        for a in attachments:
            if a.get("status") == "failed":
                reason = str(a.get("reason"))
                self.failed[reason] = self.failed.get(reason, 0) + 1
        if len(self.settled) >= len(self.ids):
            self._all.set()

    async def drain(self, timeout: float) -> None:
        """Wait until every media message settled, or `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all.wait(), timeout)


async def _receive(
    ws_url: str, token: str, times: Arrivals, ready: asyncio.Event, media: MediaTimes
) -> None:
    async with websockets.connect(ws_url, max_size=None, open_timeout=30) as ws:
        await ws.send(orjson.dumps({"type": "authenticate", "token": token}).decode())
        answer = orjson.loads(await ws.recv())
        if answer.get("type") != "authenticated":
            raise RuntimeError(f"not authenticated: {answer}")
        ready.set()
        async for raw in ws:
            now = time.perf_counter()
            frame = orjson.loads(raw)
            kind = frame.get("type")
            if kind == "new_message":
                message = frame["data"]["message"]
                text = str(message["text"])
                if text.startswith(_TAG):
                    times.arrive(int(text.removeprefix(_TAG)), now)
                elif (n := media.ids.get(str(message["id"]))) is not None:
                    times.arrive(n, now)  # a voice note has no caption to carry the tag
            elif kind == "message_updated" and media.ids:
                media.update(frame["data"]["message"], now)


async def run(
    connectors: str,
    ws_url: str,
    accounts: list[dict[str, str]],
    secret: str,
    rate: float,
    duration: float,
    warmup: float,
    *,
    run_id: str = "p3",
    hops: dict[str, str] | None = None,
    media: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Send `rate` webhooks/s for `warmup + duration` s round-robin over `accounts`
    ({id, token}); latencies of the messages sent after `warmup`. With `hops`
    ({bootstrap, raw, events}: the stage's broker and topics) each latency is split
    into its hops (`bench/hops.py`). With `media` ({accounts: per account its user's
    {telegram, whatsapp} accounts, files: the file stand-ins' URL}) one webhook in ten
    carries a file (`bench/media_mix.py`)."""
    times = Arrivals(int(rate * (warmup + duration)))
    requests = [
        (
            f"/webhooks/generic/{accounts[n % len(accounts)]['id']}",
            signature_header(secret, body),
            body,
        )
        for n, body in ((n, webhook_body(run_id, n, text=f"{_TAG}{n}")) for n in range(times.total))
    ]
    ids: dict[str, int] = {}
    if media is not None:
        for n in filter(media_mix.is_media, range(times.total)):
            user = n % len(accounts)
            path, headers, body, expected = media_mix.media_webhook(
                n, run_id, user, media["accounts"][user], f"{_TAG}{n}", media["files"]
            )
            requests[n] = (path, headers, body)
            ids[expected] = n
    files = MediaTimes(ids)
    answered: list[float] = []
    errors: list[str] = []
    readies = [asyncio.Event() for _ in accounts]
    receivers = [
        asyncio.create_task(_receive(ws_url, a["token"], times, ready, files))
        for a, ready in zip(accounts, readies, strict=True)
    ]
    timeout = aiohttp.ClientTimeout(total=30)
    probe = None if hops is None else HopProbe(hops["bootstrap"], hops["raw"], hops["events"], _TAG)
    try:
        if probe is not None:
            await probe.start()
        async with asyncio.timeout(60):
            await asyncio.gather(*(r.wait() for r in readies))
        async with aiohttp.ClientSession(timeout=timeout) as http:

            async def post(n: int) -> None:
                path, headers, body = requests[n]
                try:
                    async with http.post(
                        f"{connectors}{path}", data=body, headers=headers
                    ) as answer:
                        await answer.read()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    # Past the knee the connectors stop answering in time: a lost message.
                    if len(errors) < 5:
                        errors.append(repr(exc))
                    return
                answered.append(time.perf_counter() - times.sent[n])
                if answer.status != 200 and len(errors) < 5:
                    errors.append(str(answer.status))

            posts = [asyncio.create_task(post(n)) async for n in times.paced(rate)]
            await asyncio.gather(*posts)
        drained = time.perf_counter()
        await times.drain(_DRAIN_SECONDS)
        # One budget for both: the scenario gives a run its duration plus 120 s.
        await files.drain(max(1.0, _DRAIN_SECONDS - (time.perf_counter() - drained)))
    finally:
        if probe is not None:
            await probe.stop()
        for task in receivers:
            task.cancel()
        for task in receivers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    skip = int(rate * warmup)
    measured = times.latencies(skip)
    split = {} if media is None else media_split(times, files, skip)
    return {
        "rate": rate,
        "seconds": duration,
        "delivered": len(measured),
        "lost": times.total - skip - len(measured),
        **(Latency.of_seconds(measured).as_dict() if measured else {}),
        "webhook_answer": Latency.of_seconds(answered).as_dict() if answered else {},
        "errors": errors,
        **(
            {}
            if probe is None
            else {"hops": probe.split(times.sent, times.arrived, range(skip, times.total))}
        ),
        **split,
    }


def media_split(times: Arrivals, files: MediaTimes, skip: int) -> dict[str, Any]:
    """The text and the media messages' latencies apart (items `skip`..), the media ones'
    time until their files settled, and how many never did or failed."""

    def latency(ns: list[int], until: dict[int, float]) -> dict[str, Any]:
        seconds = [until[n] - times.sent[n] for n in ns if n in until and n in times.sent]
        return Latency.of_seconds(seconds).as_dict() if seconds else {"count": 0}

    numbers = range(skip, times.total)
    text = [n for n in numbers if not media_mix.is_media(n)]
    media = [n for n in numbers if media_mix.is_media(n)]
    return {
        "text": latency(text, times.arrived),
        "media": latency(media, times.arrived),
        "media_settled": latency(media, files.settled),
        "media_unsettled": sum(1 for n in media if n not in files.settled),
        "media_failed": dict(files.failed),
    }
