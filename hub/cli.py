"""`hub`: one typer app; each subcommand reads settings at its entry and nothing before."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from hub.provision.process import ProvisionError
from hubcore.settings import SettingsError, settings_or_exit

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="hub: a Kafka-driven real-time backend for a multi-platform messaging inbox.",
)
services_app = typer.Typer(no_args_is_help=True, help="Local Kafka and MongoDB-compatible server.")
schemas_app = typer.Typer(no_args_is_help=True, help="Published JSON Schema and AsyncAPI files.")
app.add_typer(services_app, name="services")
app.add_typer(schemas_app, name="schemas")


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"hub: {message}", err=True)
    raise typer.Exit(code)


@services_app.command("up")
def services_up(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each server.")] = 180.0,
) -> None:
    """Provision (first time) and start Kafka and FerretDB; return when both answer."""
    from hub.provision.services import LocalServices

    try:
        LocalServices(settings_or_exit()).up(echo=typer.echo, timeout=timeout)
    except ProvisionError as exc:
        _fail(str(exc))


@services_app.command("down")
def services_down() -> None:
    """Stop the servers `up` started, and nothing else."""
    from hub.provision.services import LocalServices

    LocalServices(settings_or_exit()).down(echo=typer.echo)


@services_app.command("status")
def services_status() -> None:
    """Say what runs where."""
    from hub.provision.services import LocalServices

    for state in LocalServices(settings_or_exit()).status():
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
) -> None:
    """Start local Kafka and FerretDB when none is reachable, then connectors, streams and
    gateway with merged logs; Ctrl-C stops everything."""
    from hub.provision.services import LocalServices
    from hub.up import up as run_up

    settings = settings_or_exit()
    try:
        LocalServices(settings).up(echo=typer.echo)
    except ProvisionError as exc:
        _fail(str(exc))
    raise typer.Exit(run_up(settings, demo=demo))


@app.command("simulate")
def simulate(
    rate: Annotated[float, typer.Option(help="Webhooks per second.", min=0.01)] = 5.0,
    users: Annotated[int, typer.Option(help="Demo users to spread traffic over.", min=1)] = 2,
    duration: Annotated[float, typer.Option(help="Seconds to run.", min=0.1)] = 30.0,
    url: Annotated[str | None, typer.Option(help="Connectors base URL.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed for repeatable traffic.")] = None,
) -> None:
    """Send realistic, correctly signed webhooks of every platform to the connectors."""
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
            accounts = await ensure_demo_accounts(database(client, settings), demo_user_ids(users))
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
                base, accounts, rate=rate, duration=duration, seed=seed, on_sent=update
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
    """Print a development JWT for USER_ID, signed with HUB_JWT_SECRET."""
    from hub.tokens import mint_token

    settings = settings_or_exit()
    try:
        typer.echo(mint_token(settings, user_id, timedelta(seconds=ttl)))
    except SettingsError as exc:
        _fail(f"invalid setting {exc}", code=2)


def main() -> None:
    """Console-script entry point."""
    app()
