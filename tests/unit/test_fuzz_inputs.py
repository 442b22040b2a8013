"""Property tests of the other inputs anyone can send: `/ws` frames and cursors, account
bodies, outbound hosts and tokens. Each either parses or is refused with the one error
type its caller maps to a 4xx / close code; nothing else escapes."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gateway.auth import TokenVerifier
from gateway.errors import BadRequest, Unauthorized
from gateway.frames import Cursor
from hubcore.account_rules import RULES, check_account
from hubcore.errors import InvalidField
from hubcore.outbound import AddressRefused, OutboundPolicy
from hubcore.settings import Settings
from schemas.ws import CLIENT_FRAME_ADAPTER, Authenticate, Ping
from tests.strategies import json_values as any_json

FUZZ = settings(max_examples=200, deadline=1000, database=None)
json_values = any_json()
frame_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["authenticate", "ping", "x", ""]) | st.text(max_size=10)},
    optional={"token": json_values, "resumeFrom": json_values, "extra": json_values},
)


@FUZZ
@given(text=st.text(max_size=300) | frame_like.map(json.dumps))
def test_ws_frames_parse_or_are_invalid(text: str) -> None:
    try:
        frame = CLIENT_FRAME_ADAPTER.validate_json(text)
    except ValidationError:
        return
    assert isinstance(frame, Authenticate | Ping)


@FUZZ
@given(text=st.text(max_size=60) | st.from_regex(r"\A\d{1,25}-\d{1,25}\Z"))
def test_cursors_parse_or_are_bad_requests(text: str) -> None:
    try:
        cursor = Cursor.parse(text)
    except BadRequest:
        return
    assert cursor.partition >= 0 and cursor.offset >= 0


@FUZZ
@given(
    platform=st.sampled_from(sorted(RULES)) | st.text(max_size=10),
    external_id=st.text(max_size=20),
    credentials=st.dictionaries(
        st.sampled_from(sorted({k for r in RULES.values() for k in (*r.required, *r.optional)}))
        | st.text(max_size=8),
        json_values,
        max_size=7,
    ),
    mode=st.none() | st.sampled_from(["poll", "webhook"]) | st.text(max_size=8),
)
def test_account_bodies_are_checked_or_name_a_field(
    platform: str, external_id: str, credentials: dict[str, Any], mode: str | None
) -> None:
    try:
        clean, chosen = check_account(platform, external_id, credentials, mode)
    except InvalidField as exc:
        assert exc.field
        return
    assert chosen in RULES[platform].modes
    assert all(isinstance(v, str | int | bool) for v in clean.values())


BASE = {
    "telegram": {"botToken": "123:abc", "webhookSecret": "w"},
    "slack": {"signingSecret": "s", "botToken": "xoxb-1"},
    "whatsapp": {"appSecret": "a", "verifyToken": "v", "accessToken": "EAAG"},
    "generic": {"secret": "s", "callbackUrl": "https://hooks.example.com/h"},
}
CONTROL = st.sampled_from(["\n", "\r", "\x00", "\x07", "\x1b", "\x7f", "\x85", "\u2028"])


@FUZZ
@given(
    case=st.sampled_from([(p, k) for p, creds in BASE.items() for k in creds]),
    value=st.text(min_size=1, max_size=40)
    | st.tuples(st.text(max_size=10), CONTROL, st.text(max_size=10)).map("".join),
)
def test_accepted_credentials_make_valid_requests(case: tuple[str, str], value: str) -> None:
    """Whatever a user puts in one field: refused naming it, or the request the sender
    will build from it is valid (a line break in a token ended a consumer, issue 22)."""
    platform, key = case
    try:
        clean, _ = check_account(platform, "ext", {**BASE[platform], key: value}, None)
    except InvalidField as exc:
        assert exc.field == f"credentials.{key}"
        return
    assert not any(c in v for v in clean.values() if isinstance(v, str) for c in "\n\r\x00")
    url = clean.get("callbackUrl", "https://api.example.com/")
    if platform == "telegram":
        url = f"https://api.example.com/bot{clean['botToken']}/sendMessage"
    token = clean.get("accessToken") or clean.get("botToken") or "t"
    request = httpx.Request("POST", url, headers={"Authorization": f"Bearer {token}"})
    if platform == "telegram":
        assert request.url.path.endswith("/sendMessage") and "?" not in str(request.url)


@FUZZ
@given(host=st.text(max_size=80), port=st.integers(min_value=1, max_value=65535))
def test_outbound_hosts_resolve_publicly_or_are_refused(host: str, port: int) -> None:
    def resolver(name: str, port: int) -> list[str]:
        return ["10.0.0.1"] if len(name) % 2 else ["93.184.215.14"]

    policy = OutboundPolicy.from_settings(Settings(_env_file=None), resolver)
    try:
        address = policy.address_for(host, port)
    except AddressRefused:
        return
    assert ipaddress.ip_address(address).is_global


JWT_SHAPE = r"\A[A-Za-z0-9_-]{2,40}(\.[A-Za-z0-9_-]{0,40}){2}\Z"
VERIFIER = TokenVerifier(
    Settings(_env_file=None, jwt_secret="f" * 40, jwt_audience="a", jwt_issuer="i")
)


@FUZZ
@given(
    token=st.text(max_size=200)
    | st.from_regex(r"\A[A-Za-z0-9_-]{2,40}(\.[A-Za-z0-9_-]{0,40}){2}\Z")
)
def test_arbitrary_tokens_are_unauthorized(token: str) -> None:
    with pytest.raises(Unauthorized):
        VERIFIER.verify(token)
