"""Every shell command README.md and docs/*.md show a user (```bash, ```sh, ```shell and
```console blocks) is run here, as written, against the real local servers, or listed in
`NOT_RUN` with the reason. A command in the docs that is neither fails the test, so new
docs stay honest.

Each block runs as one bash script (`set -euo pipefail`: its commands share variables, as
pasted into one shell) in a directory of its own holding a `.venv` link to this checkout's,
with `.venv/bin` on PATH (the docs say both `hub` and `.venv/bin/hub`) and the `HUB_*`
settings of this test's own topic namespace and database. Blocks run side by side, each
bounded in time. `SUBSTITUTE` is every place the text run differs from the text shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pymongo import AsyncMongoClient

from gateway.auth import TokenVerifier
from hubcore.accounts import AccountStore
from hubcore.mongo import Document
from hubcore.settings import Settings
from tests.local_servers import free_port
from tests.resources import security_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"bash", "sh", "shell", "console"}
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
# A block's whole run, and the test's; the blocks run side by side.
BLOCK_TIMEOUT = 60.0

_LONG = (
    "runs until Ctrl-C (tests/integration/test_observability.py and the end-to-end tests "
    "start `hub up`)"
)
_SUITE = "a test run of its own: minutes, not something a test runs inside another"
_DOCKER = (
    "needs a Docker engine (none here); tests/unit/test_deploy_compose.py checks the compose "
    "file, test_dockerfile.py the image's recipe"
)

# Command (whitespace collapsed) -> why it is not run here.
NOT_RUN: dict[str, str] = {
    "make up": _LONG,
    "make test": _SUITE,
    "make install": "rebuilds the test run's own .venv; CI's first step runs it",
    "make lint": "about a minute of ruff and mypy; CI runs it, and every commit is made after it",
    "make audit": "asks the vulnerability database over the network; CI runs it",
    "make lock": "re-resolves requirements.lock against PyPI and rewrites it",
    "make faults": _SUITE,
    "make mutate": _SUITE,
    'make mutate MUTATE_ARGS="streams/batch/records.py gateway/sio_core.py"': _SUITE,
    ".venv/bin/pytest tests/unit": _SUITE,
    ".venv/bin/python scripts/mutate.py --mutmut show NAME": (
        "NAME stands for a mutant of an earlier `make mutate` run"
    ),
    ".venv/bin/python scripts/mutate.py --mutmut browse": "an interactive terminal browser",
    "docker compose --profile observability up --build --scale streams=3 "
    "--scale gateway=2": _DOCKER,
    "docker compose up --build --scale streams=3 --scale gateway=2": _DOCKER,
    "docker build -t registry.example/hub:0.1.0 . "
    "&& docker push registry.example/hub:0.1.0": _DOCKER,
    "helm install hub deploy/helm/hub --namespace hub --create-namespace "
    "--set image.repository=registry.example/hub "
    "--set settings.kafka_bootstrap=my-cluster-kafka-bootstrap.kafka:9092 "
    "--set settings.jwt_audience=hub --set settings.jwt_issuer=https://your-identity-provider "
    "--set settings.cors_origins=https://inbox.example --set settings.trusted_proxies=10.0.0.0/8 "
    "--set ingress.host=hub.example.com --set existingSecret=hub-keys": (
        "needs a Kubernetes cluster; tests/unit/test_deploy_helm.py lints and renders this "
        "chart with these values' kind"
    ),
    'curl "https://api.telegram.org/bot$BOT_TOKEN/setWebhook" '
    "-d url=https://hub.example.com/webhooks/telegram/$ACCOUNT -d secret_token=$WEBHOOK_SECRET": (
        "calls Telegram's real API with your bot's token"
    ),
    "hub accounts add --user alice --platform email --external-id alice@example.com "
    "--credential host=imap.example.com --credential username=alice --credential password=...": (
        "imap.example.com stands for your mail server, and an email account's host must "
        "resolve (tests/integration/connectors/test_email_poller.py adds one against a local "
        "IMAP server)"
    ),
}

# (block's file, text shown, text run, why): the only changes made to what is run.
SUBSTITUTE: list[tuple[str, str, str, str]] = [
    (
        "docs/platforms.md",
        "http://127.0.0.1:8001",
        "{connectors}",
        "the test's connectors listen on a free port: another hub may hold 8001",
    ),
    (
        "docs/streams.md",
        "--database hub_check",
        "--database {db}_check",
        "the rebuilt copy goes into a database of this test's, removed afterwards",
    ),
]


@dataclass(frozen=True)
class Command:
    text: str  # as a shell reads it: continuation lines joined, trailing comment dropped
    output: str | None  # the output the docs show for it (a `# {...}` line after it)

    @property
    def key(self) -> str:
        return " ".join(self.text.split())


@dataclass(frozen=True)
class Block:
    path: str
    line: int
    commands: tuple[Command, ...]

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def _strip_comment(line: str) -> str:
    # A `#` after whitespace, outside quotes, starts a comment (the docs' only kind).
    quote = ""
    for i, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def parse_block(lang: str, lines: list[str]) -> list[Command]:
    """The commands of one block; in a console block only `$ ` lines (and their
    continuations) are commands, the rest is output."""
    commands: list[Command] = []
    pending = ""
    for raw in lines:
        line = raw.strip()
        if lang == "console" and not pending:
            if not line.startswith("$ "):
                continue
            line = line[2:]
        if not pending and line.startswith("# {") and commands:
            last = commands[-1]
            commands[-1] = Command(last.text, line[2:])
            continue
        code = _strip_comment(line)
        if not code:
            continue
        if code.endswith("\\"):
            pending += code[:-1] + " "
            continue
        commands.append(Command(pending + code, None))
        pending = ""
    assert not pending, f"a continued line ends the block: {pending}"
    return commands


def shell_blocks() -> list[Block]:
    found = []
    for path in DOCS:
        lines = path.read_text(encoding="utf-8").splitlines()
        i = 0
        while i < len(lines):
            match = FENCE.match(lines[i])
            if match is None:
                i += 1
                continue
            end = i + 1
            while end < len(lines) and not lines[end].strip().startswith("```"):
                end += 1
            if match.group(2) in SHELL:
                commands = parse_block(match.group(2), lines[i + 1 : end])
                name = str(path.relative_to(ROOT))
                found.append(Block(name, i + 1, tuple(commands)))
            i = end + 1
    return found


def test_the_extraction_reads_blocks_as_a_shell_would() -> None:
    commands = parse_block(
        "bash",
        [
            "make x   # why",
            "# a comment",
            "A='b # c' \\",
            '    && echo "$A"',
            "curl -s http://h",
            '# {"status":"ok"}',
        ],
    )
    assert [c.text for c in commands] == ["make x", "A='b # c'  && echo \"$A\"", "curl -s http://h"]
    assert commands[2].output == '{"status":"ok"}'
    console = parse_block(
        "console", ["$ hub --version", "hub 0.1.0", "$ hub token u \\", "  --ttl 5"]
    )
    assert [c.key for c in console] == ["hub --version", "hub token u --ttl 5"]


def test_every_documented_command_is_run_or_listed() -> None:
    blocks = shell_blocks()
    keys = {c.key for b in blocks for c in b.commands}
    assert len(blocks) >= 10 and len(keys) >= 25  # the docs' blocks were found
    assert set(NOT_RUN) <= keys, f"listed, no longer in the docs: {set(NOT_RUN) - keys}"
    for path, shown, _, _ in SUBSTITUTE:
        assert any(b.path == path and shown in c.text for b in blocks for c in b.commands), shown


# --- running them -------------------------------------------------------------------------


@dataclass
class Outcome:
    block: Block
    returncode: int | None  # None: timed out
    outputs: list[str]  # per command run, its stdout
    stderr: str


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(security_env(settings))
    env.update(
        {
            "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            "HUB_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "HUB_MONGO_URL": settings.mongo_url,
            "HUB_MONGO_DB": settings.mongo_db,
            "HUB_TOPIC_NAMESPACE": settings.topic_namespace,
            "HUB_TOPIC_PARTITIONS": str(settings.topic_partitions),
            "HUB_JWT_SECRET": settings.jwt_secret.get_secret_value() if settings.jwt_secret else "",
            "HUB_HOST": "127.0.0.1",
        }
    )
    return env


@contextlib.contextmanager
def connectors(env: dict[str, str], log: Path) -> Iterator[str]:
    """A `hub connectors` process on a free port, until the block is done."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub", "connectors"],
            cwd=ROOT,
            env={**env, "HUB_CONNECTORS_PORT": str(port)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def workspace(workdir: Path) -> Path:
    """A directory of the block's own, with the checkout's .venv in it."""
    workdir.mkdir()
    (workdir / ".venv").symlink_to(ROOT / ".venv")
    return workdir


async def wait_healthy(url: str, log: Path, deadline: float) -> None:
    async with httpx.AsyncClient() as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}/health", timeout=2)).status_code == 200:
                    return
            assert time.monotonic() < deadline, f"connectors never healthy:\n{tail(log)}"
            await asyncio.sleep(0.2)


