"""deploy/prometheus and deploy/grafana: the rules load and each alert has a case where it
fires and one where it stays quiet (`promtool test rules`); every metric the processes
export is on a dashboard panel or listed here as deliberately not; the group-lag probe's
arithmetic and group names. (That every metric named exists on the real processes:
tests/integration/test_observability.py.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from hubcore.group_lag import COMMIT_STALLED, GROUP_LAG, GroupLagProbe, watched_groups
from hubcore.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "hub.json"
# Exported, deliberately on no panel (each with why). Empty today: every metric has one.
NOT_ON_DASHBOARD: dict[str, str] = {}


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool is not installed: scripts/system-packages.sh installs `prometheus`")
    return subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def alerts() -> list[dict[str, Any]]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in rules["groups"] for rule in group["rules"]]


def test_the_rules_load() -> None:
    result = promtool("check", "rules", "alerts.yml", cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_each_alert_fires_and_stays_quiet_as_its_cases_say() -> None:
    result = promtool("test", "rules", "alerts_test.yml", cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_alert_has_a_firing_and_a_quiet_case() -> None:
    cases = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in cases:
        for check in case["alert_rule_test"]:
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - fires == set(), "alerts never shown firing"
    assert names - quiet == set(), "alerts never shown quiet"
    assert fires | quiet <= names, "cases of alerts that do not exist"


def test_each_alert_has_a_runbook_entry() -> None:
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    section = text.split("### Alerts: runbook", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    named = {name for row in rows for name in re.findall(r"`(Hub\w+)`", row.split(" | ")[0])}
    assert named == {rule["alert"] for rule in alerts()}


def test_the_prometheus_config_loads(tmp_path: Path) -> None:
    # The config names the rules where compose mounts them; point it at the file here.
    config = (PROMETHEUS / "prometheus.yml").read_text()
    assert "/etc/prometheus/alerts.yml" in config
    (tmp_path / "prometheus.yml").write_text(
        config.replace("/etc/prometheus/alerts.yml", str(PROMETHEUS / "alerts.yml"))
    )
    result = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def exported() -> set[str]:
    """Every hub_* metric the processes register (their apps' modules imported)."""
    import connectors.app  # noqa: F401 - imported for the metrics they register
    import gateway.app  # noqa: F401
    import streams.worker  # noqa: F401

    return {
        family.name.removesuffix("_total") + ("_total" if family.type == "counter" else "")
        for family in REGISTRY.collect()
        if family.name.startswith("hub_")
    }


def dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p.get("targets", [])]


def test_every_exported_metric_is_on_a_panel_or_listed_as_not() -> None:
    names = exported()
    assert len(names) >= 40  # the registry has the real metrics
    shown = " ".join(dashboard_expressions())
    missing = sorted(
        name
        for name in names - set(NOT_ON_DASHBOARD)
        if not re.search(rf"\b{name}(_bucket|_sum|_count)?\b", shown)
    )
    assert missing == [], "exported, on no panel and not listed in NOT_ON_DASHBOARD"
    assert set(NOT_ON_DASHBOARD) <= names, "listed but no longer exported"


def test_the_dashboard_layout_is_consistent() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells = set()
    for p in panels:
        g = p["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps another panel"
                cells.add((x, y))
    for p in panels:
        for t in p.get("targets", []):
            assert t["datasource"]["uid"] == "hub-prometheus"


def test_the_watched_groups_are_the_consumers_group_ids() -> None:
    from connectors.deliveries.consumer import group_id as deliveries_group
    from connectors.outbound.consumer import group_id
    from streams.worker import app_id

    settings = Settings(_env_file=None, topic_namespace="ops-test")
    expected = {app_id(settings), group_id(settings), deliveries_group(settings)}
    assert set(watched_groups(settings)) == expected


def _value(gauge: Any, *labels: str) -> float:
    value: float = gauge.labels(*labels)._value.get()
    return value


def test_commit_stalled_grows_while_the_committed_offset_stands_and_records_wait() -> None:
    probe = GroupLagProbe(Settings(_env_file=None), {"g": ["t"]})
    key = ("g", "t", 0)
    probe.observe({key: (10, 15)}, now=100.0)  # first sight: since unknown, counted from now
    assert _value(GROUP_LAG, "g", "t", "0") == 5
    assert _value(COMMIT_STALLED, "g", "t", "0") == 0
    probe.observe({key: (10, 20)}, now=160.0)  # stuck: no commit, more records
    assert _value(GROUP_LAG, "g", "t", "0") == 10
    assert _value(COMMIT_STALLED, "g", "t", "0") == 60
    probe.observe({key: (12, 20)}, now=170.0)  # moved: not stuck, only behind
    assert _value(COMMIT_STALLED, "g", "t", "0") == 0
    probe.observe({key: (12, 20)}, now=200.0)
    assert _value(COMMIT_STALLED, "g", "t", "0") == 30
    probe.observe({key: (20, 20)}, now=300.0)  # caught up: nothing waits
    assert _value(GROUP_LAG, "g", "t", "0") == 0
    assert _value(COMMIT_STALLED, "g", "t", "0") == 0
    probe.observe({key: (20, 21)}, now=400.0)  # a new record: waiting starts now, not at 300
    assert _value(COMMIT_STALLED, "g", "t", "0") == 0
