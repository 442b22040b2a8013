"""docker-compose.yml and deploy/nginx.conf read as an operator's Docker would run them
(no Docker engine here: the files are checked, not run): every setting a hub service gets
is a real one and valid, every health check asks a real `/health`, data lives in volumes
at the directories the images write, and the proxy publishes only the public surface."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from hubcore.sealing import new_key
from hubcore.settings import Settings
from tests.local_servers import render_nginx_conf

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
DOCKERFILE = ROOT / "Dockerfile"

# What an operator exports before `docker compose up` (the file requires these four).
OPERATOR_ENV = {
    "HUB_JWT_SECRET": "s" * 48,
    "HUB_JWT_AUDIENCE": "hub",
    "HUB_JWT_ISSUER": "https://id.example",
    "HUB_CREDENTIALS_KEY": new_key(),
}
# Where each image keeps what must survive `docker compose down` (from each image's own
# Dockerfile and start script; apache/kafka's is wherever KAFKA_LOG_DIRS points, checked
# separately, since its default is /tmp/kraft-combined-logs, outside any volume).
DATA_DIRS = {
    "mongo": "/data/db",
    "prom/prometheus": "/prometheus",
    "grafana/grafana": "/var/lib/grafana",
}
# The port setting each hub process serves /health on.
PORT_SETTING = {
    "connectors": "connectors_port",
    "streams": "streams_web_port",
    "gateway": "gateway_port",
}
_VAR = re.compile(r"\$\{(\w+)(?:(:\?|:-)([^}]*))?\}")


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?message}`."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.groups()
        if env.get(name):
            return env[name]
        if op == ":-":
            return arg
        if op == ":?":
            raise AssertionError(f"compose would refuse to start: {name}: {arg}")
        return ""

    return _VAR.sub(one, value)


@cache
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def hub_services() -> dict[str, dict[str, Any]]:
    """The services built from this repository's Dockerfile: the hub's processes."""
    return {name: svc for name, svc in services().items() if svc.get("build") == "."}


def dockerfile_env() -> dict[str, str]:
    """The final stage's `ENV` (backslash-continued `KEY=value` pairs)."""
    final = DOCKERFILE.read_text().split("\nFROM ")[-1].replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in final.splitlines():
        if line.startswith("ENV "):
            for pair in line[4:].split():
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def service_env(svc: dict[str, Any]) -> dict[str, str]:
    raw = svc.get("environment") or {}
    assert isinstance(raw, dict), "environment as a mapping"
    return {key: interpolate(str(value), OPERATOR_ENV) for key, value in raw.items()}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for key in list(os.environ):
        if key.startswith("HUB_"):
            monkeypatch.delenv(key)
    yield monkeypatch


def container_settings(monkeypatch: pytest.MonkeyPatch, name: str) -> Settings:
    """The Settings a hub container of service `name` starts with: the image's ENV, then
    the service's environment."""
    env = {**dockerfile_env(), **service_env(hub_services()[name])}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings(_env_file=None)


@cache
def routes() -> dict[str, set[str]]:
    """The paths each hub process really serves (its apps built, not started)."""
    from connectors.app import create_app as connectors_app
    from gateway.app import create_app as gateway_app
    from streams.worker import create_app as streams_app

    settings = Settings(
        _env_file=None, jwt_secret="s" * 48, development=True, credentials_key=new_key()
    )
    return {
        "connectors": set(connectors_app(settings, pollers=False).openapi()["paths"]),
        "gateway": set(gateway_app(settings).api.openapi()["paths"]),
        "streams": set(streams_app(settings).web.views),
    }


def test_the_hub_services_are_the_three_processes() -> None:
    assert {name: svc["command"] for name, svc in hub_services().items()} == {
        "connectors": ["connectors"],
        "streams": ["streams"],
        "gateway": ["gateway"],
    }


