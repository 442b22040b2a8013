"""`hub up` generates development secrets once and keeps them private."""

from __future__ import annotations

from pathlib import Path

from hub.up import dev_credentials_key, dev_jwt_secret, dev_vapid_key, local_settings
from hubcore.sealing import CredentialCipher
from hubcore.settings import Settings
from hubcore.webpush import Vapid, b64url_decode


def test_dev_credentials_key_is_generated_once_and_private(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, services_dir=tmp_path)
    key = dev_credentials_key(settings)
    assert dev_credentials_key(settings) == key
    assert (tmp_path / "dev-credentials-key").stat().st_mode & 0o077 == 0
    cipher = CredentialCipher([key])
    assert cipher.open(cipher.seal({"secret": "s"})) == {"secret": "s"}
    assert dev_jwt_secret(settings) != key
    assert (tmp_path / "dev-jwt-secret").stat().st_mode & 0o077 == 0


def test_dev_vapid_key_is_generated_once_private_and_loads(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, services_dir=tmp_path)
    key = dev_vapid_key(settings)
    assert dev_vapid_key(settings) == key
    assert (tmp_path / "dev-vapid-key").stat().st_mode & 0o077 == 0
    local, env = local_settings(settings)
    assert env["HUB_VAPID_PRIVATE_KEY"] == key
    vapid = Vapid.from_settings(local)
    assert vapid is not None and len(b64url_decode(vapid.public_key)) == 65
