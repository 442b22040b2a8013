"""`hub`: one typer app; each subcommand reads settings at its entry and nothing before."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from hub.media_cli import media_app
from hub.provision.process import ProvisionError
from hub.webhooks_cli import webhooks_app
from hubcore.settings import Settings, SettingsError, settings_or_exit

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="hub: a Kafka-driven real-time backend for a multi-platform messaging inbox.",
)
services_app = typer.Typer(no_args_is_help=True, help="Local Kafka and MongoDB-compatible server.")
schemas_app = typer.Typer(no_args_is_help=True, help="Published JSON Schema and AsyncAPI files.")
app.add_typer(services_app, name="services")
app.add_typer(schemas_app, name="schemas")


def _version(show: bool) -> None:
    if show:
        from importlib.metadata import version

        typer.echo(f"hub {version('hub')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """hub: a Kafka-driven real-time backend for a multi-platform messaging inbox."""


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"hub: {message}", err=True)
    raise typer.Exit(code)


_Brokers = Annotated[
    int | None,
    typer.Option(min=1, max=5, help="Kafka nodes of the local cluster; default HUB_KAFKA_BROKERS."),
]


def _services_settings(brokers: int | None) -> Settings:
    settings = settings_or_exit()
    return settings if brokers is None else settings.model_copy(update={"kafka_brokers": brokers})


@services_app.command("up")
def services_up(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each server.")] = 180.0,
    brokers: _Brokers = None,
) -> None:
    """Provision (first time) and start Kafka and FerretDB; return when both answer."""
    from hub.provision.services import LocalServices

    try:
        LocalServices(_services_settings(brokers)).up(echo=typer.echo, timeout=timeout)
    except ProvisionError as exc:
        _fail(str(exc))


@services_app.command("down")
def services_down(brokers: _Brokers = None) -> None:
    """Stop the servers `up` started, and nothing else."""
    from hub.provision.services import LocalServices

    LocalServices(_services_settings(brokers)).down(echo=typer.echo)


@services_app.command("status")
def services_status(brokers: _Brokers = None) -> None:
    """Say what runs where (each node of a local Kafka cluster)."""
    from hub.provision.services import LocalServices

    for state in LocalServices(_services_settings(brokers)).status():
        typer.echo(state.describe())


@schemas_app.command("export")
def schemas_export(
    check: Annotated[bool, typer.Option(help="Only report stale files; exit 1 if any.")] = False,
) -> None:
    """Write schemas/json/*.json and schemas/asyncapi.json from the models."""
    from schemas import export

    if check:
        stale = export.stale()
        for rel in stale:
            typer.echo(f"stale: schemas/{rel}")
        raise typer.Exit(1 if stale else 0)
    for path in export.write():
        typer.echo(str(path))


@app.command("up")
def up(
    demo: Annotated[bool, typer.Option(help="Also seed demo users and send demo traffic.")] = False,
    keep_services: Annotated[
        bool, typer.Option(help="Leave the Kafka and FerretDB this run started running at exit.")
    ] = False,
) -> None:
    """Start local Kafka and FerretDB when none is reachable, then connectors, streams and
    gateway with merged logs; Ctrl-C stops everything this run started."""
    from hub.provision.services import LocalServices
    from hub.supervisor import until_reader_gone
    from hub.up import up as run_up

    settings = settings_or_exit()
    services = LocalServices(settings)
    echo = until_reader_gone(typer.echo)  # stops all even when our output pipe is gone
    try:
        started = services.up(echo=echo)
    except ProvisionError as exc:
        _fail(str(exc))
    try:
        code = run_up(settings, demo=demo, say=echo)
    finally:
        # Servers that were already running (another shell, the test suite) are left alone.
        if started and not keep_services:
            services.down(echo=echo, only=started)
    raise typer.Exit(code)


@app.command("simulate")
def simulate(
    rate: Annotated[float, typer.Option(help="Webhooks per second.", min=0.01)] = 5.0,
    users: Annotated[int, typer.Option(help="Demo users to spread traffic over.", min=1)] = 2,
    duration: Annotated[float, typer.Option(help="Seconds to run.", min=0.1)] = 30.0,
    url: Annotated[str | None, typer.Option(help="Connectors base URL.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed for repeatable traffic.")] = None,
    changes: Annotated[
        float,
        typer.Option(
            help="Share of webhooks editing or deleting an earlier message.", min=0, max=1
        ),
    ] = 0.1,
) -> None:
    """Send realistic, correctly signed webhooks of every platform to the connectors, some
    of them edits and deletes (Telegram, Slack, generic)."""
    import asyncio

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from hub.demo.seed import demo_user_ids, ensure_demo_accounts
    from hub.demo.simulate import Summary
    from hub.demo.simulate import simulate as run_simulation
    from hubcore.mongo import create_client, database

    settings = settings_or_exit()
    base = url or f"http://127.0.0.1:{settings.connectors_port}"

    async def main() -> Summary:
        client = create_client(settings.mongo_url)
        try:
            accounts = await ensure_demo_accounts(
                database(client, settings), settings, demo_user_ids(users)
            )
        finally:
            await client.close()
        total = max(1, int(rate * duration))
        columns = (
            TextColumn("simulate"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[status]}"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, transient=False) as progress:
            task = progress.add_task("send", total=total, status="")

            def update(s: Summary) -> None:
                done = s.accepted + s.rejected + s.failed
                status = f"accepted {s.accepted} rejected {s.rejected} failed {s.failed}"
                progress.update(task, completed=done, status=status)

            return await run_simulation(
                base,
                accounts,
                rate=rate,
                duration=duration,
                seed=seed,
                changes=changes,
                on_sent=update,
            )

    summary = asyncio.run(main())
    typer.echo(summary.line())
    for platform, n in sorted(summary.by_platform.items()):
        typer.echo(f"  {platform}: {n} accepted")
    raise typer.Exit(0 if summary.sent and not summary.failed else 1)


@app.command("token")
def token(
    user_id: Annotated[str, typer.Argument(help="The hub user id (the token's `sub`).")],
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.")] = 12 * 3600,
) -> None:
    """Print a development JWT for USER_ID, signed with HUB_JWT_SECRET (or, unset, with
    the development secret `hub up` wrote, for the hub it runs)."""
    from hub.tokens import mint_token
    from hub.up import local_settings

    settings, _ = local_settings(settings_or_exit(), create=False)
    if settings.jwt_secret is None and settings.jwt_public_key_file is None:
        _fail(
            "HUB_JWT_SECRET is unset and `hub up` has not written a development secret "
            f"under {settings.services_dir}/ yet: set one, or run `hub up` first",
            code=2,
        )
    try:
        typer.echo(mint_token(settings, user_id, timedelta(seconds=ttl)))
    except SettingsError as exc:
        _fail(f"invalid setting {exc}", code=2)


# --- connectors (issue 3) ---------------------------------------------------------------
class PlatformName(StrEnum):
    """`--platform`'s choices: schemas.messages.PLATFORMS (a unit test keeps them equal)."""

    telegram = "telegram"
    whatsapp = "whatsapp"
    slack = "slack"
    email = "email"
    generic = "generic"


class ModeName(StrEnum):
    """`--mode`'s choices: hubcore.account_rules.Mode (a unit test keeps them equal)."""

    webhook = "webhook"
    poll = "poll"


accounts_app = typer.Typer(no_args_is_help=True, help="Connected platform accounts.")
app.add_typer(accounts_app, name="accounts")
app.add_typer(webhooks_app, name="webhooks")  # hub/webhooks_cli.py (docs/webhooks.md)
app.add_typer(media_app, name="media")  # hub/media_cli.py (docs/media.md)


@accounts_app.command("add")
def accounts_add(
    user: Annotated[str, typer.Option(help="The owning hub user id.")],
    platform: Annotated[PlatformName, typer.Option(help="The account's platform.")],
    external_id: Annotated[
        str, typer.Option(help="Bot id, phone number id, team id, mailbox address, or any.")
    ],
    credential: Annotated[
        list[str] | None,
        typer.Option(help="key=value, once per credential (see docs/platforms.md)."),
    ] = None,
    mode: Annotated[
        ModeName | None,
        typer.Option(help="How messages arrive (default: email polls, the others webhook)."),
    ] = None,
) -> None:
    """Store a new account; prints only its id."""
    import asyncio

    from connectors.admin import add_account
    from hubcore.errors import HubError

    settings = settings_or_exit()
    try:
        account = asyncio.run(
            add_account(
                settings,
                user_id=user,
                platform=platform.value,
                external_id=external_id,
                credentials=credential or [],
                mode=None if mode is None else mode.value,
            )
        )
    except HubError as exc:
        _fail(str(exc), code=2 if not exc.retriable else 1)
    except SettingsError as exc:
        _fail(f"invalid setting {exc}", code=2)
    else:
        typer.echo(account.id)


@accounts_app.command("list")
def accounts_list(
    user: Annotated[str | None, typer.Option(help="Only this hub user's accounts.")] = None,
) -> None:
    """Show accounts; credentials are redacted."""
    import asyncio

    from connectors.admin import account_table, list_accounts
    from hubcore.errors import HubError

    try:
        accounts = asyncio.run(list_accounts(settings_or_exit(), user))
    except (HubError, SettingsError) as exc:
        _fail(str(exc), code=2)
    for line in account_table(accounts):
        typer.echo(line)


@accounts_app.command("rotate-key")
def accounts_rotate_key() -> None:
    """Re-seal every account with the first key of HUB_CREDENTIALS_KEY (keep the old keys
    after it until this has run)."""
    import asyncio

    from connectors.admin import rotate_key
    from hubcore.errors import HubError

    try:
        count = asyncio.run(rotate_key(settings_or_exit()))
    except (HubError, SettingsError) as exc:
        _fail(str(exc), code=2)
    typer.echo(f"re-sealed {count} accounts")


@accounts_app.command("new-key")
def accounts_new_key() -> None:
    """Print a fresh key for HUB_CREDENTIALS_KEY (put it first; keep the old ones after it)."""
    from hubcore.sealing import new_key

    typer.echo(new_key())


@app.command("connectors")
def connectors() -> None:
    """Run the connectors: webhooks on HUB_HOST:HUB_CONNECTORS_PORT, and the pollers."""
    import uvicorn

    from connectors.app import create_app
    from hubcore.logging import configure_logging

    settings = settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)
    try:
        app = create_app(settings)
    except SettingsError as exc:
        _fail(f"invalid setting {exc}", code=2)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.connectors_port,
        log_config=None,
        access_log=False,  # the app logs one line per webhook itself
    )


# --- gateway -------------------------------------------------------------------------
@app.command("gateway")
def gateway() -> None:
    """Serve REST, WebSocket `/ws` and Socket.IO on HUB_HOST:HUB_GATEWAY_PORT."""
    from gateway.server import run

    try:
        run(settings_or_exit())
    except SettingsError as exc:
        _fail(f"invalid setting {exc}", code=2)


# --- streams (issue 4) ----------------------------------------------------------------


@app.command("streams")
def streams() -> None:
    """Run a streams worker (Faust): raw messages and commands into the store and events."""
    from streams.worker import run_worker

    run_worker(settings_or_exit())


@app.command("replay")
def replay(
    database: Annotated[
        str | None,
        typer.Option(help="Rebuild into this database instead of HUB_MONGO_DB (live untouched)."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Records per batch.")] = 5000,
) -> None:
    """Rebuild messages, conversations, unread counts and the unread table from the history."""
    import asyncio

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from hubcore.errors import HubError
    from hubcore.logging import configure_logging
    from streams.replay.replay import Replay

    settings = settings_or_exit()
    configure_logging("warning", settings.log_format)

    async def run() -> None:
        columns = (*Progress.get_default_columns()[:2], BarColumn(), MofNCompleteColumn())
        # The bar goes to stderr: stdout carries only the summary line.
        console = Console(stderr=True)
        with Progress(*columns, TimeRemainingColumn(), console=console, transient=True) as bar:
            task = bar.add_task("replaying", total=None)
            job = Replay(
                settings,
                database=database,
                batch_size=batch_size,
                progress=lambda n: bar.advance(task, n),
            )
            bar.update(task, total=await job.total())
            summary = await job.run()
        target = summary.database + (" and the unread table" if summary.table_written else "")
        typer.echo(
            f"replayed {summary.events} events ({summary.raws} messages, {summary.commands} "
            f"commands) into {target} in {summary.seconds:.2f} s: "
            f"{summary.rate:.0f} events/s"
        )

    try:
        asyncio.run(run())
    except HubError as exc:
        _fail(str(exc))


@app.command("state-hash")
def state_hash(
    database: Annotated[
        str | None, typer.Option(help="Hash this database instead of HUB_MONGO_DB.")
    ] = None,
) -> None:
    """Print a stable digest of all derived state (messages, conversations, unread)."""
    import asyncio

    from hubcore.mongo import create_client
    from streams.replay.statehash import state_digest

    settings = settings_or_exit()

    async def run() -> str:
        client = create_client(settings.mongo_url)
        try:
            return await state_digest(client[database or settings.mongo_db])
        finally:
            await client.close()

    typer.echo(asyncio.run(run()))


# --- analytics (issue 16) ------------------------------------------------------------
analytics_app = typer.Typer(
    no_args_is_help=True, help="History topics as Parquet files, and reports over them."
)
app.add_typer(analytics_app, name="analytics")


@analytics_app.command("export")
def analytics_export(
    out: Annotated[
        Path | None, typer.Option(help="Directory of the files (default HUB_ANALYTICS_DIR).")
    ] = None,
    max_records_per_file: Annotated[int, typer.Option(min=1)] = 100_000,
) -> None:
    """Append the history topics' new records to Parquet files under topic=/day=
    directories; a rerun continues where the last run ended."""
    import asyncio

    from analytics.export import Exporter
    from hubcore.errors import HubError
    from hubcore.logging import configure_logging

    settings = settings_or_exit()
    configure_logging("warning", settings.log_format)
    exporter = Exporter(
        settings, out or settings.analytics_dir, max_records_per_file=max_records_per_file
    )
    try:
        summary = asyncio.run(exporter.run())
    except HubError as exc:
        _fail(str(exc))
    typer.echo(summary.line())


@analytics_app.command("report")
def analytics_report(
    source: Annotated[
        Path | None, typer.Option(help="Directory of the files (default HUB_ANALYTICS_DIR).")
    ] = None,
    html: Annotated[
        Path | None, typer.Option(help="Also write the report as one HTML page here.")
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="Rows of the busiest conversations.")] = 10,
) -> None:
    """Print messages per platform per hour, per account, time to read, busiest
    conversations and dead letters by reason, from the exported files (DuckDB)."""
    from rich.console import Console
    from rich.table import Table

    from analytics.page import render
    from analytics.report import build, shown

    settings = settings_or_exit()
    root = source or settings.analytics_dir
    if not root.is_dir():
        _fail(f"{root} does not exist: run `hub analytics export` first")
    report = build(root, top=top)
    console = Console()
    for table in map(shown, report.tables.values()):
        printed = Table(title=table.title, title_justify="left")
        for column in table.columns:
            printed.add_column(column)
        for row in table.rows:
            printed.add_row(*("-" if v is None else str(v) for v in row))
        console.print(printed)
    if html is not None:
        html.write_text(render(report), encoding="utf-8")
        typer.echo(f"wrote {html}")


# --- benchmarks (issue 7) -------------------------------------------------------------
@app.command("bench")
def bench(
    only: Annotated[
        str | None, typer.Option(help="Comma-separated scenario ids, e.g. P1,P3 (default: all).")
    ] = None,
    quick: Annotated[bool, typer.Option(help="Smoke run: smaller sizes, shorter runs.")] = False,
    profile: Annotated[
        bool,
        typer.Option(
            help="Also record py-spy flame graphs of each hub process in P8's runs "
            "(bench/results/profiles/; adds P8)."
        ),
    ] = False,
) -> None:
    """Run the performance scenarios (P1-P8, P3m, P4s, P5s, P7m, R1, N1, N2), each against
    its baseline in the same run; write bench/results/latest.json and print the table (see
    README, Performance)."""
    import asyncio
    import sys

    from hub.provision.services import LocalServices

    root = Path(__file__).resolve().parents[1]
    if not (root / "bench" / "run.py").is_file():
        _fail("hub bench runs from a source checkout (bench/ next to hub/)")
    # bench/ is a tool of the checkout (Node.js clients, results files), not installed.
    sys.path.insert(0, str(root))
    from bench.procs import BenchError
    from bench.run import parse_only, run

    settings = settings_or_exit()
    try:
        selected = parse_only(only)
    except BenchError as exc:
        _fail(str(exc), code=2)
    try:
        LocalServices(settings).up(echo=typer.echo)
    except ProvisionError as exc:
        _fail(str(exc))
    _, measured = asyncio.run(run(settings, selected, quick=quick, profile=profile, say=typer.echo))
    raise typer.Exit(0 if measured else 1)


def main() -> None:
    """Console-script entry point."""
    app()