@pytest.mark.parametrize("name", sorted(PORT_SETTING))
def test_every_setting_passed_is_a_real_valid_setting(
    clean_env: pytest.MonkeyPatch, name: str
) -> None:
    env = {**dockerfile_env(), **service_env(hub_services()[name])}
    fields = set(Settings.model_fields)
    unknown = [k for k in env if k.startswith("HUB_") and k[4:].lower() not in fields]
    assert unknown == [], f"{name}: not settings (silently ignored): {unknown}"
    settings = container_settings(clean_env, name)
    # Production checks, as each process makes them at start: tokens with audience and
    # issuer, a credentials key; the variables the operator did not export would stop
    # compose before (the `:?` forms, checked by interpolate).
    assert not settings.development
    settings.require_jwt_key()
    settings.require_credentials_key()
    assert settings.host == "0.0.0.0"  # noqa: S104 - reachable by the other containers


@pytest.mark.parametrize("name", sorted(PORT_SETTING))
def test_health_checks_ask_the_real_health_route(clean_env: pytest.MonkeyPatch, name: str) -> None:
    check = " ".join(hub_services()[name]["healthcheck"]["test"])
    found = re.search(r"http://localhost:(\d+)(/[^'\"\s)]*)", check)
    assert found, f"{name}: no URL in its health check {check!r}"
    port, path = int(found[1]), found[2]
    settings = container_settings(clean_env, name)
    assert port == getattr(settings, PORT_SETTING[name]), f"{name}: checks another port"
    assert path == "/health", f"{name}: checks {path}, not the route that reports degraded"
    assert path in routes()[name]


def test_every_service_restarts() -> None:
    assert {name: svc.get("restart") for name, svc in services().items()} == {
        name: "unless-stopped" for name in services()
    }


def _mounts(svc: dict[str, Any]) -> dict[str, str]:
    """Container path -> named volume (bind mounts of this repository's files left out)."""
    declared = set(compose()["volumes"])
    out: dict[str, str] = {}
    for spec in svc.get("volumes", []):
        source, target = spec.split(":")[:2]
        if source in declared:
            out[target] = source
    return out


def test_data_lives_in_volumes_where_each_image_writes() -> None:
    by_image = {svc["image"].split(":")[0]: svc for svc in services().values() if "image" in svc}
    for image, directory in DATA_DIRS.items():
        assert directory in _mounts(by_image[image]), f"{image} writes {directory}: no volume"
    kafka = by_image["apache/kafka"]
    log_dirs = kafka["environment"].get("KAFKA_LOG_DIRS")
    assert log_dirs, "apache/kafka writes /tmp/kraft-combined-logs unless KAFKA_LOG_DIRS is set"
    assert set(log_dirs.split(",")) <= set(_mounts(kafka)), "a Kafka log dir outside the volume"
    used = {v for svc in services().values() for v in _mounts(svc).values()}
    assert used == set(compose()["volumes"]), "a volume declared and unused, or the reverse"


def test_hub_containers_keep_their_data_dir_only_when_it_holds_state(
    clean_env: pytest.MonkeyPatch,
) -> None:
    for name, svc in hub_services().items():
        settings = container_settings(clean_env, name)
        if name == "streams" and settings.streams_store == "rocksdb":
            assert str(settings.data_dir) in _mounts(svc), "RocksDB tables outside a volume"
        for key in list(os.environ):
            if key.startswith("HUB_"):
                clean_env.delenv(key)
    assert dockerfile_env()["HUB_DATA_DIR"].startswith("/home/hub/")  # the image's user owns it


def test_gateways_trust_the_proxy_network_only(clean_env: pytest.MonkeyPatch) -> None:
    settings = container_settings(clean_env, "gateway")
    assert "*" not in settings.trusted_proxies
    subnets = [
        ipaddress.ip_network(cfg["subnet"])
        for cfg in compose()["networks"]["default"]["ipam"]["config"]
    ]
    for entry in settings.trusted_proxies:
        network = ipaddress.ip_network(entry)  # an address or network, not a name
        assert any(network.subnet_of(s) for s in subnets), f"{entry} is outside the network"  # type: ignore[arg-type]
    proxy = services()["proxy"]
    assert proxy.get("networks") in (None, ["default"]), "the proxy must sit on that network"
    assert "ports" not in services()["gateway"], "gateways are reached through the proxy"


