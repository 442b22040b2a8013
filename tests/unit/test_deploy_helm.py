"""deploy/helm/hub rendered by Helm v4 (`scripts/helm.sh` builds it): it lints strictly,
and the release it renders is one a person could apply: every env name a real setting
whose values pass the processes' production checks, probes on real routes and ports, no
secret in a ConfigMap, only the public surface in the Ingress."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from hubcore.sealing import new_key
from hubcore.settings import Settings
from tests.unit.test_deploy_compose import PORT_SETTING, routes

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "hub"
SECRETS = {
    "jwt_secret": "j" * 48,
    "credentials_key": new_key(),
    "mongo_url": "mongodb://hub:s3cret@mongo-0.mongo:27017/?replicaSet=rs0",
}
REQUIRED = {
    "settings.kafka_bootstrap": "kafka-bootstrap.kafka:9092",
    "settings.jwt_audience": "hub",
    "settings.jwt_issuer": "https://id.example",
    **{f"secretSettings.{k}": v for k, v in SECRETS.items()},
}
SECRET_ENV = {f"HUB_{k.upper()}" for k in ("jwt_secret", "credentials_key", "mongo_url")} | {
    "HUB_SOCKETIO_PID_KEY"
}


def helm() -> str:
    binary = shutil.which("helm") or str(ROOT / ".hub" / "bin" / "helm")
    if not os.access(binary, os.X_OK):
        pytest.skip("helm is not installed: scripts/helm.sh builds Helm v4 into .hub/bin")
    return binary


def run_helm(*args: str, values: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    sets = [f"--set-string={k}={v}" for k, v in (REQUIRED if values is None else values).items()]
    return subprocess.run(
        [helm(), *args, str(CHART), *sets],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def render(values: dict[str, str] | None = None) -> list[dict[str, Any]]:
    result = run_helm("template", "--namespace", "hub", values=values)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def test_the_chart_lints_strictly() -> None:
    result = run_helm("lint", "--strict")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_release_has_each_process_kind_with_its_budget_and_scaling() -> None:
    docs = render()
    kinds = {
        d["metadata"]["labels"]["app.kubernetes.io/component"] for d in by_kind(docs, "Deployment")
    }
    assert kinds == {"connectors", "streams", "gateway"}
    assert len(by_kind(docs, "PodDisruptionBudget")) == 3
    scaled = {
        d["spec"]["scaleTargetRef"]["name"].rsplit("-", 1)[1]
        for d in by_kind(docs, "HorizontalPodAutoscaler")
    }
    assert scaled == {"connectors", "gateway"}  # streams scale by partitions, by hand
    for deployment in by_kind(docs, "Deployment"):
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"]


def _env(docs: list[dict[str, Any]], deployment: dict[str, Any]) -> dict[str, str]:
    """The environment a container starts with: its ConfigMap, Secret and own env."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for source in container["envFrom"]:
        if "configMapRef" in source:
            name, kind, field = source["configMapRef"]["name"], "ConfigMap", "data"
        else:
            name, kind, field = source["secretRef"]["name"], "Secret", "stringData"
        (doc,) = [d for d in by_kind(docs, kind) if d["metadata"]["name"] == name]
        env.update(doc[field])
    env.update({e["name"]: e["value"] for e in container.get("env", [])})
    return env


def test_every_env_name_is_a_setting_and_the_values_pass_production_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs = render()
    fields = set(Settings.model_fields)
    for deployment in by_kind(docs, "Deployment"):
        env = _env(docs, deployment)
        unknown = [k for k in env if not (k.startswith("HUB_") and k[4:].lower() in fields)]
        assert unknown == [], f"not settings (silently ignored): {unknown}"
        for key in list(os.environ):
            if key.startswith("HUB_"):
                monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = Settings(_env_file=None)
        assert not settings.development
        settings.require_jwt_key()
        settings.require_credentials_key()
        assert "*" not in settings.trusted_proxies


def test_probes_ask_the_real_routes_on_the_real_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = render()
    for deployment in by_kind(docs, "Deployment"):
        kind = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == [kind]
        (port,) = container["ports"]
        env = _env(docs, deployment)
        assert int(env[f"HUB_{PORT_SETTING[kind].upper()}"]) == port["containerPort"]
        ready = container["readinessProbe"]["httpGet"]
        assert ready["path"] == "/health" and ready["port"] == port["name"]
        assert ready["path"] in routes()[kind]
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/path"] in routes()[kind]


def test_empty_values_leave_settings_at_their_defaults() -> None:
    (config,) = by_kind(render(), "ConfigMap")
    assert "HUB_CORS_ORIGINS" not in config["data"]  # values.yaml has it ""
    docs = render({**REQUIRED, "settings.cors_origins": "https://inbox.example"})
    (config,) = by_kind(docs, "ConfigMap")
    assert config["data"]["HUB_CORS_ORIGINS"] == "https://inbox.example"


def test_no_secret_in_a_config_map() -> None:
    docs = render()
    for config in by_kind(docs, "ConfigMap"):
        assert not set(config["data"]) & SECRET_ENV
        for value in SECRETS.values():
            assert value not in yaml.safe_dump(config), "a secret value in a ConfigMap"
    (secret,) = by_kind(docs, "Secret")
    assert set(secret["stringData"]) == {f"HUB_{k.upper()}" for k in SECRETS}


def test_a_secret_given_as_a_plain_setting_or_a_missing_one_is_refused() -> None:
    leaked = run_helm("template", values={**REQUIRED, "settings.jwt_secret": "x" * 40})
    assert leaked.returncode != 0 and "secretSettings" in leaked.stderr
    missing = {k: v for k, v in REQUIRED.items() if k != "settings.kafka_bootstrap"}
    refused = run_helm("template", values=missing)
    assert refused.returncode != 0 and "HUB_KAFKA_BOOTSTRAP" in refused.stderr


def test_an_existing_secret_replaces_the_rendered_one() -> None:
    values = {k: v for k, v in REQUIRED.items() if not k.startswith("secretSettings.")}
    docs = render({**values, "existingSecret": "hub-keys"})
    assert by_kind(docs, "Secret") == []
    for deployment in by_kind(docs, "Deployment"):
        sources = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        assert {"secretRef": {"name": "hub-keys"}} in sources


def test_the_ingress_publishes_the_public_surface_with_sticky_socketio() -> None:
    docs = render()
    paths: dict[str, tuple[str, dict[str, str]]] = {}
    for ingress in by_kind(docs, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["backend"]["service"]["name"].endswith("-gateway")
                paths[path["path"]] = (path["pathType"], ingress["metadata"]["annotations"])
    assert {p: t for p, (t, _) in paths.items()} == {
        "/": "Exact",
        "/static/": "Prefix",
        "/api/": "Prefix",
        "/ws": "Exact",
        "/socket.io/": "Prefix",
    }
    assert paths["/socket.io/"][1]["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert "nginx.ingress.kubernetes.io/affinity" not in paths["/ws"][1]
