"""A small S3-compatible object server for the S3 blob store's tests.

Path-style `/{bucket}/{key}`: PUT (Content-Length required, `x-amz-content-sha256` must be
the body's hash, as S3 checks), HEAD, and GET with a single `Range` (206/416). Every request
must carry a SigV4 `Authorization` whose signature verifies with the test's secret.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hubcore.s3 import sign_v4

_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/s3/"
    r"aws4_request, SignedHeaders=(?P<signed>[^,]+), Signature=(?P<sig>[0-9a-f]{64})"
)


class FakeS3:
    def __init__(self, access_key: str, secret_key: str, bucket: str) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.bucket = bucket
        self.objects: dict[str, tuple[bytes, dict[str, str]]] = {}
        self.puts = 0
        self.app = Starlette(
            routes=[Route("/{bucket}/{key:path}", self.handle, methods=["GET", "HEAD", "PUT"])]
        )

    def _verified(self, request: Request, payload_hash: str) -> bool:
        match = _AUTH.fullmatch(request.headers.get("authorization", ""))
        if match is None or match["key"] != self.access_key:
            return False
        names = match["signed"].split(";")
        headers = {n: request.headers[n] for n in names if n != "host" and n in request.headers}
        stamp = datetime.strptime(headers.pop("x-amz-date"), "%Y%m%dT%H%M%S%z")
        headers.pop("x-amz-content-sha256", None)
        url = str(request.url.replace(query=request.url.query or ""))
        again = sign_v4(
            request.method,
            url.rstrip("?"),
            headers,
            payload_sha256=payload_hash,
            access_key=self.access_key,
            secret_key=self.secret_key,
            region=match["region"],
            now=stamp,
        )
        return again["Authorization"] == request.headers["authorization"]

    async def handle(self, request: Request) -> Response:
        if request.path_params["bucket"] != self.bucket:
            return Response(status_code=404)
        key = request.path_params["key"]
        claimed = request.headers.get("x-amz-content-sha256", "")
        if request.method == "PUT":
            if "content-length" not in request.headers:
                return Response("MissingContentLength", status_code=411)
            body = await request.body()
            if hashlib.sha256(body).hexdigest() != claimed:
                return Response("XAmzContentSHA256Mismatch", status_code=400)
            if not self._verified(request, claimed):
                return Response("SignatureDoesNotMatch", status_code=403)
            meta = {
                k: v
                for k, v in request.headers.items()
                if k.startswith("x-amz-meta-") or k == "content-type"
            }
            self.objects[key] = (body, meta)
            self.puts += 1
            return Response(status_code=200, headers={"ETag": f'"{claimed[:32]}"'})
        if not self._verified(request, claimed):
            return Response("SignatureDoesNotMatch", status_code=403)
        if key not in self.objects:
            return Response(status_code=404)
        body, meta = self.objects[key]
        if request.method == "HEAD":
            return Response(status_code=200, headers=meta | {"content-length": str(len(body))})
        wanted = request.headers.get("range")
        if wanted is None:
            return Response(body, headers=meta)
        start_text, _, end_text = wanted.removeprefix("bytes=").partition("-")
        start = int(start_text)
        end = min(int(end_text), len(body) - 1) if end_text else len(body) - 1
        if start >= len(body):
            return Response(status_code=416)
        return Response(
            body[start : end + 1],
            status_code=206,
            headers=meta | {"content-range": f"bytes {start}-{end}/{len(body)}"},
        )