MARK = "@@doc-command-done@@"


async def run_block(
    block: Block, workdir: Path, env: dict[str, str], values: dict[str, str]
) -> Outcome:
    lines = ["set -euo pipefail"]
    for command in block.commands:
        if command.key in NOT_RUN:
            continue
        text = command.text
        for path, shown, run, _ in SUBSTITUTE:
            if path == block.path:
                text = text.replace(shown, run.format(**values))
        # The marker ends each command's output (curl prints no newline of its own).
        lines += [text, f"printf '\\n{MARK}\\n'"]
    proc = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        "\n".join(lines),
        cwd=workdir,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), BLOCK_TIMEOUT)
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = await proc.communicate()
        return Outcome(block, None, [], err.decode(errors="replace"))
    outputs = [part.strip() for part in out.decode(errors="replace").split(MARK)][:-1]
    return Outcome(block, proc.returncode, outputs, err.decode(errors="replace"))


def check_output(shown: str, got: str) -> str | None:
    """Why `got` does not match the JSON the docs show (its values with `...` are
    placeholders), or None."""
    try:
        expected, actual = json.loads(shown.replace('"msg_..."', '"..."')), json.loads(got)
    except ValueError as exc:
        return f"not JSON ({exc}): {got[:300]}"
    for key, value in expected.items():
        if key not in actual:
            return f"no {key!r} in {got[:300]}"
        if isinstance(value, list) and value and actual[key] and value[0] == "...":
            continue
        if value != actual[key] and value != "...":
            return f"{key}: shown {value!r}, got {actual[key]!r}"
    return None


