"""One reply from the ledger's view: send it at most once, retrying only what is safe.

The ledger moves to `calling` before each platform call. A restart that finds `calling`
does not know whether the platform took the message: where the platform cannot dedupe,
the reply fails with that said, rather than risk a second copy in the chat.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx
import structlog

from connectors.errors import SendError
from connectors.outbound.ledger import FINAL, SendLedger
from connectors.outbound.metrics import SEND_ATTEMPTS, SEND_FAILURES, SEND_SECONDS, failure_reason
from connectors.outbound.senders import SENDERS, PlatformSender, SendContext
from connectors.runtime import AccountCache
from hubcore.accounts import Account
from hubcore.mongo import Document
from hubcore.retry import Backoff, retry
from schemas import OutboundMessage, SendResult, event_id
from schemas.base import utc_now

log = structlog.get_logger("connectors.outbound")

LOST_DURING_CALL = (
    "the connectors stopped during the platform call: the message may have been delivered; "
    "not sent again, to avoid a duplicate"
)


class Delivery:
    """Sends replies through `SENDERS`, keeping the ledger."""

    def __init__(
        self,
        ctx: SendContext,
        ledger: SendLedger,
        accounts: AccountCache,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.ctx = ctx
        self.ledger = ledger
        self.accounts = accounts
        self.sleep = sleep
        settings = ctx.settings
        self.backoff = Backoff(attempts=settings.send_attempts, max_delay=settings.send_max_backoff)

    async def deliver(self, msg: OutboundMessage) -> SendResult:
        """The reply's outcome, from the ledger when it was settled before."""
        entry = await self.ledger.open(msg)
        sender = SENDERS[msg.platform]
        while entry["state"] not in FINAL:
            claimed = await self.ledger.claim(msg.message_id)
            if claimed is not None:
                entry = claimed
                break
            await self.sleep(1.0)  # another process works on it: wait for its outcome
            entry = await self.ledger.get(msg.message_id) or entry
        if entry["state"] in FINAL:
            return _result(msg, entry)
        if entry["state"] == "calling" and not sender.idempotent:
            lost = _no_call(msg, LOST_DURING_CALL, "lost_during_call", ambiguous=True)
            return await self._settle(msg, entry["attempts"], None, lost)
        account = await self.accounts.get(msg.account_id)
        if account is None or account.platform != msg.platform or account.user_id != msg.user_id:
            gone = f"the {msg.platform} account {msg.account_id} is no longer connected"
            error = _no_call(msg, gone, "account_gone")
            return await self._settle(msg, entry["attempts"], None, error)
        calls = entry["attempts"]

        async def call(_: int) -> str:
            nonlocal calls
            await self.ledger.mark(msg.message_id, "calling")
            calls += 1
            SEND_ATTEMPTS.labels(msg.platform).inc()
            started = time.perf_counter()
            try:
                return await self._call(sender, account, msg)
            except SendError as exc:
                SEND_FAILURES.labels(msg.platform, failure_reason(exc.reason)).inc()
                raise
            finally:
                SEND_SECONDS.labels(msg.platform).observe(time.perf_counter() - started)

        def on_retry(exc: BaseException, wait: float) -> None:
            log.info(
                "send retry", message_id=msg.message_id, error=str(exc), retry_in=round(wait, 2)
            )

        try:
            platform_id = await retry(call, self.backoff, on_retry=on_retry, sleep=self.sleep)
        except SendError as exc:
            return await self._settle(msg, calls, None, exc)
        return await self._settle(msg, calls, platform_id, None)

    async def _call(self, sender: PlatformSender, account: Account, msg: OutboundMessage) -> str:
        """One platform call; every failure a `SendError` with its reason."""
        try:
            return await sender.send(self.ctx, account, msg)
        except SendError as exc:
            if not exc.ambiguous:
                await self.ledger.mark(msg.message_id, "waiting")
            raise
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            # The account's own credentials make no request: none left, none ever will.
            await self.ledger.mark(msg.message_id, "waiting")
            raise SendError(
                f"{msg.platform}: the account's credentials make no valid request "
                f"({type(exc).__name__}): connect it again",
                reason="credentials",
            ) from None
        except (KeyError, TypeError, ValueError) as exc:
            raise SendError(
                f"{msg.platform}: unreadable answer ({type(exc).__name__}); "
                "the platform may have the message",
                ambiguous=True,
                reason="bad_answer",
            ) from None
        except Exception as exc:
            # Anything else fails this reply only, never the consumer (issue 22).
            log.exception("send crashed", message_id=msg.message_id, platform=msg.platform)
            raise SendError(
                f"{msg.platform}: the send failed ({type(exc).__name__}); "
                "the platform may have the message",
                ambiguous=True,
                reason="crashed",
            ) from None

    async def give_up(self, msg: OutboundMessage, exc: BaseException) -> SendResult:
        """The reply failed for a reason outside any platform call (a bug): say so."""
        entry = await self.ledger.get(msg.message_id)
        entry = entry or {}
        reason = f"{msg.platform}: the send failed ({type(exc).__name__})"
        error = _no_call(msg, reason, "crashed", ambiguous=entry.get("state") == "calling")
        return await self._settle(msg, int(entry.get("attempts", 0)), None, error)

    async def _settle(
        self, msg: OutboundMessage, calls: int, platform_id: str | None, error: SendError | None
    ) -> SendResult:
        if error is None:
            await self.ledger.mark(msg.message_id, "sent", platformMessageId=platform_id)
            entry: Document = {"state": "sent", "attempts": calls, "platformMessageId": platform_id}
        else:
            fields = {"detail": error.message[:2000], "ambiguous": error.ambiguous}
            await self.ledger.mark(msg.message_id, "failed", **fields)
            entry = {"state": "failed", "attempts": calls, **fields}
        result = _result(msg, entry)
        log.info(
            "send",
            message_id=msg.message_id,
            platform=msg.platform,
            account_id=msg.account_id,
            status=result.status,
            attempts=calls,
            ambiguous=result.ambiguous,
            detail=result.detail,
        )
        return result


def _no_call(msg: OutboundMessage, detail: str, reason: str, ambiguous: bool = False) -> SendError:
    """A reply failed without a platform call: counted here (calls count in `call`)."""
    SEND_FAILURES.labels(msg.platform, reason).inc()
    return SendError(detail, ambiguous=ambiguous, reason=reason)


def _result(msg: OutboundMessage, entry: Document) -> SendResult:
    status = "sent" if entry["state"] == "sent" else "failed"
    # Each retry's outcome is news of its own (a `failed` before it had the same message).
    source = (msg.message_id, f"retry-{msg.attempt}") if msg.attempt else (msg.message_id,)
    return SendResult(
        id=event_id("send_result", *source),
        user_id=msg.user_id,
        conversation_id=msg.conversation_id,
        message_id=msg.message_id,
        account_id=msg.account_id,
        status=status,
        platform_message_id=entry.get("platformMessageId"),
        detail=entry.get("detail"),
        attempts=int(entry.get("attempts", 0)),
        ambiguous=bool(entry.get("ambiguous", False)),
        occurred_at=utc_now(),
    )
