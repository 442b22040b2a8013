"""One platform call over HTTP, its failures sorted into retriable, final and ambiguous.

A call that never reached the platform (refused, connect timeout) is safe to repeat; one
whose request left but whose answer never came is ambiguous: repeated only where the
platform dedupes (`idempotent`), else reported as such.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from connectors.errors import SendError
from schemas.base import utc_now

# httpx logs every request's URL at INFO, and a Bot API URL carries the bot's token.
logging.getLogger("httpx").setLevel(logging.WARNING)


def retry_after(response: httpx.Response, body_seconds: Any = None) -> float | None:
    """The wait the platform asked for: a number in the body, else `Retry-After` (seconds
    or an HTTP date)."""
    if isinstance(body_seconds, int | float) and not isinstance(body_seconds, bool):
        return float(body_seconds)
    header = response.headers.get("retry-after")
    if not header:
        return None
    try:
        return max(float(header), 0.0)
    except ValueError:
        pass
    try:
        return max((parsedate_to_datetime(header) - utc_now()).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None


async def post(
    http: httpx.AsyncClient,
    url: str,
    *,
    what: str,
    idempotent: bool,
    timeout: float,
    headers: dict[str, str] | None = None,
    json: Any = None,
    content: bytes | None = None,
    data: dict[str, str] | None = None,
    files: dict[str, tuple[str, bytes, str]] | None = None,
    extensions: dict[str, Any] | None = None,
    max_answer_bytes: int | None = None,
) -> httpx.Response:
    """POST; `SendError` when no answer came. `what` names the call in errors (never the
    URL: it may carry a token). With `max_answer_bytes`, at most that much of the answer
    is read, within `timeout` (a server a user names may stream without end)."""
    request = http.build_request(
        "POST",
        url,
        headers=headers,
        json=json,
        content=content,
        data=data,
        files=files,
        timeout=timeout,
        extensions=extensions,
    )
    try:
        if max_answer_bytes is None:
            return await http.send(request)
        response = await http.send(request, stream=True)
        try:
            body = await _read_capped(response, max_answer_bytes, timeout)
        finally:
            await response.aclose()
        kept = [
            (k, v)
            for k, v in response.headers.multi_items()
            if k not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(response.status_code, headers=kept, content=body, request=request)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise SendError(
            f"{what}: could not connect ({type(exc).__name__})", retriable=True
        ) from None
    except httpx.TransportError as exc:
        # The request may have arrived: only a platform that dedupes can take it again.
        raise SendError(
            f"{what}: no answer after the request was sent ({type(exc).__name__}); "
            + ("sent again" if idempotent else "the platform may have the message"),
            retriable=idempotent,
            ambiguous=not idempotent,
        ) from None


async def _read_capped(response: httpx.Response, cap: int, timeout: float) -> bytes:
    """Up to `cap` bytes of the (decoded) answer, as far as it came within `timeout`."""
    body = bytearray()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            async for chunk in response.aiter_bytes():
                body += chunk[: cap - len(body)]
                if len(body) >= cap:
                    break
    return bytes(body)


def status_error(
    what: str, response: httpx.Response, description: str, after: Any = None
) -> SendError:
    """A non-2xx answer: 429 and 5xx retriable (with the platform's wait), others final."""
    code = response.status_code
    if code == 429 or code >= 500:
        return SendError(
            f"{what}: {code} {description}",
            retriable=True,
            retry_after=retry_after(response, after),
        )
    return SendError(f"{what}: {code} {description}")


def json_body(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object, or {} when it is not one."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
