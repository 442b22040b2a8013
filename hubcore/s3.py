"""An S3-compatible blob store (HUB_BLOB_STORE=s3): plain httpx with AWS Signature V4.

Objects are `<HUB_S3_PREFIX><sha256>` in `HUB_S3_BUCKET` (path-style URLs, which every
S3-compatible server answers); the sniffed type is the object's Content-Type and image
dimensions ride as `x-amz-meta-width`/`-height`. The payload hash SigV4 signs is the
blob's key itself, so an upload is never hashed twice.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

import httpx

from hubcore.blobs import CHUNK_BYTES, BlobNotFound, ContentAddressedStore, StoredBlob

if TYPE_CHECKING:
    from hubcore.settings import Settings

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _canonical_query(query: str) -> str:
    if not query:
        return ""
    pairs = []
    for part in query.split("&"):
        name, _, value = part.partition("=")
        pairs.append((quote(name, safe="-_.~"), quote(value, safe="-_.~")))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def sign_v4(
    method: str,
    url: str,
    headers: Mapping[str, str],
    *,
    payload_sha256: str,
    access_key: str,
    secret_key: str,
    region: str,
    service: str = "s3",
    now: datetime,
) -> dict[str, str]:
    """`headers` plus `x-amz-date` (and `x-amz-content-sha256` for S3) and the SigV4
    `Authorization` over all of them. `url`'s path is taken as already URI-encoded."""
    parts = urlsplit(url)
    amz_date = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = dict(headers)
    out["x-amz-date"] = amz_date
    if service == "s3":
        out["x-amz-content-sha256"] = payload_sha256
    signed: dict[str, str] = {"host": parts.netloc}
    for name, value in out.items():
        signed[name.lower()] = " ".join(value.strip().split())
    names = sorted(signed)
    canonical = "\n".join(
        [
            method,
            parts.path or "/",
            _canonical_query(parts.query),
            "".join(f"{name}:{signed[name]}\n" for name in names),
            ";".join(names),
            payload_sha256,
        ]
    )
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + secret_key).encode()
    for part in (amz_date[:8], region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return out


class S3Error(Exception):
    """The bucket answered something other than success or 404."""


class S3BlobStore(ContentAddressedStore):
    """Blobs as objects in an S3-compatible bucket."""

    def __init__(
        self,
        *,
        endpoint: str,
        bucket: str,
        region: str,
        access_key: str,
        secret_key: str,
        prefix: str = "blobs/",
        max_image_pixels: int,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._base = f"{endpoint.rstrip('/')}/{quote(bucket, safe='')}/{quote(prefix)}"
        self._region = region
        self._access_key = access_key
        self._secret_key = secret_key
        self._max_image_pixels = max_image_pixels
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0))

    @classmethod
    def from_settings(cls, settings: Settings) -> S3BlobStore:
        from hubcore.settings import SettingsError

        for variable, value in (
            ("HUB_S3_ENDPOINT", settings.s3_endpoint),
            ("HUB_S3_BUCKET", settings.s3_bucket),
            ("HUB_S3_ACCESS_KEY_ID", settings.s3_access_key_id),
        ):
            if not value:
                raise SettingsError(variable, "is required with HUB_BLOB_STORE=s3")
        if settings.s3_secret_access_key is None:
            raise SettingsError("HUB_S3_SECRET_ACCESS_KEY", "is required with HUB_BLOB_STORE=s3")
        return cls(
            endpoint=settings.s3_endpoint,
            bucket=settings.s3_bucket,
            region=settings.s3_region,
            access_key=settings.s3_access_key_id,
            secret_key=settings.s3_secret_access_key.get_secret_value(),
            prefix=settings.s3_prefix,
            max_image_pixels=settings.media_max_image_pixels,
        )

    def _signed(
        self, method: str, sha256: str, headers: Mapping[str, str], payload: str
    ) -> tuple[str, dict[str, str]]:
        url = self._base + sha256
        return url, sign_v4(
            method,
            url,
            headers,
            payload_sha256=payload,
            access_key=self._access_key,
            secret_key=self._secret_key,
            region=self._region,
            now=datetime.now(UTC),
        )

    async def stat(self, sha256: str) -> StoredBlob | None:
        url, headers = self._signed("HEAD", sha256, {}, EMPTY_SHA256)
        response = await self._client.head(url, headers=headers)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise S3Error(f"HEAD {sha256}: HTTP {response.status_code}")
        width = response.headers.get("x-amz-meta-width")
        height = response.headers.get("x-amz-meta-height")
        return StoredBlob(
            sha256=sha256,
            size=int(response.headers["content-length"]),
            mime_type=response.headers.get("content-type", "application/octet-stream"),
            width=int(width) if width else None,
            height=int(height) if height else None,
        )

    async def _write(self, blob: StoredBlob, pieces: Iterable[bytes]) -> None:
        headers = {"Content-Type": blob.mime_type, "Content-Length": str(blob.size)}
        if blob.width is not None:
            headers |= {"x-amz-meta-width": str(blob.width), "x-amz-meta-height": str(blob.height)}
        url, headers = self._signed("PUT", blob.sha256, headers, blob.sha256)
        # Content-Length is signed and sent: S3 refuses a chunked PUT without it.
        response = await self._client.put(url, headers=headers, content=_aiter(pieces))
        if response.status_code not in (200, 201, 204):
            raise S3Error(f"PUT {blob.sha256}: HTTP {response.status_code}")

    async def read(
        self, sha256: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        wanted = {}
        if start or end is not None:
            if end is not None and end <= start:
                return
            wanted["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        url, headers = self._signed("GET", sha256, wanted, EMPTY_SHA256)
        async with self._client.stream("GET", url, headers=headers) as response:
            if response.status_code == 404:
                raise BlobNotFound(sha256)
            if response.status_code == 416:
                return  # start at or past the end: nothing to read
            if response.status_code not in (200, 206):
                raise S3Error(f"GET {sha256}: HTTP {response.status_code}")
            async for piece in response.aiter_bytes(CHUNK_BYTES):
                yield piece

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()


async def _aiter(pieces: Iterable[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece
