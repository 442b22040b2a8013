"""`make mutate`: mutation testing of the pure core with mutmut, scored per module.

The modules are `[tool.mutmut] only_mutate` in pyproject.toml; mutmut runs the unit tests
that reach each mutant (its `pytest_add_cli_args_test_selection`). Every run starts from an
empty `mutants/`, so a test added since the last run counts. Writes `.hub/mutate/report.txt`
(scores, then every surviving mutant's diff) and `.hub/mutate/scores.json`, and fails when
a module scores below its floor (`MIN_SCORE`, or a lower one in `FLOORS`).

`--changed-since REV` tests only the modules that differ from REV in the work tree (all
of them when REV is unknown): quicker while working on one; CI runs all (docs/development.md,
"Mutation testing").

mutmut 3.7 is the newest the lock allows (3.8 needs a click that faust-streaming rules
out); it reads pytest's private `Item._nodeid`, which pytest 9.2 removed, so its
command line runs through `--mutmut` here with that name put back.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"
REPORT_DIR = ROOT / ".hub" / "mutate"
MIN_SCORE = 80.0
# Modules whose score is gated below MIN_SCORE, with the score reached: raise, never lower.
FLOORS: dict[str, float] = {}
# Detected: a test failed, or the mutant hung or crashed the test process (mutmut's
# "segfault" is also its own SIGKILL after the CPU-time limit).
DETECTED = {"killed", "timeout", "segfault", "caught by type check"}
UNTESTED = {"not checked", "skipped", "check was interrupted by user"}


def modules() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found: list[str] = config["tool"]["mutmut"]["only_mutate"]
    return found


def changed_modules(rev: str, candidates: list[str]) -> list[str]:
    """The candidates that differ from `rev` in the work tree; all if `rev` is unknown."""
    diff = subprocess.run(
        ["git", "diff", "--name-only", rev, "--", *candidates],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if diff.returncode != 0:
        print(f"mutate: {rev!r} is not a known commit here: testing every module")
        return candidates
    changed = set(diff.stdout.split())
    return [m for m in candidates if m in changed]


def mutant_glob(module: str) -> str:
    return module.removesuffix(".py").replace("/", ".") + ".*"


def run_mutmut(selected: list[str]) -> int:
    """mutmut's run, its output (a progress line per mutant) in `mutmut.log` beside the
    report; the end of it printed when the run fails."""
    shutil.rmtree(MUTANTS, ignore_errors=True)
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    log = REPORT_DIR / "mutmut.log"
    command = [sys.executable, str(Path(__file__).resolve()), "--mutmut", "run"]
    print(f"mutate: {len(selected)} modules, mutmut's output in {log}")
    with log.open("w") as out:
        code = subprocess.run(
            [*command, *(mutant_glob(m) for m in selected)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        ).returncode
    if code:
        lines = log.read_text(errors="replace").replace("\r", "\n").splitlines()
        print("\n".join(lines[-40:]))
    return code


def cpu_seconds() -> float:
    """CPU time of the waited-for child processes so far (mutmut and its test forks)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def results(module: str) -> dict[str, str]:
    """Mutant name -> mutmut's status, for one module's mutants."""
    from mutmut.__main__ import status_by_exit_code

    meta = json.loads((MUTANTS / (module + ".meta")).read_text())
    return {name: status_by_exit_code[code] for name, code in meta["exit_code_by_key"].items()}


def score(statuses: dict[str, str]) -> tuple[float, dict[str, int]]:
    counts: dict[str, int] = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    checked = sum(n for status, n in counts.items() if status not in UNTESTED)
    detected = sum(n for status, n in counts.items() if status in DETECTED)
    return (100.0 * detected / checked if checked else 100.0), counts


def diffs(names: list[str], module: str) -> list[str]:
    from mutmut.__main__ import get_diff_for_mutant
    from mutmut.configuration import Config

    Config.ensure_loaded()
    return [get_diff_for_mutant(name, path=Path(module)) for name in names]


def report(selected: list[str], seconds: float, cpu: float) -> bool:
    """Write the report; True when every module reaches its floor."""
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    # Two test processes at a time on 2 cores: the CPU time halved is the run's length on
    # an otherwise idle machine, whatever else this one was doing.
    lines = [
        f"mutation testing: {len(selected)} modules, {seconds:.0f} s, {cpu:.0f} CPU s",
        "",
    ]
    scores: dict[str, Any] = {}
    survivors: list[str] = []
    passed = True
    for module in selected:
        statuses = results(module)
        value, counts = score(statuses)
        floor = FLOORS.get(module, MIN_SCORE)
        ok = value >= floor
        passed &= ok
        scores[module] = {"score": round(value, 1), "floor": floor, "counts": counts}
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        verdict = "ok" if ok else f"BELOW {floor:.0f} %"
        lines.append(f"{module}: {value:.1f} % ({summary}) {verdict}")
        left = sorted(n for n, s in statuses.items() if s not in DETECTED | UNTESTED)
        for name, diff in zip(left, diffs(left, module), strict=True):
            survivors.append(f"# {name}: {statuses[name]}\n{diff}")
    lines += ["", f"{len(survivors)} mutants not detected:", "", *survivors]
    (REPORT_DIR / "report.txt").write_text("\n".join(lines) + "\n")
    (REPORT_DIR / "scores.json").write_text(json.dumps(scores, indent=2) + "\n")
    print("\n".join(lines[: len(selected) + 2]))
    print(f"report: {REPORT_DIR / 'report.txt'}")
    return passed


def mutmut_cli(args: list[str]) -> None:
    from _pytest.nodes import Node

    if not hasattr(Node, "_nodeid"):
        Node._nodeid = property(lambda self: self.nodeid)  # type: ignore[attr-defined]
    from mutmut.__main__ import cli

    cli(args)


def main() -> int:
    if sys.argv[1:2] == ["--mutmut"]:
        mutmut_cli(sys.argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="some of the modules (default: all)")
    parser.add_argument("--changed-since", metavar="REV", help="only modules changed since REV")
    args = parser.parse_args()
    selected = args.modules or modules()
    if unknown := set(selected) - set(modules()):
        parser.error(f"not in [tool.mutmut] only_mutate: {', '.join(sorted(unknown))}")
    if args.changed_since:
        selected = changed_modules(args.changed_since, selected)
        if not selected:
            print(f"mutate: no mutated module changed since {args.changed_since}")
            return 0
    started, cpu = time.monotonic(), cpu_seconds()
    if code := run_mutmut(selected):
        print(f"mutate: mutmut failed ({code})")
        return code
    return 0 if report(selected, time.monotonic() - started, cpu_seconds() - cpu) else 1


if __name__ == "__main__":
    sys.exit(main())
