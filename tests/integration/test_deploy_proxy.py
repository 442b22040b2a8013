"""deploy/nginx.conf served by a real nginx in front of a stand-in upstream that answers
each request with the path and headers it received: what the proxy publishes, and the
forwarded headers the gateway's Origin check and per-IP limits read."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.local_servers import nginx_proxy

pytestmark = pytest.mark.integration


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "headers": dict(self.headers.items())}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[str]:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    try:
        with nginx_proxy([upstream.server_address[1]]) as port:
            yield f"http://127.0.0.1:{port}"
    finally:
        upstream.shutdown()
        upstream.server_close()


@pytest.mark.parametrize(
    "path",
    ["/", "/?token=t", "/static/inbox.js", "/api/unread", "/ws", "/socket.io/?EIO=4"],
)
def test_the_public_surface_reaches_the_gateway(proxy: str, path: str) -> None:
    answer = httpx.get(proxy + path)
    assert answer.status_code == 200
    assert answer.json()["path"] == path


@pytest.mark.parametrize(
    "path", ["/metrics", "/health", "/docs", "/openapi.json", "/redoc", "/wsx", "/apix"]
)
def test_operations_routes_are_not_published(proxy: str, path: str) -> None:
    answer = httpx.get(proxy + path)
    assert answer.status_code == 404
    assert "headers" not in answer.text  # answered by nginx, not passed on


def test_forwarded_headers_name_the_client_host_and_scheme(proxy: str) -> None:
    port = proxy.rsplit(":", 1)[1]
    # A forged chain from the client is replaced, not extended.
    answer = httpx.get(proxy + "/api/unread", headers={"X-Forwarded-For": "203.0.113.9"})
    seen = {k.lower(): v for k, v in answer.json()["headers"].items()}
    assert seen["host"] == f"127.0.0.1:{port}"  # the port kept: Origin == scheme://Host
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
