"""Token verification: pinned algorithms, required claims, audience, issuer, RS/ES keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.auth import TokenVerifier
from gateway.errors import Unauthorized
from hub.tokens import mint_token
from hubcore.settings import Settings, SettingsError

SECRET = "unit-secret-" + "z" * 40
AUD, ISS = "hub", "https://idp"


def _settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "jwt_secret": SECRET,
        "jwt_leeway": 0,
        "jwt_audience": AUD,
        "jwt_issuer": ISS,
        "_env_file": None,
    }
    values.update(overrides)
    return Settings(**values)


def _claims(**extra: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "sub": "alice",
        "aud": AUD,
        "iss": ISS,
        "iat": now,
        "exp": now + timedelta(minutes=5),
        **extra,
    }


def test_valid_hs256_token_gives_the_user_and_expiry() -> None:
    claims = _claims()
    identity = TokenVerifier(_settings()).verify(jwt.encode(claims, SECRET, "HS256"))
    assert identity.user_id == "alice"
    assert identity.expires_at == int(claims["exp"].timestamp())


# Tokens are made when the test runs, not at collection: a long suite outlives their `exp`.
@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (lambda: jwt.encode(_claims(), "other-secret-" + "q" * 40, "HS256"), "signature"),
        (lambda: jwt.encode(_claims(), SECRET, "HS384"), "algorithm"),
        (
            lambda: jwt.encode(_claims(exp=datetime.now(UTC) - timedelta(seconds=5)), SECRET),
            "expired",
        ),
        (lambda: jwt.encode({"sub": "alice"}, SECRET, "HS256"), "'exp'"),
        (lambda: jwt.encode({k: v for k, v in _claims().items() if k != "sub"}, SECRET), "'sub'"),
        (lambda: jwt.encode(_claims(sub=""), SECRET, "HS256"), "subject"),
        (lambda: "not.a.token", "invalid"),
    ],
)
def test_refused_tokens_name_the_reason(make_token: Callable[[], str], reason: str) -> None:
    with pytest.raises(Unauthorized, match=reason):
        TokenVerifier(_settings()).verify(make_token())


def test_alg_none_is_refused_even_when_unsigned() -> None:
    unsigned = jwt.encode(_claims(), "", algorithm="none")
    with pytest.raises(Unauthorized, match="algorithm"):
        TokenVerifier(_settings()).verify(unsigned)


def test_audience_and_issuer_are_checked_when_configured() -> None:
    verifier = TokenVerifier(_settings(jwt_audience="hub", jwt_issuer="https://idp"))
    good = jwt.encode(_claims(aud="hub", iss="https://idp"), SECRET, "HS256")
    assert verifier.verify(good).user_id == "alice"
    with pytest.raises(Unauthorized, match="audience"):
        verifier.verify(jwt.encode(_claims(aud="other", iss="https://idp"), SECRET, "HS256"))
    with pytest.raises(Unauthorized, match="issuer"):
        verifier.verify(jwt.encode(_claims(aud="hub", iss="https://evil"), SECRET, "HS256"))
    with pytest.raises(Unauthorized):
        no_aud = {k: v for k, v in _claims().items() if k != "aud"}
        verifier.verify(jwt.encode(no_aud, SECRET, "HS256"))


def test_unconfigured_audience_accepts_tokens_that_carry_one_in_development() -> None:
    token = jwt.encode(_claims(aud="anything"), SECRET, "HS256")
    dev = _settings(jwt_audience=None, jwt_issuer=None, development=True)
    assert TokenVerifier(dev).verify(token).user_id == "alice"


@pytest.mark.parametrize("missing", ["jwt_audience", "jwt_issuer"])
def test_audience_and_issuer_are_required_outside_development(missing: str) -> None:
    with pytest.raises(SettingsError, match=f"HUB_{missing.upper()}: is required"):
        TokenVerifier(_settings(**{missing: None}))


@pytest.mark.parametrize("claim", ["aud", "iss", "iat"])
def test_tokens_without_audience_issuer_or_issued_at_are_refused(claim: str) -> None:
    claims = _claims()
    del claims[claim]
    with pytest.raises(Unauthorized):
        TokenVerifier(_settings()).verify(jwt.encode(claims, SECRET, "HS256"))


def test_tokens_living_longer_than_the_maximum_are_refused() -> None:
    now = datetime.now(UTC)
    verifier = TokenVerifier(_settings(jwt_max_lifetime=3600))
    ok = _claims(iat=now, exp=now + timedelta(seconds=3600))
    assert verifier.verify(jwt.encode(ok, SECRET, "HS256")).user_id == "alice"
    # Issued long ago and still valid: a forever token signed with the right key.
    ancient = _claims(iat=now - timedelta(days=400), exp=now + timedelta(minutes=5))
    with pytest.raises(Unauthorized, match="lifetime"):
        verifier.verify(jwt.encode(ancient, SECRET, "HS256"))
    with pytest.raises(Unauthorized, match="lifetime"):
        verifier.verify(jwt.encode(_claims(exp=now + timedelta(days=30)), SECRET, "HS256"))


def test_minted_tokens_pass_and_over_long_ones_are_not_minted() -> None:
    settings = _settings(jwt_max_lifetime=3600)
    token = mint_token(settings, "alice", timedelta(minutes=30))
    assert TokenVerifier(settings).verify(token).user_id == "alice"
    with pytest.raises(SettingsError, match="HUB_JWT_MAX_LIFETIME"):
        mint_token(settings, "alice", timedelta(hours=2))


def test_leeway_accepts_a_just_expired_token() -> None:
    token = jwt.encode(_claims(exp=datetime.now(UTC) - timedelta(seconds=2)), SECRET, "HS256")
    assert TokenVerifier(_settings(jwt_leeway=30)).verify(token).user_id == "alice"


def _hs256_signed_with(secret: bytes) -> str:
    def part(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    exp = int(datetime.now(UTC).timestamp()) + 300
    signing_input = (
        part(b'{"alg":"HS256","typ":"JWT"}')
        + b"."
        + part(orjson.dumps({"sub": "alice", "exp": exp, "iat": exp - 300, "aud": AUD, "iss": ISS}))
    )
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + part(signature)).decode()


def _write_public_key(private: Any, path: Path) -> Path:
    path.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def test_rs256_with_public_key_file_and_no_hmac_confusion(tmp_path: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = _write_public_key(private, tmp_path / "rs.pem")
    verifier = TokenVerifier(_settings(jwt_secret=None, jwt_public_key_file=key_file))
    assert verifier.verify(jwt.encode(_claims(), private, "RS256")).user_id == "alice"
    # The classic confusion: HMAC-signed with the public key's bytes as the secret.
    with pytest.raises(Unauthorized, match="algorithm"):
        verifier.verify(_hs256_signed_with(key_file.read_bytes()))


def test_es256_with_public_key_file(tmp_path: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    key_file = _write_public_key(private, tmp_path / "es.pem")
    verifier = TokenVerifier(
        _settings(jwt_secret=None, jwt_public_key_file=key_file, jwt_algorithms="ES256")
    )
    assert verifier.verify(jwt.encode(_claims(), private, "ES256")).user_id == "alice"
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(Unauthorized, match="signature"):
        verifier.verify(jwt.encode(_claims(), other, "ES256"))


def test_unusable_public_key_files_are_setting_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    with pytest.raises(SettingsError, match="not a PEM public key"):
        TokenVerifier(_settings(jwt_secret=None, jwt_public_key_file=garbage))
    ec_key = _write_public_key(ec.generate_private_key(ec.SECP256R1()), tmp_path / "ec.pem")
    with pytest.raises(SettingsError, match="cannot verify RS256"):
        TokenVerifier(_settings(jwt_secret=None, jwt_public_key_file=ec_key))


@pytest.mark.slow
def test_hub_gateway_without_a_key_exits_2_naming_the_variable(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    result = subprocess.run(
        [sys.executable, "-m", "hub", "gateway"],
        env=env,
        cwd=tmp_path,  # no .env here
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "hub: invalid setting HUB_JWT_SECRET: is required (or set HUB_JWT_PUBLIC_KEY_FILE)"
    ]
