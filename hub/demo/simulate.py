"""`hub simulate`: signed webhooks of every platform at a steady rate, with a summary;
a share of them edit or delete a message sent before (where the platform tells that)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from hub.demo import payloads
from hub.demo.changes import change_request
from hub.demo.fake import FakeTraffic
from hubcore.accounts import Account


@dataclass
class Summary:
    """What happened to the webhooks sent."""

    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0  # no HTTP answer at all (connection refused, timeout)
    statuses: Counter[int] = field(default_factory=Counter)
    by_platform: Counter[str] = field(default_factory=Counter)
    edits: int = 0
    deletes: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        codes = ", ".join(f"{code}: {n}" for code, n in sorted(self.statuses.items()))
        rate = self.sent / self.seconds if self.seconds else 0.0
        return (
            f"sent {self.sent}, accepted {self.accepted}, rejected {self.rejected}, "
            f"failed {self.failed} in {self.seconds:.1f}s ({rate:.1f}/s)"
            + (f", of them {self.edits} edits and {self.deletes} deletes accepted")
            + (f"; status codes {codes}" if codes else "")
        )


# Platforms whose webhooks tell edits (all three) and deletes (not Telegram's Bot API).
EDITABLE = frozenset({"telegram", "slack", "generic"})
DELETABLE = frozenset({"slack", "generic"})
RECENT_MAX = 200
# The files the demo's messages carry, in turn (hub/demo/media_files.py).
MEDIA_KINDS = ("photo", "voice", "pdf")


def build_request(account: Account, msg: payloads.FakeMessage, seq: int) -> payloads.WebhookRequest:
    """One signed webhook for `account` carrying the new message `msg`."""
    creds = account.credentials
    if account.platform == "telegram":
        return payloads.telegram(account.id, creds, msg, update_id=seq)
    if account.platform == "whatsapp":
        return payloads.whatsapp(account.id, account.external_id, creds, msg)
    if account.platform == "slack":
        return payloads.slack(account.id, account.external_id, creds, msg)
    if account.platform == "generic":
        return payloads.generic(account.id, creds, msg)
    raise ValueError(f"no webhook simulation for platform {account.platform!r}")


@dataclass(frozen=True)
class _Webhook:
    """One webhook to send: a new message, or an edit or delete of an earlier one."""

    request: payloads.WebhookRequest
    account: Account
    msg: payloads.FakeMessage
    kind: str  # "message", "edit" or "delete"


@dataclass
class _Plan:
    """What the simulator sends next; remembers accepted messages that can change."""

    rng: random.Random
    traffic: FakeTraffic
    changes: float
    media: float = 0.0
    files_url: str = ""
    recent: list[tuple[Account, payloads.FakeMessage]] = field(default_factory=list)

    def next(self, accounts: list[Account], seq: int) -> _Webhook:
        if self.recent and self.rng.random() < self.changes:
            account, msg = self.recent[self.rng.randrange(len(self.recent))]
            if account.platform in DELETABLE and self.rng.random() < 0.4:
                self.recent.remove((account, msg))  # never deleted twice
                delete = change_request(account, msg, None, seq)
                if delete is not None:
                    return _Webhook(delete, account, msg, "delete")
            edit = change_request(account, msg, f"{msg.text} (edited)", seq)
            if edit is not None:
                return _Webhook(edit, account, msg, "edit")
        account = self.rng.choice(accounts)
        msg = self.traffic.message(account.id)
        if self.files_url and self.rng.random() < self.media:
            kind = MEDIA_KINDS[seq % len(MEDIA_KINDS)]
            msg = dataclasses.replace(msg, media=kind, files_url=self.files_url)
        return _Webhook(build_request(account, msg, seq), account, msg, "message")

    def accepted(self, hook: _Webhook, summary: Summary) -> None:
        summary.accepted += 1
        summary.by_platform[hook.account.platform] += 1
        if hook.kind == "edit":
            summary.edits += 1
        elif hook.kind == "delete":
            summary.deletes += 1
        elif hook.account.platform in EDITABLE:
            self.recent.append((hook.account, hook.msg))
            del self.recent[:-RECENT_MAX]


async def simulate(
    base_url: str,
    accounts: list[Account],
    *,
    rate: float,
    duration: float,
    seed: int | None = None,
    concurrency: int = 64,
    changes: float = 0.1,
    media: float = 0.1,
    files_url: str | None = None,
    on_sent: Callable[[Summary], None] | None = None,
) -> Summary:
    """Send `rate` webhooks per second for `duration` seconds, spread over `accounts`; a
    `changes` share of them edit or delete one of the messages sent before, and with the
    platform stand-ins at `files_url` a `media` share carry a photo, a voice note or a PDF."""
    if not accounts:
        raise ValueError("no accounts to simulate")
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    summary = Summary()
    plan = _Plan(rng, FakeTraffic(seed), changes, media, files_url or "")
    limit = asyncio.Semaphore(concurrency)
    total = max(1, int(rate * duration))
    seq = itertools.count(rng.randrange(10**6, 10**7))

    async def send(client: httpx.AsyncClient) -> None:
        hook = plan.next(accounts, next(seq))
        req = hook.request
        try:
            resp = await client.post(req.path, content=req.body, headers=req.headers)
        except httpx.HTTPError:
            summary.failed += 1
        else:
            summary.statuses[resp.status_code] += 1
            if resp.is_success:
                plan.accepted(hook, summary)
            else:
                summary.rejected += 1
        finally:
            limit.release()
            if on_sent:
                on_sent(summary)

    started = time.monotonic()
    tasks: set[asyncio.Task[None]] = set()
    async with httpx.AsyncClient(base_url=base_url, timeout=15.0) as client:
        for i in range(total):
            # Pace by the schedule, not by the previous send, so slow answers do not
            # lower the offered rate.
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await limit.acquire()
            summary.sent += 1
            task = asyncio.create_task(send(client))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
    summary.seconds = time.monotonic() - started
    return summary
