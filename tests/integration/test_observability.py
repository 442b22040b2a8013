"""Every metric the Grafana dashboard and the Prometheus alert rules name exists on the
`/metrics` of the real processes (`hub up`), and the compose profile provisions them."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.integration.hub_process import RunningHub, hub_up
from tests.resources import SessionResources

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
_SERIES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count")}


@pytest.fixture(scope="module")
def hub(
    resources: SessionResources, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningHub]:
    with hub_up(resources, tmp_path_factory.mktemp("hub-up-metrics")) as running:
        yield running


def exposed(text: str) -> set[str]:
    """The series names a Prometheus text exposition offers, from its `# TYPE` lines."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            names.update(name + suffix for suffix in _SERIES.get(kind, ("",)))
    return names


def _scrape(url: str, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            resp = httpx.get(url, timeout=5)
            if resp.status_code == 200:
                return resp.text
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{url} never answered"
        time.sleep(1)


def expressions() -> dict[str, str]:
    """Where -> PromQL, for every dashboard target and alert rule."""
    found: dict[str, str] = {}
    dashboard = json.loads((DEPLOY / "grafana/dashboards/hub.json").read_text(encoding="utf-8"))
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found[f"panel {panel['title']!r} {target['refId']}"] = target["expr"]
    rules = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            found[f"alert {rule['alert']}"] = rule["expr"]
    return found


def test_every_metric_named_exists_on_the_processes(hub: RunningHub) -> None:
    served = set()
    for url in (
        f"{hub.connectors}/metrics",
        f"{hub.gateway}/metrics",
        f"http://127.0.0.1:{hub.settings.streams_web_port}/metrics",
    ):
        served |= exposed(_scrape(url))
    named = {
        (where, name)
        for where, expr in expressions().items()
        for name in re.findall(r"\bhub_[a-z0-9_]+", expr)
    }
    assert len({name for _, name in named}) >= 20  # the extraction finds the real names
    unknown = sorted((where, name) for where, name in named if name not in served)
    assert not unknown, f"not on any /metrics: {unknown}"
    # Health is evaluated at scrape time: all three dependencies of the gateway are up.
    gateway = _scrape(f"{hub.gateway}/metrics")
    assert 'hub_healthy{process="gateway"} 1.0' in gateway


def test_a_message_moves_the_streams_position_metrics(hub: RunningHub) -> None:
    account, secret = hub.create_generic_account("metrics-user")
    assert hub.send_generic(account, secret).status_code == 200
    streams = f"http://127.0.0.1:{hub.settings.streams_web_port}/metrics"
    deadline = time.monotonic() + 90  # the first batch waits for the consumer group
    while not re.search(
        r"^hub_streams_projection_delay_seconds_count [1-9]", _scrape(streams), re.M
    ):
        assert time.monotonic() < deadline, "no batch observed"
        time.sleep(1)
    # The lag is past the committed offset, read at the scrape: 0 once the batch's
    # records are committed (after its projections are written).
    while not re.search(
        r'^hub_streams_consumer_lag\{partition="\d+",topic="[^"]+raw-messages"\} 0\.0',
        text := _scrape(streams),
        re.M,
    ):
        assert time.monotonic() < deadline, text
        time.sleep(1)
    assert re.search(r"^hub_streams_commit_stalled_seconds\{", text, re.M), text
    assert 'hub_streams_batch_phase_seconds_count{phase="store"}' in text


def test_the_observability_profile_provisions_prometheus_and_grafana() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["observability"]
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), volume
        assert all(p.startswith("127.0.0.1:") for p in services[name]["ports"])
    config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == {"hub-connectors", "hub-streams", "hub-gateway"}
