"""`make audit`: pip-audit of the locked dependencies, strict. Uses PyPI's vulnerability
data (pip-audit's `pypi` service), the only one reachable from the project's machines.

Fails on:
- a known vulnerability (fixed or not) of a locked package, unless
  scripts/audit_allowed.toml accepts it with a reason;
- a locked package below its latest release, unless that file lists it (with the locked
  version and a reason): where PyPI's per-version JSON documents are not served
  (pip-audit then skips the package), only the project document's vulnerabilities, those
  of the latest release, are known, so a lagging package is not audited at all;
- an entry of that file that no longer applies (the package moved on or is gone).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
ALLOWED = ROOT / "scripts" / "audit_allowed.toml"
PROJECT_JSON = "https://pypi.org/pypi/{name}/json"


def project(client: httpx.Client, name: str) -> dict[str, Any] | None:
    """PyPI's project document of `name` (None when it has none)."""
    answer = client.get(PROJECT_JSON.format(name=name))
    if answer.status_code != 200:
        return None
    document: dict[str, Any] = answer.json()
    return document


def latest_release_vulns(document: dict[str, Any]) -> list[dict[str, object]]:
    """The vulnerabilities of the project's latest release."""
    vulns = document.get("vulnerabilities") or []
    return [{"id": v["id"], "fix_versions": v.get("fixed_in") or []} for v in vulns]


def check(
    dependencies: list[dict[str, Any]],
    latest: dict[str, str | None],
    allowed: dict[str, Any],
) -> list[str]:
    """The audit's failures (empty: it passes), given pip-audit's report (each
    dependency's `vulns`, filled in for skipped ones at their latest release), each
    package's latest release (None: unknown to PyPI) and scripts/audit_allowed.toml."""
    lags: dict[str, dict[str, str]] = allowed.get("lags", {})
    accepted: dict[str, str] = allowed.get("vulnerabilities", {})
    failures: list[str] = []
    used_lags: set[str] = set()
    used_vulns: set[str] = set()
    for dep in dependencies:
        name, version = dep["name"], dep["version"]
        for vuln in dep.get("vulns", []):
            key = f"{name} {vuln['id']}"
            if accepted.get(key):
                used_vulns.add(key)
                continue
            fixes = ", ".join(vuln["fix_versions"]) or "no fix yet"
            failures.append(f"{name} {version}: {vuln['id']} ({fixes})")
        newest = latest.get(name)
        if newest == version:
            continue
        entry = lags.get(name)
        if entry and entry.get("locked") == version and entry.get("reason"):
            used_lags.add(name)
            continue
        what = f"below its latest release {newest}" if newest else "unknown to PyPI"
        failures.append(
            f"{name} {version}: {what}, not audited; run `make lock`, or list it under "
            f"[lags] in {ALLOWED.name} with the locked version and a reason"
        )
    locked = {dep["name"]: dep["version"] for dep in dependencies}
    failures += [
        f"{ALLOWED.name}: [lags] {name} no longer applies "
        f"(locked: {locked.get(name, 'not at all')}); remove it"
        for name in sorted(lags.keys() - used_lags)
    ]
    failures += [
        f"{ALLOWED.name}: [vulnerabilities] {key!r} no longer applies; remove it"
        for key in sorted(accepted.keys() - used_vulns)
    ]
    return failures


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "audit.json"
        argv = [sys.executable, "-m", "pip_audit", "-r", str(LOCK), "--disable-pip"]
        argv += ["--vulnerability-service", "pypi", "--format", "json", "--output", str(report)]
        run = subprocess.run(argv, capture_output=True, text=True, check=False)
        if not report.exists():
            print(run.stderr, file=sys.stderr)
            return 2
        dependencies = json.loads(report.read_text())["dependencies"]
    versions = dict(
        line.split(" ", 1)[0].split("==")
        for line in LOCK.read_text().splitlines()
        if "==" in line and not line.startswith(" ")
    )
    latest: dict[str, str | None] = {}
    with httpx.Client(timeout=30) as client:
        for dep in dependencies:
            dep.setdefault("version", versions.get(dep["name"], "?"))
            document = project(client, dep["name"])
            latest[dep["name"]] = document["info"]["version"] if document else None
            if "skip_reason" in dep and document and latest[dep["name"]] == dep["version"]:
                dep["vulns"] = latest_release_vulns(document)
    allowed = tomllib.loads(ALLOWED.read_text())
    failures = check(dependencies, latest, allowed)
    lagging = sum(1 for d in dependencies if latest.get(d["name"]) != d["version"])
    for line in failures:
        print(f"audit: {line}")
    print(
        f"audit: {len(dependencies)} locked packages, {lagging} below their latest release "
        f"({len(allowed.get('lags', {}))} allowed in {ALLOWED.name}), "
        f"{len(failures)} failures"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
