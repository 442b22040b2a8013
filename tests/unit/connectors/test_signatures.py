"""Authenticity checks: right signatures pass, anything else is refused with the reason."""

from __future__ import annotations

import time

import pytest

from connectors.errors import BadSignature
from connectors.signatures import (
    check_hub_signature,
    check_secret_token,
    check_slack_signature,
    hmac_sha256_hex,
    slack_signature,
)

BODY = b'{"a": 1}'


def test_hmac_matches_a_known_vector() -> None:
    # RFC 4231 test case 2.
    assert (
        hmac_sha256_hex("Jefe", b"what do ya want for nothing?")
        == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def test_hub_signature() -> None:
    good = "sha256=" + hmac_sha256_hex("s3cret", BODY)
    check_hub_signature("s3cret", good, BODY)
    check_hub_signature("s3cret", good.upper().replace("SHA256=", "sha256="), BODY)
    cases = {
        None: "missing",
        "": "missing",
        "sha1=abc": "not of the form",
        "sha256=": "not of the form",
        "sha256=" + hmac_sha256_hex("other", BODY): "does not match",
        "sha256=é" * 3: "does not match",
    }
    for header, reason in cases.items():
        with pytest.raises(BadSignature, match=reason):
            check_hub_signature("s3cret", header, BODY)
    with pytest.raises(BadSignature, match="does not match"):
        check_hub_signature("s3cret", good, BODY + b" ")


def test_secret_token() -> None:
    check_secret_token("tok", "tok", "X-T")
    with pytest.raises(BadSignature, match="X-T is missing"):
        check_secret_token("tok", None, "X-T")
    with pytest.raises(BadSignature, match="X-T is wrong"):
        check_secret_token("tok", "tok2", "X-T")


def test_slack_signature_and_window() -> None:
    now = time.time()
    ts = str(int(now))
    sig = slack_signature("sign", ts, BODY)
    assert sig.startswith("v0=")
    check_slack_signature("sign", ts, sig, BODY, now)
    # Inside the window on both sides; outside it refused even when correctly signed.
    for skew in (-299, 299):
        t = str(int(now) + skew)
        check_slack_signature("sign", t, slack_signature("sign", t, BODY), BODY, now)
    for skew in (-301, 301):
        t = str(int(now) + skew)
        with pytest.raises(BadSignature, match="5 minutes"):
            check_slack_signature("sign", t, slack_signature("sign", t, BODY), BODY, now)
    with pytest.raises(BadSignature, match="Timestamp is missing"):
        check_slack_signature("sign", None, sig, BODY, now)
    with pytest.raises(BadSignature, match="Signature is missing"):
        check_slack_signature("sign", ts, None, BODY, now)
    with pytest.raises(BadSignature, match="not a Unix time"):
        check_slack_signature("sign", "yesterday", sig, BODY, now)
    with pytest.raises(BadSignature, match="does not match"):
        check_slack_signature("other", ts, sig, BODY, now)