# --- deploy/nginx.conf ---------------------------------------------------------------
def _server_block(conf: str) -> str:
    return conf[conf.index("server {") :]


def test_the_proxy_publishes_only_the_public_surface() -> None:
    conf = NGINX_CONF.read_text()
    locations = dict(re.findall(r"location\s+((?:=\s+)?\S+)\s*\{\s*([^}]*)\}", _server_block(conf)))
    assert {path: body.split()[0] for path, body in locations.items()} == {
        "= /": "proxy_pass",  # the inbox page
        "/static/": "proxy_pass",  # its CSS and JS
        "/api/": "proxy_pass",
        "= /ws": "proxy_pass",
        "/socket.io/": "proxy_pass",
        "/": "return",  # /metrics, /docs, /openapi.json, /health: not published
    }
    assert locations["/"].split()[1].rstrip(";") == "404"
    assert "gateway_sticky" in locations["/socket.io/"]
    # Each published prefix leads to real gateway routes, and nothing operational does.
    gateway = routes()["gateway"]
    assert {p for p in gateway if p.startswith("/api/")}, "no REST route under /api/"
    for hidden in ("/metrics", "/health", "/docs", "/openapi.json"):
        assert not any(
            hidden == p.removeprefix("= ") or hidden.startswith(p)
            for p in locations
            if p not in ("/",)
        ), hidden


def test_the_proxy_forwards_the_headers_the_gateway_reads() -> None:
    headers = dict(re.findall(r"proxy_set_header\s+(\S+)\s+([^;]+);", NGINX_CONF.read_text()))
    # Host with its port (the Origin check compares scheme://Host), the client's address
    # alone (no forged chain), and the scheme (HTTPS origins).
    assert headers["Host"] == "$http_host"
    assert headers["X-Forwarded-For"] == "$remote_addr"
    assert headers["X-Forwarded-Proto"] == "$scheme"
    assert headers["Upgrade"] == "$http_upgrade"


def test_nginx_accepts_the_shipped_config(tmp_path: Path) -> None:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        pytest.skip("nginx is not installed: scripts/system-packages.sh installs nginx-light")
    # The upstreams on loopback: Debian's nginx (1.22) has no upstream `resolve`, and
    # `gateway` resolves only inside compose; every other line is checked as shipped.
    conf = tmp_path / "nginx.conf"
    conf.write_text(render_nginx_conf(tmp_path, 18000, [18001]))
    result = subprocess.run(
        [binary, "-t", "-p", str(tmp_path), "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# --- the documented compose commands ---------------------------------------------------
def _code_blocks(markdown: str) -> list[str]:
    return re.findall(r"```(?:bash|sh)\n(.*?)```", markdown, re.S)


@pytest.mark.parametrize("doc", ["docs/operations.md", "docs/observability.md"])
def test_documented_compose_commands_set_what_compose_requires(doc: str) -> None:
    """Each pasted `docker compose up` block exports every variable the file requires
    (`${VAR:?...}`); running them needs Docker, so the variables are what is checked."""
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE.read_text()))
    assert required >= {"HUB_JWT_SECRET", "HUB_CREDENTIALS_KEY"}
    blocks = [b for b in _code_blocks((ROOT / doc).read_text()) if "docker compose" in b]
    assert blocks, f"{doc} has no compose command"
    for block in blocks:
        exported = set(re.findall(r"(?:export\s+|\s)(HUB_\w+)=", " " + block))
        assert required <= exported, f"{doc}: the block leaves out {sorted(required - exported)}"
