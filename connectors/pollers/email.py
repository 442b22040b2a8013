"""IMAP polling: new mail by UID, position (UIDVALIDITY, last UID) saved after the ack.

A UIDVALIDITY different from the saved one means the server renumbered the mailbox: the
poller reads it again from the start, and the Message-ID based ids make every mail it had
already produced the same message again (dropped downstream).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from connectors.blocking import imap_lane
from connectors.errors import BadPayload, PollError
from connectors.platforms.email import FetchedMail, email_message
from connectors.pollers.base import Poller, PollState
from connectors.pollers.imap import ImapMailbox
from connectors.publisher import Publisher
from hubcore.accounts import Account
from hubcore.outbound import OutboundPolicy
from hubcore.settings import Settings
from schemas import RawMessage
from schemas.base import utc_now

T = TypeVar("T")

_TICK = timedelta(microseconds=1)


class EmailPoller(Poller):
    """Reads one mailbox of one account."""

    platform = "email"

    def __init__(
        self, account: Account, settings: Settings, publisher: Publisher, state: PollState
    ) -> None:
        super().__init__(account, settings, publisher, state)
        self.mailbox = ImapMailbox.from_credentials(
            account.credentials,
            settings.imap_timeout,
            OutboundPolicy.from_settings(settings),
            settings.email_max_bytes,
        )
        self.lane = imap_lane(settings)
        # Each mail's receipt time, strictly increasing in UID order: a thread is ordered by
        # it, and ties would fall to the ids, which a sender chooses through `Message-ID`.
        self._received = datetime.min.replace(tzinfo=UTC)

    async def close(self) -> None:
        if self.mailbox.busy:  # a call still blocked on the server: end it (it closes)
            self.mailbox.abort()
        else:
            await self._imap(self.mailbox.close)

    async def _imap(self, call: Callable[..., T], *args: object) -> T:
        return await self.lane.run(self.account.user_id, call, *args)

    async def poll_once(self) -> bool:
        saved = await self.state.load(self.key)
        if self.mailbox.busy:  # the last poll's deadline cut a call that has not ended yet
            raise PollError(f"IMAP {self.mailbox.host[:100]}: the previous call has not ended")
        # The IMAP calls together within a deadline: a server that answers slowly, or
        # never, holds this account's poll (and a thread) no longer than that.
        try:
            async with asyncio.timeout(self.settings.imap_poll_deadline):
                read = await self._read(saved)
        except TimeoutError:
            self.mailbox.abort()
            raise PollError(
                f"IMAP {self.mailbox.host[:100]}: no answer within the poll's deadline "
                f"({self.settings.imap_poll_deadline:g} s, HUB_IMAP_POLL_DEADLINE)"
            ) from None
        if read is None:
            return False
        validity, batch, mails, more = read
        # MIME and HTML parsing off the event loop: anyone can mail an account.
        parts: dict[str, bytes] = {}  # attachment id -> its bytes, for the fetch jobs
        records, poison = await asyncio.to_thread(self._normalize, mails, validity, parts)
        # Past the whole batch, also UIDs that vanished (expunged) between SEARCH and FETCH.
        await self.commit(
            records, poison, len(mails), parts=parts, uidValidity=validity, lastUid=max(batch)
        )
        return more

    async def _read(
        self, saved: dict[str, Any]
    ) -> tuple[int, list[int], list[FetchedMail], bool] | None:
        """(UIDVALIDITY, the batch's UIDs, its mails, whether more wait); None: no new mail."""
        validity = await self._imap(self.mailbox.open)
        last_uid = int(saved.get("lastUid", 0))
        if saved and saved.get("uidValidity") != validity:
            self.log.warning(
                "UIDVALIDITY changed, reading the mailbox again",
                saved=saved.get("uidValidity"),
                now=validity,
            )
            last_uid = 0
        uids = await self._imap(self.mailbox.uids_after, last_uid)
        if not uids:
            if not saved:  # remember the validity of an empty mailbox too
                await self.state.save(self.key, self.fence, uidValidity=validity, lastUid=0)
            return None
        batch = uids[: self.settings.email_fetch_batch]
        mails = await self._imap(self.mailbox.fetch, batch)
        return validity, batch, mails, len(uids) > len(batch)

    def _normalize(
        self, mails: list[FetchedMail], validity: int, parts: dict[str, bytes]
    ) -> tuple[list[RawMessage], list[tuple[bytes, BadPayload]]]:
        records: list[RawMessage] = []
        poison: list[tuple[bytes, BadPayload]] = []
        for mail in sorted(mails, key=lambda m: m.uid):
            received_at = self._received = max(utc_now(), self._received + _TICK)
            try:
                records.append(
                    email_message(
                        self.account,
                        mail,
                        mailbox=self.mailbox.mailbox,
                        uid_validity=validity,
                        received_at=received_at,
                        parts=parts,
                    )
                )
            except BadPayload as exc:
                poison.append((mail.source, exc))
        return records, poison
