"""`make audit` is strict (issue 22): a lagging package or a known vulnerability fails
unless scripts/audit_allowed.toml allows it with a reason; stale entries fail too."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _script() -> Any:
    # scripts/ is a folder of tools, not a package: load the file `make audit` runs.
    spec = importlib.util.spec_from_file_location("audit_deps", ROOT / "scripts" / "audit_deps.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check = _script().check


def dep(name: str, version: str, *vulns: tuple[str, list[str]]) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "vulns": [{"id": i, "fix_versions": f} for i, f in vulns],
    }


def test_a_package_below_its_latest_release_fails_unless_listed_with_a_reason() -> None:
    deps = [dep("click", "8.3.3"), dep("httpx", "0.28.1")]
    latest = {"click": "8.5.1", "httpx": "0.28.1"}
    [failure] = check(deps, latest, {})
    assert failure.startswith("click 8.3.3: below its latest release 8.5.1, not audited")
    allowed = {"lags": {"click": {"locked": "8.3.3", "reason": "faust needs click<8.4"}}}
    assert check(deps, latest, allowed) == []
    # No reason, or another locked version: not allowed.
    assert check(deps, latest, {"lags": {"click": {"locked": "8.3.3", "reason": ""}}})
    assert check(deps, latest, {"lags": {"click": {"locked": "8.3.2", "reason": "x"}}})
    assert "unknown to PyPI" in check([dep("private-pkg", "1.0")], {}, allowed)[0]


def test_any_known_vulnerability_fails_unless_accepted_and_stale_entries_fail() -> None:
    deps = [dep("jinja2", "3.1.4", ("GHSA-1", ["3.1.5"])), dep("rich", "14.0", ("PYSEC-2", []))]
    latest = {"jinja2": "3.1.4", "rich": "14.0"}
    failures = check(deps, latest, {})
    assert failures == ["jinja2 3.1.4: GHSA-1 (3.1.5)", "rich 14.0: PYSEC-2 (no fix yet)"]
    accepted = {"vulnerabilities": {"rich PYSEC-2": "not reachable: ..."}}
    assert check(deps, latest, accepted) == ["jinja2 3.1.4: GHSA-1 (3.1.5)"]
    stale = {
        "lags": {"jinja2": {"locked": "3.1.3", "reason": "x"}},
        "vulnerabilities": {"x Y": "r"},
    }
    assert [f.split(" no longer")[0] for f in check([], {}, stale)] == [
        "audit_allowed.toml: [lags] jinja2",
        "audit_allowed.toml: [vulnerabilities] 'x Y'",
    ]


def test_every_allowed_lag_has_its_locked_version_and_a_reason() -> None:
    allowed = tomllib.loads((ROOT / "scripts" / "audit_allowed.toml").read_text())
    lock = (ROOT / "requirements.lock").read_text()
    for name, entry in allowed["lags"].items():
        assert entry["reason"].strip(), name
        assert f"\n{name}=={entry['locked']} " in lock, name
