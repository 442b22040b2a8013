"""Settings: defaults, parsing, and one clear line naming a bad variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hubcore.settings import Settings, SettingsError, load_settings

SECRET = "s" * 32


def test_defaults_match_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("HUB_"):
            monkeypatch.delenv(key)
    s = Settings(_env_file=None)
    assert s.kafka_bootstrap == "localhost:9092"
    assert s.mongo_url == "mongodb://localhost:27017"
    assert s.mongo_db == "hub"
    assert s.cors_origins == ["http://localhost:5173"]
    assert s.ws_auth_timeout == 10
    assert s.jwt_algorithms == ["HS256"]


def test_env_lists_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("HUB_JWT_ALGORITHMS", "HS512")
    monkeypatch.setenv("HUB_JWT_SECRET", SECRET)
    s = load_settings(_env_file=None)
    assert s.cors_origins == ["https://a.example", "https://b.example"]
    assert s.jwt_algorithms == ["HS512"]


def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_TOPIC_PARTITIONS", "many")
    with pytest.raises(SettingsError) as info:
        load_settings(_env_file=None)
    assert info.value.variable == "HUB_TOPIC_PARTITIONS"
    assert "many" in str(info.value)


def test_short_jwt_secret_is_refused_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_JWT_SECRET", "too-short-secret")
    with pytest.raises(SettingsError) as info:
        load_settings(_env_file=None)
    assert info.value.variable == "HUB_JWT_SECRET"
    assert "32 bytes" in str(info.value)
    assert "too-short-secret" not in str(info.value)


@pytest.mark.parametrize("algorithms", ["none", "HS256,RS256"])
def test_unsafe_algorithms_are_refused(monkeypatch: pytest.MonkeyPatch, algorithms: str) -> None:
    monkeypatch.setenv("HUB_JWT_SECRET", SECRET)
    monkeypatch.setenv("HUB_JWT_ALGORITHMS", algorithms)
    with pytest.raises(SettingsError) as info:
        load_settings(_env_file=None)
    assert info.value.variable == "HUB_JWT_ALGORITHMS"


def test_public_key_algorithms_need_a_key_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_JWT_SECRET", SECRET)
    monkeypatch.setenv("HUB_JWT_ALGORITHMS", "RS256")
    with pytest.raises(SettingsError) as info:
        load_settings(_env_file=None)
    assert info.value.variable == "HUB_JWT_ALGORITHMS"


@pytest.mark.slow
def test_process_exits_2_with_one_line_naming_the_variable() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env["HUB_JWT_SECRET"] = "short"
    result = subprocess.run(
        [sys.executable, "-m", "hub", "token", "alice"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "HUB_JWT_SECRET" in lines[0]
    assert result.stdout == ""
