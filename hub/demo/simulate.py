"""`hub simulate`: signed webhooks of every platform at a steady rate, with a summary."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from hub.demo import payloads
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
    seconds: float = 0.0

    def line(self) -> str:
        codes = ", ".join(f"{code}: {n}" for code, n in sorted(self.statuses.items()))
        rate = self.sent / self.seconds if self.seconds else 0.0
        return (
            f"sent {self.sent}, accepted {self.accepted}, rejected {self.rejected}, "
            f"failed {self.failed} in {self.seconds:.1f}s ({rate:.1f}/s)"
            + (f"; status codes {codes}" if codes else "")
        )


def build_request(account: Account, traffic: FakeTraffic, seq: int) -> payloads.WebhookRequest:
    """One signed webhook for `account` carrying a fresh fake message."""
    msg = traffic.message(account.id)
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


async def simulate(
    base_url: str,
    accounts: list[Account],
    *,
    rate: float,
    duration: float,
    seed: int | None = None,
    concurrency: int = 64,
    on_sent: Callable[[Summary], None] | None = None,
) -> Summary:
    """Send `rate` webhooks per second for `duration` seconds, spread over `accounts`."""
    if not accounts:
        raise ValueError("no accounts to simulate")
    traffic = FakeTraffic(seed)
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    summary = Summary()
    limit = asyncio.Semaphore(concurrency)
    total = max(1, int(rate * duration))
    seq = itertools.count(rng.randrange(10**6, 10**7))

    async def send(client: httpx.AsyncClient, account: Account) -> None:
        req = build_request(account, traffic, next(seq))
        try:
            resp = await client.post(req.path, content=req.body, headers=req.headers)
        except httpx.HTTPError:
            summary.failed += 1
        else:
            summary.statuses[resp.status_code] += 1
            if resp.is_success:
                summary.accepted += 1
                summary.by_platform[account.platform] += 1
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
            task = asyncio.create_task(send(client, rng.choice(accounts)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
    summary.seconds = time.monotonic() - started
    return summary
