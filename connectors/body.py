"""Reading a webhook body with the size limit enforced before and while it arrives."""

from __future__ import annotations

from starlette.requests import Request

from connectors.errors import BadPayload, BodyTooLarge


async def read_limited_body(request: Request, limit: int) -> bytes:
    """The raw body, or `BodyTooLarge` as soon as it is known to exceed `limit` bytes.

    Content-Length is checked first (cheap refusal), and the bytes are counted while
    reading, since a chunked body or a lying header would otherwise get through.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BadPayload(f"Content-Length {declared[:40]!r} is not a number") from None
        if size > limit:
            raise BodyTooLarge(f"body of {size} bytes is over the limit of {limit} bytes")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise BodyTooLarge(f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
