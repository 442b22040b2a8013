"""Image thumbnails: a small JPEG beside each image, so the page loads kilobytes per photo.

Decoding runs in a worker thread; by then the image's header has passed the pixel cap
(hubcore/blobs.py), and Pillow's own bomb check stays on as a second guard.
"""

from __future__ import annotations

import asyncio
import io
import warnings

from hubcore.blobs import BlobStore, StoredBlob

# Types Pillow decodes that browsers show; SVG and the rest get no thumbnail.
THUMBNAIL_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp"})
_PILLOW_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP")


def _render(data: bytes, longest: int, max_pixels: int) -> bytes:
    from PIL import Image, ImageOps

    Image.MAX_IMAGE_PIXELS = max_pixels
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        # Only the decoders of the types sniffed: none of Pillow's other format plugins
        # ever sees a user's bytes.
        with Image.open(io.BytesIO(data), formats=_PILLOW_FORMATS) as opened:
            opened.draft("RGB", (longest, longest))  # JPEG: decode at a reduced scale
            image: Image.Image = ImageOps.exif_transpose(opened)
            image.thumbnail((longest, longest))
            if image.mode not in ("RGB", "L"):
                image = image.convert("RGBA")
                flat = Image.new("RGB", image.size, (255, 255, 255))
                flat.paste(image, mask=image.getchannel("A"))
                image = flat
            out = io.BytesIO()
            image.save(out, "JPEG", quality=80, optimize=True)
            return out.getvalue()


async def make_thumbnail(
    store: BlobStore, blob: StoredBlob, *, longest: int, max_pixels: int
) -> StoredBlob | None:
    """The stored thumbnail of an image blob: the blob itself when it is already small, a
    JPEG at most `longest` pixels on a side otherwise; None for what has none (not an
    image Pillow reads, or undecodable bytes)."""
    if blob.mime_type not in THUMBNAIL_TYPES:
        return None
    if (
        blob.width is not None
        and blob.height is not None
        and max(blob.width, blob.height) <= longest
    ):
        return blob
    data = b"".join([piece async for piece in store.read(blob.sha256)])
    try:
        jpeg = await asyncio.to_thread(_render, data, longest, max_pixels)
    except Exception:  # a corrupt or hostile file: no thumbnail, the original still serves
        return None
    return await store.put(jpeg)
