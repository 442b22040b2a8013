"""IMAP polling: new mail by UID, position (UIDVALIDITY, last UID) saved after the ack.

A UIDVALIDITY different from the saved one means the server renumbered the mailbox: the
poller reads it again from the start, and the Message-ID based ids make every mail it had
already produced the same message again (dropped downstream).
"""

from __future__ import annotations

import asyncio

from connectors.errors import BadPayload
from connectors.platforms.email import FetchedMail, email_message
from connectors.pollers.base import Poller, PollState
from connectors.pollers.imap import ImapMailbox
from connectors.publisher import Publisher
from hubcore.accounts import Account
from hubcore.outbound import OutboundPolicy
from hubcore.settings import Settings
from schemas import RawMessage
from schemas.base import utc_now


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

    async def close(self) -> None:
        await asyncio.to_thread(self.mailbox.close)

    async def poll_once(self) -> bool:
        saved = await self.state.load(self.key)
        validity = await asyncio.to_thread(self.mailbox.open)
        last_uid = int(saved.get("lastUid", 0))
        if saved and saved.get("uidValidity") != validity:
            self.log.warning(
                "UIDVALIDITY changed, reading the mailbox again",
                saved=saved.get("uidValidity"),
                now=validity,
            )
            last_uid = 0
        uids = await asyncio.to_thread(self.mailbox.uids_after, last_uid)
        if not uids:
            if not saved:  # remember the validity of an empty mailbox too
                await self.state.save(self.key, self.fence, uidValidity=validity, lastUid=0)
            return False
        batch = uids[: self.settings.email_fetch_batch]
        mails = await asyncio.to_thread(self.mailbox.fetch, batch)
        # MIME and HTML parsing off the event loop: anyone can mail an account.
        parts: dict[str, bytes] = {}  # attachment id -> its bytes, for the fetch jobs
        records, poison = await asyncio.to_thread(self._normalize, mails, validity, parts)
        # Past the whole batch, also UIDs that vanished (expunged) between SEARCH and FETCH.
        await self.commit(
            records, poison, len(mails), parts=parts, uidValidity=validity, lastUid=max(batch)
        )
        return len(uids) > len(batch)

    def _normalize(
        self, mails: list[FetchedMail], validity: int, parts: dict[str, bytes]
    ) -> tuple[list[RawMessage], list[tuple[bytes, BadPayload]]]:
        received_at = utc_now()
        records: list[RawMessage] = []
        poison: list[tuple[bytes, BadPayload]] = []
        for mail in mails:
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
