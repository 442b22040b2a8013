"""REST: attachment bytes to their owner (or a signed URL's holder) and uploads for replies."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.datastructures import UploadFile

from gateway.api.deps import OptionalBearer, RuntimeDep, UserId, current_user
from gateway.attachments import (
    content_disposition,
    is_inline_media,
    safe_name,
)
from gateway.errors import BadRequest, NotFound
from hubcore.blobs import CHUNK_BYTES
from hubcore.media_urls import verify
from hubcore.mongo import Document
from schemas.attachments import Attachment

router = APIRouter(prefix="/api", tags=["attachments"])

AttachmentId = Annotated[str, Path(max_length=64)]
ConversationId = Annotated[str, Path(max_length=128)]
Expires = Annotated[int | None, Query(description="Signed URLs: expiry, Unix seconds.")]
Signature = Annotated[str | None, Query(max_length=64, description="Signed URLs: HMAC.")]
# The upload route, whose body may be up to HUB_MEDIA_MAX_BYTES (gateway/app.py's BodyLimit).
UPLOAD_PATH = re.compile(r"^/api/conversations/[^/]{1,128}/attachments$")
# Multipart framing around the file: boundaries, part headers, a `kind` field.
MULTIPART_SLACK = 64 * 1024

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class Unsatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The [start, end) of a single `Range: bytes=…`, None to serve the whole file (no
    header, several ranges or a form this does not read: RFC 9110 lets a server ignore
    Range); raises `Unsatisfiable` for a range wholly past the end."""
    if header is None:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first:
        if not last:
            return None
        length = int(last)
        if length == 0:
            raise Unsatisfiable
        return max(size - length, 0), size
    start = int(first)
    end = size if not last else min(int(last) + 1, size)
    if last and int(last) < start:
        return None
    if start >= size:
        raise Unsatisfiable
    return start, end


def _etag_matches(header: str | None, etag: str) -> bool:
    if header is None:
        return False
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


async def _attachment(
    request: Request,
    runtime: RuntimeDep,
    credentials: OptionalBearer,
    attachment_id: str,
    variant: str,
    expires: int | None,
    signature: str | None,
) -> Document:
    if signature is not None or expires is not None:
        valid = (
            signature is not None
            and expires is not None
            and verify(runtime.settings, attachment_id, variant, expires, signature)
        )
        doc = await runtime.attachments.owned(None, attachment_id) if valid else None
    else:
        user_id = await current_user(request, credentials)
        doc = await runtime.attachments.owned(user_id, attachment_id)
    if doc is None:
        raise NotFound(f"no attachment {attachment_id!r}")
    return doc


async def _serve(request: Request, runtime: RuntimeDep, doc: Document, variant: str) -> Response:
    if variant == "thumbnail":
        doc = await runtime.attachments.lazy_thumbnail(doc)
    sha = doc.get("sha256") if variant == "file" else doc.get("thumbnailSha256")
    if doc.get("status") != "ready" or not sha:
        what = "thumbnail" if variant == "thumbnail" and doc.get("status") == "ready" else "file"
        raise NotFound(f"attachment {doc['_id']!r} has no {what} ({doc.get('status')})")
    blob = await runtime.attachments.blobs.stat(sha)
    if blob is None:
        raise NotFound(f"attachment {doc['_id']!r} has no stored bytes")
    etag = f'"{sha}"'
    name = safe_name(doc.get("name"), doc.get("mimeType", ""))
    if variant == "thumbnail":
        name = name.rsplit(".", 1)[0] + "-thumbnail.jpg"
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-cache",
        "X-Content-Type-Options": "nosniff",
    }
    if is_inline_media(blob.mime_type):
        headers["Content-Disposition"] = content_disposition("inline", name)
    else:
        # Never rendered on the hub's origin: a download, and sandboxed if opened anyway.
        headers["Content-Disposition"] = content_disposition("attachment", name)
        headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    if _etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() != etag:
        wanted = None  # the client's partial copy is of other bytes: send them all
    try:
        span = parse_range(wanted, blob.size)
    except Unsatisfiable:
        return Response(
            status_code=416, headers=headers | {"Content-Range": f"bytes */{blob.size}"}
        )
    status = 200
    start, end = 0, blob.size
    if span is not None:
        start, end = span
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{blob.size}"
    headers["Content-Length"] = str(end - start)
    return StreamingResponse(
        runtime.attachments.blobs.read(sha, start, end),
        status_code=status,
        headers=headers,
        media_type=blob.mime_type,
    )


_DOWNLOAD_RESPONSES: dict[int | str, dict[str, str]] = {
    200: {"description": "The bytes, typed by sniffing them."},
    206: {"description": "The requested range."},
    304: {"description": "Not modified (If-None-Match)."},
    404: {"description": "Not the caller's attachment, not ready, or a bad signature."},
    416: {"description": "Range not satisfiable."},
}


def _download_route(variant: str) -> Callable[..., Awaitable[Response]]:
    async def route(
        request: Request,
        runtime: RuntimeDep,
        credentials: OptionalBearer,
        attachment_id: AttachmentId,
        expires: Expires = None,
        signature: Signature = None,
    ) -> Response:
        doc = await _attachment(
            request, runtime, credentials, attachment_id, variant, expires, signature
        )
        return await _serve(request, runtime, doc, variant)

    return route


for _suffix, _variant, _summary, _description in (
    (
        "",
        "file",
        "Download an attachment",
        "The attachment's bytes to its owner (Bearer token) or to a signed URL's holder; "
        "404 for anyone else. `Range`, `ETag`/`If-None-Match`; images, audio and video "
        "inline, everything else a download under `Content-Security-Policy: sandbox`.",
    ),
    (
        "/thumbnail",
        "thumbnail",
        "An attachment's thumbnail",
        "A small JPEG of an image attachment (the image itself when already small), with "
        "the same access rules; 404 when it has none.",
    ),
):
    router.add_api_route(
        "/attachments/{attachment_id}" + _suffix,
        _download_route(_variant),
        methods=["GET"],
        name=_variant,
        summary=_summary,
        description=_description,
        responses=_DOWNLOAD_RESPONSES,
    )


async def _pieces(upload: UploadFile) -> AsyncIterator[bytes]:
    while piece := await upload.read(CHUNK_BYTES):
        yield piece


@router.post(
    "/conversations/{conversation_id}/attachments",
    status_code=201,
    response_model=Attachment,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "kind": {"type": "string", "enum": ["voice"]},
                        },
                    }
                }
            },
        }
    },
)
async def upload(
    request: Request, user_id: UserId, runtime: RuntimeDep, conversation_id: ConversationId
) -> Attachment:
    """Upload a file (multipart field `file`; `kind=voice` marks audio as a voice note) to
    the caller's conversation; a reply carries the returned `id` in `attachments`. 413 past
    `HUB_MEDIA_MAX_BYTES` or the user's quota; 404 unless the conversation is the caller's."""
    if not await runtime.inbox.owns_conversation(user_id, conversation_id):
        raise NotFound(f"no conversation {conversation_id!r}")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise BadRequest("send multipart/form-data with a `file` part")
    async with request.form(max_files=1, max_fields=4) as form:
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise BadRequest("the multipart body has no `file` part")
        return await runtime.attachments.upload(
            user_id,
            conversation_id,
            file.filename,
            _pieces(file),
            voice=form.get("kind") == "voice",
        )
