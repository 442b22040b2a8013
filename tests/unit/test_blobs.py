"""The blob store's pure parts: sniffing, image header checks, SigV4 against AWS's vectors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub.demo import media_samples
from hubcore.blobs import ImageTooLarge, image_size, inspect_head, sniff_mime
from hubcore.s3 import EMPTY_SHA256, sign_v4


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (media_samples.png(), "image/png"),
        (media_samples.jpeg_header(10, 20), "image/jpeg"),
        (media_samples.gif(), "image/gif"),
        (media_samples.pdf(), "application/pdf"),
        (media_samples.ogg_opus(), "audio/ogg"),
        (media_samples.wav(), "audio/wav"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00", "video/mp4"),
        (b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00", "audio/mp4"),
        (b"\x1a\x45\xdf\xa3\x9fB\x86\x81\x01B\xf7\x81\x01webm", "video/webm"),
        (b"ID3\x04\x00", "audio/mpeg"),
        (b"  <svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"),
        (b"<?xml version='1.0'?>\n<svg/>", "image/svg+xml"),
        (b"<!DOCTYPE html><script>alert(1)</script>", "text/html"),
        (b"\xef\xbb\xbf<html><body>x", "text/html"),
        (
            b"PK\x03\x04....word/document.xml",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        (b"PK\x03\x04....", "application/zip"),
        ("hello, wörld\n".encode(), "text/plain"),
        (b"\x00\x01\x02\x03binary", "application/octet-stream"),
        (b"", "application/octet-stream"),
    ],
)
def test_sniffed_from_the_bytes(data: bytes, expected: str) -> None:
    assert sniff_mime(data) == expected


def test_a_png_named_pdf_is_still_a_png() -> None:
    # The platform's or uploader's word plays no part: only the bytes are passed.
    assert sniff_mime(media_samples.png()) == "image/png"


@pytest.mark.parametrize(
    ("data", "mime", "size"),
    [
        (media_samples.png(3, 5), "image/png", (3, 5)),
        (media_samples.jpeg_header(640, 480), "image/jpeg", (640, 480)),
        (media_samples.gif(7, 9), "image/gif", (7, 9)),
        (media_samples.png_header(70_000, 70_000), "image/png", (70_000, 70_000)),
    ],
)
def test_image_size_from_headers(data: bytes, mime: str, size: tuple[int, int]) -> None:
    assert image_size(data, mime) == size


def test_a_decompression_bomb_is_refused_from_its_header() -> None:
    with pytest.raises(ImageTooLarge) as refused:
        inspect_head(media_samples.png_header(70_000, 70_000), max_image_pixels=50_000_000)
    assert refused.value.reason == "too_large"
    with pytest.raises(ImageTooLarge):
        inspect_head(media_samples.jpeg_header(20_000, 20_000), max_image_pixels=50_000_000)
    assert inspect_head(media_samples.png(4, 3), max_image_pixels=12) == ("image/png", 4, 3)


def test_a_truncated_header_is_no_size_not_a_crash() -> None:
    assert image_size(media_samples.jpeg_header(9, 9)[:12], "image/jpeg") is None
    assert image_size(b"\x89PNG\r\n\x1a\n", "image/png") is None


# AWS's published SigV4 examples: the signature test suite's get-vanilla family
# (AKIDEXAMPLE, service "service") and the S3 API reference's GET/PUT Object examples.
SUITE = {"access_key": "AKIDEXAMPLE", "secret_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
S3_DOCS = {
    "access_key": "AKIAIOSFODNN7EXAMPLE",
    "secret_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}


@pytest.mark.parametrize(
    ("method", "url", "signature"),
    [
        (
            "GET",
            "https://example.amazonaws.com/",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
        (
            "GET",
            "https://example.amazonaws.com/?Param2=value2&Param1=value1",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        ),
        (
            "POST",
            "https://example.amazonaws.com/",
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        ),
    ],
)
def test_sigv4_test_suite(method: str, url: str, signature: str) -> None:
    headers = sign_v4(
        method,
        url,
        {},
        payload_sha256=EMPTY_SHA256,
        region="us-east-1",
        service="service",
        now=datetime(2015, 8, 30, 12, 36, tzinfo=UTC),
        **SUITE,
    )
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={signature}"
    )


def test_sigv4_s3_get_object_with_range() -> None:
    headers = sign_v4(
        "GET",
        "https://examplebucket.s3.amazonaws.com/test.txt",
        {"Range": "bytes=0-9"},
        payload_sha256=EMPTY_SHA256,
        region="us-east-1",
        now=datetime(2013, 5, 24, tzinfo=UTC),
        **S3_DOCS,
    )
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


def test_sigv4_s3_put_object_signs_the_payload_hash() -> None:
    body_hash = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
    headers = sign_v4(
        "PUT",
        "https://examplebucket.s3.amazonaws.com/test%24file.text",
        {"Date": "Fri, 24 May 2013 00:00:00 GMT", "x-amz-storage-class": "REDUCED_REDUNDANCY"},
        payload_sha256=body_hash,
        region="us-east-1",
        now=datetime(2013, 5, 24, tzinfo=UTC),
        **S3_DOCS,
    )
    assert headers["x-amz-content-sha256"] == body_hash
    assert headers["Authorization"].endswith(
        "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, "
        "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
    )


def test_gridfs_lives_in_a_database_of_its_own() -> None:
    # On the embedded FerretDB (SQLite: one writer per database) file writes in the
    # messages' database stalled the worker's inserts (P3m); no connection is made here.
    from pymongo import AsyncMongoClient

    from hubcore.blobs import GridFSBlobStore, blob_store
    from hubcore.settings import Settings

    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        "mongodb://127.0.0.1:1", connect=False
    )
    hub = client["hub"]
    default = blob_store(Settings(), hub)
    named = blob_store(Settings(gridfs_database="files"), hub)
    assert isinstance(default, GridFSBlobStore) and isinstance(named, GridFSBlobStore)
    assert default._db.name == "hub_blobs" and named._db.name == "files"
