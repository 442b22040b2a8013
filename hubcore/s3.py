"""An S3-compatible blob store (HUB_BLOB_STORE=s3): plain httpx with AWS Signature V4."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hubcore.blobs import BlobStore
    from hubcore.settings import Settings


class S3BlobStore:
    """Filled in by the next commit."""

    @classmethod
    def from_settings(cls, settings: Settings) -> BlobStore:
        raise NotImplementedError("HUB_BLOB_STORE=s3 is not implemented yet")