@pytest.fixture
async def generic_account(
    settings: Settings, mongo_client: AsyncMongoClient[Document]
) -> AsyncIterator[dict[str, str]]:
    """$ACCOUNT and $SECRET, as docs/platforms.md asks the reader to have them."""
    secret = "doc-secret-" + "s" * 24
    store = AccountStore(mongo_client[settings.mongo_db], settings)
    account = await store.create("doc-user", "generic", "crm-doc", {"secret": secret})
    yield {"ACCOUNT": account.id, "SECRET": secret}
    await mongo_client.drop_database(f"{settings.mongo_db}_check")
    await mongo_client.drop_database(settings.mongo_db)


@pytest.mark.timeout(150)
async def test_the_documented_commands_run(
    settings: Settings, tmp_path: Path, generic_account: dict[str, str]
) -> None:
    env = {**_env(settings), **generic_account}
    blocks = [b for b in shell_blocks() if any(c.key not in NOT_RUN for c in b.commands)]
    assert len(blocks) >= 6
    started = time.monotonic()
    with connectors(env, tmp_path / "connectors.log") as url:
        await wait_healthy(url, tmp_path / "connectors.log", started + 45)
        values = {"connectors": url, "db": settings.mongo_db}
        outcomes = await asyncio.gather(
            *(
                run_block(block, workspace(tmp_path / f"block-{n}"), env, values)
                for n, block in enumerate(blocks)
            )
        )
    elapsed = time.monotonic() - started
    failures = []
    token = None
    for outcome in outcomes:
        ran = [c for c in outcome.block.commands if c.key not in NOT_RUN]
        if outcome.returncode != 0:
            done = len(outcome.outputs)
            failing = ran[done].text if done < len(ran) else "?"
            status = "timed out" if outcome.returncode is None else f"exit {outcome.returncode}"
            failures.append(
                f"{outcome.block.where}: {status} at `{failing}`\n{outcome.stderr[-1500:]}"
            )
            continue
        for command, got in zip(ran, outcome.outputs, strict=True):
            if command.output is not None and (why := check_output(command.output, got)):
                failures.append(f"{outcome.block.where}: `{command.key}` printed {why}")
            if command.key.startswith(".venv/bin/hub token "):
                token = got
    assert not failures, "\n\n".join(failures)
    # What the runs printed is what each command promises.
    assert token is not None
    assert TokenVerifier(settings).verify(token).user_id == "demo-1"
    print(
        f"{sum(len(b.commands) for b in blocks)} commands in {len(blocks)} blocks: {elapsed:.1f} s"
    )
