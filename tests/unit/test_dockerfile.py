"""The Dockerfile installs the tested set: requirements.lock's runtime part with hashes,
then the hub with `--no-deps`; and that part is complete (checked against the installed
packages' own metadata, so a dependency the lock's annotations missed would show)."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def _script() -> Any:
    # scripts/ is a folder of tools, not a package: load the file the Dockerfile runs.
    spec = importlib.util.spec_from_file_location(
        "runtime_requirements", ROOT / "scripts" / "runtime_requirements.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_tool = _script()
lock_entries, normalize, runtime_names = _tool.lock_entries, _tool.normalize, _tool.runtime_names
LOCK = (ROOT / "requirements.lock").read_text()
PYPROJECT = (ROOT / "pyproject.toml").read_text()
# The image: python:3.11-slim on Linux.
IMAGE_MARKERS = {
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "platform_machine": "x86_64",
}


def instructions(stage: int) -> list[tuple[str, str]]:
    """(instruction, arguments) of one build stage, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    stages: list[list[tuple[str, str]]] = []
    for line in lines:
        word, _, rest = line.partition(" ")
        if word == "FROM":
            stages.append([])
        stages[-1].append((word, rest.strip()))
    return stages[stage]


def pip_installs(stage: list[tuple[str, str]]) -> list[list[str]]:
    found = []
    for word, args in stage:
        if word == "RUN":
            for command in re.split(r"&&|;", args):
                parts = command.split()
                if parts[:2] == ["pip", "install"] or parts[:4] == [
                    "python",
                    "-m",
                    "pip",
                    "install",
                ]:
                    found.append(parts)
    return found


def test_the_image_installs_the_locked_runtime_with_hashes_then_the_hub_alone() -> None:
    build = instructions(0)
    installs = pip_installs(build)
    assert len(installs) == 2, installs
    locked, hub = installs
    assert "--require-hashes" in locked and "--no-deps" in locked
    assert locked[locked.index("-r") + 1] == "runtime.lock"
    assert "--no-deps" in hub and hub[-1] == "."
    runs = " ".join(args for word, args in build if word == "RUN")
    assert "runtime_requirements.py requirements.lock pyproject.toml > runtime.lock" in runs
    copies = [args.split() for word, args in build if word == "COPY"]
    assert ["requirements.lock", "pyproject.toml", "scripts/runtime_requirements.py", "./"] in (
        copies
    )
    # Every package setuptools installs is copied in before the hub's install.
    include = tomllib.loads(PYPROJECT)["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = {c[0] for c in copies}
    assert {p.rstrip("*") for p in include} <= copied
    final = instructions(1)
    assert not pip_installs(final), "the final stage only copies what the build installed"


def test_the_runtime_part_keeps_hashes_and_leaves_the_test_tools_out() -> None:
    names = runtime_names(LOCK, PYPROJECT)
    entries = lock_entries(LOCK)
    for name in names:
        assert "--hash=sha256:" in entries[name][0], name
    assert not names & {"pytest", "mypy", "ruff", "playwright", "hypothesis", "uv"}
    deps = tomllib.loads(PYPROJECT)["project"]["dependencies"]
    assert {normalize(Requirement(d).name) for d in deps} <= names


def test_the_runtime_part_is_complete() -> None:
    """Every requirement of every runtime package (extras as requested, markers of the
    image) is itself in the runtime part: the image's `--no-deps` install misses none."""
    names = runtime_names(LOCK, PYPROJECT)
    todo = [Requirement(d) for d in tomllib.loads(PYPROJECT)["project"]["dependencies"]]
    seen: set[tuple[str, str]] = set()
    while todo:
        req = todo.pop()
        name = normalize(req.name)
        assert name in names, f"{req} is needed at run time but not installed by the image"
        for extra in {"", *req.extras}:
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            try:
                requires = distribution(req.name).requires or []
            except PackageNotFoundError:
                pytest.fail(f"{req.name} is locked but not installed in this environment")
            for line in requires:
                sub = Requirement(line)
                env = {**IMAGE_MARKERS, "extra": extra}
                if sub.marker is None or sub.marker.evaluate(env):
                    todo.append(sub)
