"""`make audit`: pip-audit of the locked dependencies; fails on a known vulnerability that
has a fixed version. Uses PyPI's vulnerability data (pip-audit's `pypi` service), the only
one reachable from the project's machines.

Where PyPI's per-version JSON documents are not served (pip-audit then skips the
package), the project document is read instead: its `vulnerabilities` are those of the
latest release, so a package locked at its latest release is still audited. The rest is
reported as not audited; `HUB_AUDIT_STRICT=1` makes that a failure too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

LOCK = Path(__file__).resolve().parent.parent / "requirements.lock"
PROJECT_JSON = "https://pypi.org/pypi/{name}/json"


def latest_release_vulns(
    client: httpx.Client, name: str, version: str
) -> list[dict[str, object]] | None:
    """The vulnerabilities of `name` `version` when it is the latest release, else None."""
    answer = client.get(PROJECT_JSON.format(name=name))
    if answer.status_code != 200:
        return None
    document = answer.json()
    if document["info"]["version"] != version:
        return None
    vulns = document.get("vulnerabilities") or []
    return [{"id": v["id"], "fix_versions": v.get("fixed_in") or []} for v in vulns]


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
    fixable, unfixable, skipped = [], [], []
    with httpx.Client(timeout=30) as client:
        for dep in dependencies:
            if "skip_reason" in dep:
                dep["version"] = versions.get(dep["name"], "?")
                vulns = latest_release_vulns(client, dep["name"], dep["version"])
                if vulns is None:
                    skipped.append(dep["name"])
                dep["vulns"] = vulns or []
    for dep in dependencies:
        for vuln in dep.get("vulns", []):
            line = f"{dep['name']} {dep['version']}: {vuln['id']}"
            if vuln["fix_versions"]:
                fixable.append(f"{line} (fixed in {', '.join(vuln['fix_versions'])})")
            else:
                unfixable.append(f"{line} (no fix yet)")
    for line in fixable + unfixable:
        print(f"audit: {line}")
    audited = len(dependencies) - len(skipped)
    print(
        f"audit: {audited} of {len(dependencies)} locked packages audited, {len(fixable)} fixable"
    )
    if skipped:
        print(
            f"audit: could not look up {len(skipped)} packages on PyPI "
            f"(first: {', '.join(skipped[:5])}); set HUB_AUDIT_STRICT=1 to fail on this",
            file=sys.stderr,
        )
    strict = os.environ.get("HUB_AUDIT_STRICT") == "1"
    return 1 if fixable or (strict and skipped) else 0


if __name__ == "__main__":
    sys.exit(main())
