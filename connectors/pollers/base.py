"""The loop every poller shares - poll, commit after the ack, back off on errors, stop
cleanly - and where each poller is in its source (`POLL_STATE`).

Stopping interrupts only the waiting (a long poll, the pause between polls), never a
commit: a batch that was produced also gets its position saved, so a restart neither
re-emits nor skips.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

import structlog
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from connectors.errors import BadPayload, ConnectorError
from connectors.metrics import POLLERS, POLLS
from connectors.platforms.base import Change
from connectors.publisher import Publisher
from hubcore.accounts import Account
from hubcore.mongo import POLL_STATE, Document
from hubcore.retry import Backoff
from hubcore.settings import Settings
from schemas import RawMessage
from schemas.base import utc_now

T = TypeVar("T")


class Fenced(Exception):
    """A newer lease holder saved this poller's position: this one must stop."""


class PollState:
    """One document per poller, `_id` = `<platform>:<account id>`."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db[POLL_STATE]

    async def load(self, key: str) -> Document:
        """The saved position (empty when the poller never committed one)."""
        doc = await self.collection.find_one({"_id": key})
        return dict(doc) if doc else {}

    async def save(self, key: str, fence: int | None = None, **values: Any) -> None:
        """Record a new position; with `fence` (a lease token, connectors/pollers/lease.py)
        only if no newer token saved one, else `Fenced`."""
        doc = {**values, "updatedAt": utc_now()}
        query: Document = {"_id": key}
        if fence is not None:
            doc["leaseToken"] = fence
            query["$or"] = [{"leaseToken": {"$lte": fence}}, {"leaseToken": {"$exists": False}}]
        result = await self.collection.update_one(query, {"$set": doc})
        if result.matched_count:
            return
        try:
            await self.collection.insert_one({"_id": key, **doc})
        except DuplicateKeyError:
            if fence is None:  # a concurrent first save: last writer wins, as before
                await self.collection.update_one({"_id": key}, {"$set": doc})
                return
            raise Fenced(f"{key}: a newer lease holder saved its position") from None


class Poller(ABC):
    """Polls one account until stopped."""

    platform: str

    def __init__(
        self, account: Account, settings: Settings, publisher: Publisher, state: PollState
    ) -> None:
        self.account = account
        self.settings = settings
        self.publisher = publisher
        self.state = state
        self.key = f"{self.platform}:{account.id}"
        self.log = structlog.get_logger(f"connectors.poll.{self.platform}").bind(
            account_id=account.id, user_id=account.user_id
        )
        self.fence: int | None = None  # the lease token it polls under, if leases are used
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @abstractmethod
    async def poll_once(self) -> bool:
        """One round: fetch, produce, commit. True when more is waiting right away."""

    @property
    def idle_delay(self) -> float:
        """Pause after a round that found nothing new."""
        return self.settings.poll_interval

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; called once when the loop ends."""

    async def commit(
        self,
        records: Sequence[RawMessage],
        poison: Sequence[tuple[bytes, BadPayload]],
        fetched: int,
        *,
        changes: Sequence[Change] = (),
        parts: Mapping[str, bytes] | None = None,
        **position: Any,
    ) -> None:
        """Produce a round's records, changes and dead letters, then - only once Kafka
        acked them all - save the new `position`, and log the round."""
        published = await self.publisher.publish(records, source="poll", parts=parts)
        await self.publisher.commands(changes)
        for payload, error in poison:
            await self.publisher.dead_letter(
                reason=str(error),
                error_type=type(error).__name__,
                platform=self.platform,
                account_id=self.account.id,
                payload=payload,
            )
        await self.state.save(self.key, self.fence, **position)
        self.log.info(
            "poll",
            fetched=fetched,
            produced=published.produced,
            duplicates=published.duplicates,
            dead_letters=len(poison),
            changes=len(changes),
            **position,
        )

    def start(self) -> None:
        """Run the loop in a task."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"poll-{self.key}")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Ask the loop to end after its current commit; cancel it only if that hangs."""
        self._stopping.set()
        if self._task is None:
            return
        grace = self.settings.kafka_request_timeout + self.settings.imap_timeout + 5
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def until_stopped(self, work: Awaitable[T]) -> T | None:
        """`work`'s result, or None (work cancelled) as soon as a stop is asked for."""
        task = asyncio.ensure_future(work)
        stopper = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _run(self) -> None:
        POLLERS.labels(self.platform).inc()
        self.log.info("poller started")
        # One account's failures (a bad token, a dead server) back off that account only.
        s = self.settings
        backoff = Backoff(first=s.poll_interval, max_delay=max(s.poll_interval, s.poll_max_backoff))
        failures = 0
        try:
            while not self._stopping.is_set():
                try:
                    more = await self.poll_once()
                except Fenced as exc:
                    self.log.warning("poller lease lost", error=str(exc))
                    return
                except Exception as exc:  # no account's failure may end its polling for good
                    failures += 1
                    POLLS.labels(self.platform, "error").inc()
                    wait = backoff.delay(failures, getattr(exc, "retry_after", None))
                    known = isinstance(exc, ConnectorError | PyMongoError | OSError)
                    self.log.warning(
                        "poll failed",
                        error=str(exc) if known else type(exc).__name__,
                        failures=failures,
                        retry_in=round(wait, 3),
                        # A bug's traceback once per run of failures, not every round.
                        exc_info=not known and failures == 1,
                    )
                    await self._pause(wait)
                    continue
                failures = 0
                POLLS.labels(self.platform, "ok").inc()
                if not more:
                    await self._pause(self.idle_delay)
        finally:
            with contextlib.suppress(Exception):
                await self.close()
            POLLERS.labels(self.platform).dec()
            self.log.info("poller stopped")
