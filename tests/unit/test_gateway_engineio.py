"""Engine.IO's long-polling requests through the ASGI interface, without a server: the
handshake, Engine.IO's error answers, the packets a POST carries, and what a poll takes.
(The WebSocket transport and the upgrade run against a real server in
tests/integration/test_socketio_conformance.py.)"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import orjson
import pytest

from gateway.engineio import (
    CLOSE_GOING_AWAY,
    SEPARATOR,
    EngineOptions,
    EngineServer,
    EngineSession,
)

OPTIONS = EngineOptions(ping_interval=25, ping_timeout=20, max_payload=64, send_queue=16)
CORS = [(b"access-control-allow-origin", b"https://app.example")]


class Handler:
    """The layer above, keeping what it was told."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.sids: set[str] = set()  # the sessions messages came on

    def on_open(self, session: EngineSession) -> None:
        self.calls.append(("open", session.sid))

    def on_message(self, session: EngineSession, data: str) -> None:
        self.calls.append(("message", data))
        self.sids.add(session.sid)

    def on_binary(self, session: EngineSession, data: bytes) -> None:
        self.calls.append(("binary", data))
        self.sids.add(session.sid)

    def on_close(self, session: EngineSession, reason: str) -> None:
        self.calls.append(("close", reason))


class Answer:
    """One HTTP answer as the ASGI `send` calls made it."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    @property
    def status(self) -> int:
        status: int = self.messages[0]["status"]
        return status

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.messages[0]["headers"])

    @property
    def body(self) -> bytes:
        body: bytes = self.messages[1]["body"]
        return body


async def _request(
    engine: EngineServer,
    method: str,
    query: dict[str, list[str]],
    body: list[bytes] | None = None,
) -> Answer:
    chunks = list(body or [])

    async def receive() -> dict[str, Any]:
        if not chunks:
            return {"type": "http.disconnect"}
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    answer = Answer()
    scope = {"type": "http", "method": method}
    await engine(scope, receive, answer, CORS, query)
    return answer


def _query(sid: str | None = None, **extra: str) -> dict[str, list[str]]:
    query = {"EIO": ["4"], "transport": ["polling"], **{k: [v] for k, v in extra.items()}}
    if sid is not None:
        query["sid"] = [sid]
    return query


async def _open(engine: EngineServer) -> EngineSession:
    answer = await _request(engine, "GET", _query())
    assert answer.status == 200 and answer.body.startswith(b"0")
    opening = orjson.loads(answer.body[1:])
    return engine.sessions[opening["sid"]]


async def test_the_handshake_opens_a_session_and_tells_its_options() -> None:
    handler = Handler()
    engine = EngineServer(OPTIONS, handler)
    answer = await _request(engine, "GET", _query())
    assert answer.status == 200
    assert answer.body[:1] == b"0"
    opening = orjson.loads(answer.body[1:])
    assert opening == {
        "sid": opening["sid"],
        "upgrades": ["websocket"],
        "pingInterval": 25000,
        "pingTimeout": 20000,
        "maxPayload": 64,
    }
    assert len(opening["sid"]) == 20
    assert handler.calls == [("open", opening["sid"])]
    session = engine.sessions[opening["sid"]]
    assert not session.websocket and not session.closed
    headers = answer.headers
    assert headers[b"content-type"] == b"text/plain; charset=UTF-8"
    assert headers[b"content-length"] == str(len(answer.body)).encode()
    assert headers[b"cache-control"] == b"no-store"
    assert headers[b"access-control-allow-origin"] == b"https://app.example"
    session.stop_timers()


@pytest.mark.parametrize(
    ("method", "query", "code", "message"),
    [
        ("GET", {"transport": ["polling"]}, 5, "Unsupported protocol version"),
        ("GET", {"EIO": ["3"], "transport": ["polling"]}, 5, "Unsupported protocol version"),
        ("GET", {"EIO": ["4"], "transport": ["carrier-pigeon"]}, 0, "Transport unknown"),
        ("GET", {"EIO": ["4"]}, 0, "Transport unknown"),
        ("POST", {"EIO": ["4"], "transport": ["polling"]}, 2, "Bad handshake method"),
        ("GET", {"EIO": ["4"], "transport": ["polling"], "sid": ["nope"]}, 1, "Session ID unknown"),
    ],
)
async def test_bad_requests_get_engine_io_error_answers(
    method: str, query: dict[str, list[str]], code: int, message: str
) -> None:
    engine = EngineServer(OPTIONS, Handler())
    answer = await _request(engine, method, query)
    assert answer.status == 400
    assert orjson.loads(answer.body) == {"code": code, "message": message}
    assert answer.headers[b"content-type"] == b"application/json"
    assert engine.sessions == {}


async def test_a_preflight_is_answered_empty_and_other_methods_are_bad_requests() -> None:
    engine = EngineServer(OPTIONS, Handler())
    preflight = await _request(engine, "OPTIONS", {})
    assert (preflight.status, preflight.body) == (204, b"")
    assert preflight.headers[b"access-control-allow-origin"] == b"https://app.example"
    session = await _open(engine)
    put = await _request(engine, "PUT", _query(session.sid))
    assert put.status == 400
    assert orjson.loads(put.body) == {"code": 3, "message": "Bad request"}
    session.stop_timers()


async def test_a_post_hands_each_packet_of_its_payload_to_the_layer_above() -> None:
    handler = Handler()
    engine = EngineServer(OPTIONS, handler)
    session = await _open(engine)
    payload = SEPARATOR.join(
        ["4hello", "b" + base64.b64encode(b"\x00\x01").decode(), "6", "5", "2"]
    )
    answer = await _request(
        engine, "POST", _query(session.sid), [payload[:5].encode(), payload[5:].encode()]
    )
    assert (answer.status, answer.body) == (200, b"ok")
    assert answer.headers[b"access-control-allow-origin"] == b"https://app.example"
    assert handler.calls[1:] == [("message", "hello"), ("binary", b"\x00\x01")]
    assert handler.sids == {session.sid}
    assert not session.closed
    session.stop_timers()


async def test_a_message_keeps_its_spaces_and_bad_utf8_becomes_replacement_characters() -> None:
    handler = Handler()
    engine = EngineServer(OPTIONS, handler)
    session = await _open(engine)
    await _request(engine, "POST", _query(session.sid), [b"4hello world", b"\x1e4\xff"])
    assert handler.calls[1:] == [("message", "hello world"), ("message", "\ufffd")]
    session.stop_timers()


async def test_a_pong_answers_the_ping_and_schedules_the_next() -> None:
    engine = EngineServer(EngineOptions(25, 20, 64, 16), Handler())
    session = await _open(engine)
    session._send_ping()
    assert await session.conn.take() == (["2"], False)
    assert session._timeout is not None
    await _request(engine, "POST", _query(session.sid), [b"3"])
    assert session._timeout is None and session._ping is not None
    session.stop_timers()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"9what", "parse error"),
        (b"b!!not-base64", "parse error"),
        (b"bAQ!I=", "parse error"),  # base64 only once the stray character is dropped
        (b"1", "client close"),
        (SEPARATOR.join(["1", "4late"]).encode(), "client close"),
    ],
)
async def test_a_bad_or_closing_packet_ends_the_session(payload: bytes, reason: str) -> None:
    handler = Handler()
    engine = EngineServer(OPTIONS, handler)
    session = await _open(engine)
    answer = await _request(engine, "POST", _query(session.sid), [payload])
    assert answer.status == 200
    assert session.closed
    assert handler.calls[1:] == [("close", reason)]  # nothing after the end
    assert session.client_closed == (reason == "client close")


async def test_a_payload_over_the_limit_is_refused_and_closes() -> None:
    handler = Handler()
    engine = EngineServer(OPTIONS, handler)
    session = await _open(engine)
    answer = await _request(engine, "POST", _query(session.sid), [b"4" + b"x" * 40, b"y" * 40])
    assert (answer.status, answer.body) == (413, b"payload too large")
    assert answer.headers[b"access-control-allow-origin"] == b"https://app.example"
    assert handler.calls[1:] == [("close", "payload too large")]
    exact = await _open(engine)
    fits = await _request(engine, "POST", _query(exact.sid), [b"4" + b"x" * 63])
    assert fits.status == 200 and handler.calls[-1] == ("message", "x" * 63)
    exact.stop_timers()


async def test_a_client_gone_mid_post_is_not_answered() -> None:
    handler = Handler()
    engine = EngineServer(OPTIONS, handler)
    session = await _open(engine)
    answer = await _request(engine, "POST", _query(session.sid), [])
    assert answer.messages == [] and handler.calls[1:] == []
    session.stop_timers()


async def test_a_poll_takes_what_is_queued_joined_by_the_separator() -> None:
    engine = EngineServer(OPTIONS, Handler())
    session = await _open(engine)
    session.send("4a")
    session.send("4b")
    answer = await _request(engine, "GET", _query(session.sid))
    assert (answer.status, answer.body) == (200, b"4a\x1e4b")
    assert answer.headers[b"access-control-allow-origin"] == b"https://app.example"
    assert not session.polling
    session.stop_timers()


async def test_overlapping_polls_close_the_session() -> None:
    handler = Handler()
    engine = EngineServer(OPTIONS, handler)
    session = await _open(engine)
    first = asyncio.create_task(_request(engine, "GET", _query(session.sid)))
    await asyncio.sleep(0)  # the poll runs until it waits for packets
    assert session.polling
    second = await _request(engine, "GET", _query(session.sid))
    assert second.status == 400
    assert orjson.loads(second.body) == {"code": 3, "message": "Bad request"}
    assert handler.calls[1:] == [("close", "overlapping polls")]
    answer = await first
    assert (answer.status, answer.body) == (200, b"1")  # the close packet
    assert session.sid not in engine.sessions


async def test_a_server_close_ends_the_poll_that_takes_the_last_packets() -> None:
    handler = Handler()
    engine = EngineServer(OPTIONS, handler)
    session = await _open(engine)
    session.send("4bye")
    session.conn.close(CLOSE_GOING_AWAY, "going")
    first = await _request(engine, "GET", _query(session.sid))
    assert (first.status, first.body) == (200, b"4bye")
    assert session.closing and session.closed
    assert handler.calls[1:] == [("close", "server close")]


async def test_a_close_with_nothing_left_answers_the_close_packet() -> None:
    handler = Handler()
    engine = EngineServer(OPTIONS, handler)
    session = await _open(engine)
    session.conn.close(CLOSE_GOING_AWAY, "going")
    answer = await _request(engine, "GET", _query(session.sid))
    assert (answer.status, answer.body) == (200, b"1")
    assert session.sid not in engine.sessions
    assert handler.calls[1:] == [("close", "server close")]


async def test_a_refusal_flushed_to_a_polling_client_stays_fetchable() -> None:
    handler = Handler()
    engine = EngineServer(OPTIONS, handler)
    session = await _open(engine)
    session.send('44{"message":"no"}')
    session.close("refused", flush=True)
    assert session.sid in engine.sessions  # kept for the client's next poll
    answer = await _request(engine, "GET", _query(session.sid))
    assert (answer.status, answer.body) == (200, b'44{"message":"no"}')
    assert handler.calls[1:] == [("close", "refused")]  # told once
    last = await _request(engine, "GET", _query(session.sid))
    assert (last.status, last.body) == (200, b"1")  # then the close packet, alone
    assert last.headers[b"access-control-allow-origin"] == b"https://app.example"
    assert session.sid not in engine.sessions
    gone = await _request(engine, "GET", _query(session.sid))
    assert orjson.loads(gone.body) == {"code": 1, "message": "Session ID unknown"}


async def test_a_closed_session_with_nothing_queued_is_unknown_to_a_poll() -> None:
    handler = Handler()
    engine = EngineServer(OPTIONS, handler)
    session = await _open(engine)
    session.close("refused", flush=True)
    await session.conn.take()  # the close, fetched by an earlier poll
    answer = await _request(engine, "GET", _query(session.sid))
    assert orjson.loads(answer.body) == {"code": 1, "message": "Session ID unknown"}
    assert session.sid not in engine.sessions


async def test_the_clients_own_close_ends_its_pending_poll_with_a_noop() -> None:
    handler = Handler()
    engine = EngineServer(OPTIONS, handler)
    session = await _open(engine)
    poll = asyncio.create_task(_request(engine, "GET", _query(session.sid)))
    await asyncio.sleep(0)  # the poll runs until it waits for packets
    assert session.polling
    await _request(engine, "POST", _query(session.sid), [b"1"])
    answer = await poll
    assert (answer.status, answer.body) == (200, b"6")
    assert session.sid not in engine.sessions
    assert handler.calls[1:] == [("close", "client close")]


async def test_a_session_closed_without_flush_is_forgotten_at_once() -> None:
    handler = Handler()
    engine = EngineServer(OPTIONS, handler)
    session = await _open(engine)
    session.close("kicked")
    session.close("again")
    assert session.sid not in engine.sessions
    assert handler.calls[1:] == [("close", "kicked")]


async def test_shutdown_tells_every_session_and_closes_it() -> None:
    handler = Handler()
    engine = EngineServer(OPTIONS, handler)
    one, two = await _open(engine), await _open(engine)
    await engine.close_all()
    assert engine.sessions == {}
    assert [c for c in handler.calls if c[0] == "close"] == [("close", "server shutting down")] * 2
    for session in (one, two):
        assert session.conn.close_code == CLOSE_GOING_AWAY
        assert (await session.conn.take()) == (["1"], True)


async def test_a_poll_arriving_after_the_probe_ends_at_once_with_a_noop() -> None:
    # The client sent its poll before `3probe` reached it and pauses polling only once that
    # poll ends: held open, the upgrade waited a whole ping interval (a CI flake).
    engine = EngineServer(OPTIONS, Handler())
    session = await _open(engine)
    session.upgrading = session.probed = True
    answer = await asyncio.wait_for(_request(engine, "GET", _query(session.sid)), 1.0)
    assert (answer.status, answer.body) == (200, b"6")
    session.stop_timers()
