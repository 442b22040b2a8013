"""Thumbnails from the stored bytes: small JPEGs of large images, the image itself when
small, nothing for what Pillow must not or cannot decode."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterable

from PIL import Image

from hub.demo import media_samples
from hubcore.blobs import ContentAddressedStore, StoredBlob
from hubcore.thumbnails import make_thumbnail


class MemoryStore(ContentAddressedStore):
    """The content-addressed logic over a dict (the real stores are tested on servers)."""

    def __init__(self) -> None:
        self._max_image_pixels = 10**8
        self.blobs: dict[str, tuple[StoredBlob, bytes]] = {}

    async def stat(self, sha256: str) -> StoredBlob | None:
        found = self.blobs.get(sha256)
        return found[0] if found else None

    async def _write(self, blob: StoredBlob, pieces: Iterable[bytes]) -> None:
        self.blobs[blob.sha256] = (blob, b"".join(pieces))

    async def read(
        self, sha256: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        yield self.blobs[sha256][1][start:end]

    async def aclose(self) -> None:
        return None


async def test_a_large_image_gets_a_small_jpeg() -> None:
    store = MemoryStore()
    photo = await store.put(media_samples.png(800, 200))
    thumb = await make_thumbnail(store, photo, longest=100, max_pixels=10**8)
    assert thumb is not None and thumb.mime_type == "image/jpeg"
    assert Image.open(io.BytesIO(store.blobs[thumb.sha256][1])).size == (100, 25)
    assert (thumb.width, thumb.height) == (100, 25)


async def test_a_small_image_is_its_own_thumbnail() -> None:
    store = MemoryStore()
    dot = await store.put(media_samples.gif(8, 8))
    assert await make_thumbnail(store, dot, longest=100, max_pixels=10**8) == dot


async def test_no_thumbnail_for_svg_pdf_or_corrupt_bytes() -> None:
    store = MemoryStore()
    svg = await store.put(b'<svg xmlns="http://www.w3.org/2000/svg" width="900"/>')
    pdf = await store.put(media_samples.pdf())
    broken = await store.put(media_samples.png_header(900, 900) + b"\x00" * 64)
    for blob in (svg, pdf, broken):
        assert await make_thumbnail(store, blob, longest=100, max_pixels=10**8) is None
    assert len(store.blobs) == 3  # nothing stored for them


async def test_pillows_own_bomb_check_stays_on() -> None:
    store = MemoryStore()
    photo = await store.put(media_samples.png(400, 400))
    # Header passed a looser cap; the decoder's own limit still refuses.
    assert await make_thumbnail(store, photo, longest=100, max_pixels=1000) is None
