"""Web Push cryptography: RFC 8291's own example byte for byte, VAPID tokens a push
service verifies, keys refused without being echoed, notification payloads bounded."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from connectors.push.notifier import notification
from gateway.api.push import PushSubscriptionBody
from hubcore.settings import Settings, SettingsError
from hubcore.webpush import (
    MAX_PAYLOAD_BYTES,
    Vapid,
    b64url,
    b64url_decode,
    decrypt,
    encrypt,
    load_vapid_key,
    new_vapid_key,
    public_point,
)
from schemas import Message, Sender
from schemas.base import utc_now

# RFC 8291 section 5 (Appendix A's values).
PLAINTEXT = b"When I grow up, I want to be a watermelon"
AS_PRIVATE = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
UA_PRIVATE = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
UA_PUBLIC = (
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
)
AUTH = "BTBZMqHH6r4Tts7J_aSIgg"
SALT = "DGv6ra1nlYgDCS1FRnbzlw"
BODY = (
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27ml"
    "mlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPT"
    "pK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
)


def _private(text: str) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(b64url_decode(text), "big"), ec.SECP256R1())


def test_encrypt_reproduces_rfc_8291_example() -> None:
    body = encrypt(
        PLAINTEXT,
        b64url_decode(UA_PUBLIC),
        b64url_decode(AUTH),
        salt=b64url_decode(SALT),
        sender=_private(AS_PRIVATE),
    )
    assert b64url(body) == BODY


def test_decrypt_opens_the_example_and_fresh_bodies() -> None:
    receiver = _private(UA_PRIVATE)
    assert b64url(public_point(receiver.public_key())) == UA_PUBLIC
    assert decrypt(b64url_decode(BODY), receiver, b64url_decode(AUTH)) == PLAINTEXT
    fresh = encrypt(b"hello", b64url_decode(UA_PUBLIC), b64url_decode(AUTH))
    assert fresh != encrypt(b"hello", b64url_decode(UA_PUBLIC), b64url_decode(AUTH))
    assert decrypt(fresh, receiver, b64url_decode(AUTH)) == b"hello"
    with pytest.raises(ValueError, match="does not decrypt"):
        decrypt(fresh, receiver, b"\x00" * 16)
    with pytest.raises(ValueError, match="at most"):
        encrypt(b"x" * (MAX_PAYLOAD_BYTES + 1), b64url_decode(UA_PUBLIC), b64url_decode(AUTH))


def test_vapid_token_verifies_with_the_public_key_for_the_endpoint_origin() -> None:
    key = new_vapid_key()
    settings = Settings(_env_file=None, vapid_private_key=key, vapid_subject="mailto:ops@hub.test")
    vapid = Vapid.from_settings(settings)
    assert vapid is not None
    header = vapid.authorization("https://push.example.com:8443/wpush/v2/abc?x=1")
    assert header == vapid.authorization("https://push.example.com:8443/other")  # reused
    token, public = header.removeprefix("vapid t=").split(", k=")
    verifying = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(public))
    claims = jwt.decode(
        token, verifying, algorithms=["ES256"], audience="https://push.example.com:8443"
    )
    assert claims["sub"] == "mailto:ops@hub.test"
    assert 0 < claims["exp"] - utc_now().timestamp() <= 24 * 3600


def test_a_bad_vapid_key_is_refused_without_being_echoed() -> None:
    with pytest.raises(SettingsError) as caught:
        load_vapid_key("not-a-key-but-a-secret-value")
    assert caught.value.variable == "HUB_VAPID_PRIVATE_KEY"
    assert "not-a-key-but-a-secret-value" not in str(caught.value)
    pem_key = ec.generate_private_key(ec.SECP256R1())
    from cryptography.hazmat.primitives import serialization

    pem = pem_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    assert load_vapid_key(pem).private_numbers() == pem_key.private_numbers()
    settings = Settings(_env_file=None, vapid_private_key="secret-value-here")
    assert "secret-value-here" not in repr(settings)
    # Blank (a deployment passing on an unset variable) is unset: no Web Push.
    assert Vapid.from_settings(Settings(_env_file=None, vapid_private_key=" ")) is None


def _message(text: str, name: str | None = "Ann") -> Message:
    now = utc_now() - timedelta(seconds=1)
    return Message(
        id="m1",
        platform="slack",
        account_id="a",
        conversation_id="c1",
        sender=Sender(id="U1", name=name),
        text=text,
        sent_at=now,
        received_at=now,
    )


def test_notification_previews_counts_and_hides() -> None:
    one = notification(_message("hi there"), 1, True, 5)
    assert b'"title":"Ann (slack)"' in one.payload and b'"body":"hi th\xe2\x80\xa6"' in one.payload
    three = notification(_message("hi"), 3, True, 50)
    assert b'"body":"3 new messages: hi"' in three.payload
    hidden = notification(_message("secret text"), 2, False, 50)
    assert b"secret" not in hidden.payload and b"Ann" not in hidden.payload
    assert b'"body":"2 new messages"' in hidden.payload
    assert len(one.topic) <= 32 and one.topic == hidden.topic
    huge = notification(_message("\U0001f600" * 1000), 1, True, 1000)
    assert len(huge.payload) <= MAX_PAYLOAD_BYTES


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"endpoint": "ftp://push.example.com/x"}, "endpoint"),
        ({"endpoint": "https://user:pw@push.example.com/x"}, "endpoint"),
        ({"keys": {"p256dh": UA_PUBLIC[:-4] + "AAAA", "auth": AUTH}}, "p256dh"),
        ({"keys": {"p256dh": UA_PUBLIC, "auth": AUTH + "AA"}}, "auth"),
        ({"keys": {"p256dh": UA_PUBLIC, "auth": AUTH, "extra": "x"}}, "extra"),
    ],
)
def test_subscription_bodies_are_validated_strictly(change: dict[str, object], field: str) -> None:
    body = {"endpoint": "https://push.example.com/x", "keys": {"p256dh": UA_PUBLIC, "auth": AUTH}}
    PushSubscriptionBody.model_validate(body)
    with pytest.raises(ValueError, match=field):
        PushSubscriptionBody.model_validate({**body, **change})
