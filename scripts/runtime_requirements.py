"""Print the part of requirements.lock the hub needs at run time, hashes and markers kept.

The lock (`make lock`) is one file for the hub and its `test` extra, resolved and hashed
once; the Docker image installs from it with `--require-hashes`, so it runs exactly the
versions the tests ran, without the test tools. Runtime = the `[project] dependencies`
of pyproject.toml, then every locked package whose `# via` names a runtime package.

    python scripts/runtime_requirements.py requirements.lock pyproject.toml > runtime.lock
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")
_HUB = "hub (pyproject.toml)"


def normalize(name: str) -> str:
    """PEP 503 names: `Foo_Bar` and `foo-bar` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_entries(text: str) -> dict[str, tuple[str, set[str]]]:
    """Each locked package: its block (requirement line and hashes) and what it is via."""
    entries: dict[str, tuple[str, set[str]]] = {}
    name = ""
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if not line[0].isspace():
            found = _NAME.match(line)
            assert found, f"unexpected line in the lock: {line!r}"
            name = normalize(found[1])
            entries[name] = (line, set())
        elif line.strip().startswith("--hash"):
            block, via = entries[name]
            entries[name] = (block + "\n" + line, via)
        else:
            comment = line.strip().removeprefix("#").strip()
            comment = comment.removeprefix("via").strip()
            if comment:
                entries[name][1].add(comment if comment == _HUB else normalize(comment))
    return entries


def runtime_names(lock: str, pyproject: str) -> set[str]:
    """The runtime closure of the project's dependencies within the lock."""
    entries = lock_entries(lock)
    deps = tomllib.loads(pyproject)["project"]["dependencies"]
    selected = {normalize(_NAME.match(d)[1]) for d in deps}  # type: ignore[index]
    missing = selected - set(entries)
    assert not missing, f"dependencies missing from the lock: {sorted(missing)}"
    grew = True
    while grew:
        more = {name for name, (_, via) in entries.items() if via & selected} - selected
        selected |= more
        grew = bool(more)
    return selected


def main(lock_path: str, pyproject_path: str) -> None:
    lock = Path(lock_path).read_text()
    entries = lock_entries(lock)
    for name in sorted(runtime_names(lock, Path(pyproject_path).read_text())):
        print(entries[name][0])


if __name__ == "__main__":
    main(*sys.argv[1:3])
