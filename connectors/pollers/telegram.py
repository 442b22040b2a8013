"""Telegram long polling: `getUpdates` at `HUB_TELEGRAM_API_BASE`, offset saved after the ack.

The offset saved in `POLL_STATE` is the next update to read. It advances only once the
batch's records (and dead letters) are acknowledged by Kafka, so a crash in between
re-reads the batch (same ids: downstream dedupes) and never skips one.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import orjson

from connectors.errors import BadPayload, PollError
from connectors.platforms.base import Change, WebhookOutcome
from connectors.platforms.telegram import MESSAGE_KINDS, normalize_update
from connectors.pollers.base import Poller, PollState
from connectors.publisher import Publisher
from hubcore.accounts import Account
from hubcore.settings import Settings
from schemas import RawMessage
from schemas.base import utc_now

BATCH = 100  # getUpdates' maximum `limit`

# httpx logs every request's URL at INFO, and a Bot API URL carries the bot's token.
logging.getLogger("httpx").setLevel(logging.WARNING)


class TelegramPoller(Poller):
    """Reads one bot's updates."""

    platform = "telegram"

    def __init__(
        self,
        account: Account,
        settings: Settings,
        publisher: Publisher,
        state: PollState,
        http: httpx.AsyncClient,
    ) -> None:
        super().__init__(account, settings, publisher, state)
        self.http = http
        self.offset: int | None = None
        # The token is part of the URL: never log the URL.
        base = settings.telegram_api_base.rstrip("/")
        self._token = str(account.credentials["botToken"])
        self._url = f"{base}/bot{self._token}/getUpdates"

    @property
    def idle_delay(self) -> float:
        # The long poll itself waits on the server; an empty answer means poll again
        # (after a breath, in case a server answers at once instead of waiting).
        return 0.1 if self.settings.telegram_long_poll > 0 else self.settings.poll_interval

    async def poll_once(self) -> bool:
        if self.offset is None:
            saved = await self.state.load(self.key)
            self.offset = int(saved["offset"]) if "offset" in saved else 0
        updates = await self.until_stopped(self._get_updates(self.offset))
        if not updates:
            return False
        received_at = utc_now()
        records: list[RawMessage] = []
        changes: list[Change] = []
        poison: list[tuple[bytes, BadPayload]] = []
        ids: list[int] = []
        for update in updates:
            if isinstance(update, dict) and isinstance(update.get("update_id"), int):
                ids.append(update["update_id"])
            try:
                items = normalize_update(self.account, update, received_at)
            except BadPayload as exc:
                poison.append((orjson.dumps(update), exc))
                continue
            outcome = WebhookOutcome.of(items)
            records += outcome.records
            changes += outcome.changes
        if not ids:
            raise PollError("getUpdates returned updates without update_id")
        await self.commit(records, poison, len(updates), changes=changes, offset=max(ids) + 1)
        self.offset = max(ids) + 1
        return len(updates) >= BATCH

    async def _get_updates(self, offset: int) -> list[Any]:
        wait = self.settings.telegram_long_poll
        params: dict[str, Any] = {
            "offset": offset,
            "limit": BATCH,
            "timeout": wait,
            "allowed_updates": orjson.dumps(list(MESSAGE_KINDS)).decode(),
        }
        try:
            response = await self.http.get(self._url, params=params, timeout=wait + 10)
            data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            reason = str(exc).replace(self._token, "***")
            raise PollError(f"getUpdates failed: {type(exc).__name__}: {reason}") from None
        if not isinstance(data, dict) or data.get("ok") is not True:
            description = data.get("description") if isinstance(data, dict) else None
            raise PollError(f"getUpdates answered {response.status_code}: {description}")
        result = data.get("result")
        if not isinstance(result, list):
            raise PollError("getUpdates answered without a result list")
        return result
