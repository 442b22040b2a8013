"""`hub webhooks list|deliveries|replay`: the operator's view of users' webhook endpoints
(docs/webhooks.md), straight from the store and Kafka, like `hub accounts`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer

from hubcore.settings import SettingsError, settings_or_exit

if TYPE_CHECKING:  # imported where used: `hub --help` stays quick
    from hubcore.webhooks import DeliveryView, Webhook, WebhookStore

T = TypeVar("T")

webhooks_app = typer.Typer(no_args_is_help=True, help="Users' webhook endpoints.")


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"hub: {message}", err=True)
    raise typer.Exit(code)


def _with_store(work: Callable[[WebhookStore], Awaitable[T]]) -> T:
    from hubcore.errors import HubError
    from hubcore.mongo import create_client, database
    from hubcore.webhooks import WebhookStore

    settings = settings_or_exit()

    async def main() -> T:
        client = create_client(settings.mongo_url)
        try:
            return await work(WebhookStore(database(client, settings), settings))
        finally:
            await client.close()

    try:
        return asyncio.run(main())
    except (HubError, SettingsError) as exc:
        _fail(str(exc), code=2)


def webhook_line(hook: Webhook) -> str:
    state = "paused" if hook.paused else "active"
    if hook.disabled_reason:
        state = f"disabled ({hook.disabled_reason})"
    return f"{hook.id}  {hook.user_id}  {hook.url}  {','.join(hook.events)}  {state}"


def delivery_line(d: DeliveryView) -> str:
    last = d.last_attempts[-1] if d.last_attempts else None
    answer = "-" if last is None else f"{last.status or last.error} {last.latency_ms:.0f}ms"
    due = ""
    if d.next_attempt_at is not None and d.state == "pending":
        due = f"  next {d.next_attempt_at.isoformat()}"
    return f"{d.cursor or '-'}  {d.event_type}  {d.id}  {d.state}  x{d.attempts}  {answer}{due}"


@webhooks_app.command("list")
def webhooks_list(
    user: Annotated[str | None, typer.Option(help="Only this hub user's endpoints.")] = None,
) -> None:
    """Endpoints: id, user, URL, events, state (secrets are never shown)."""
    for hook in _with_store(lambda store: store.of_user(user)):
        typer.echo(webhook_line(hook))


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    webhook_id: Annotated[str, typer.Argument(help="The endpoint's id (wh_...).")],
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
) -> None:
    """The newest deliveries: cursor, event, webhook-id, state, attempts, last answer."""
    for delivery in _with_store(lambda store: store.delivery_page(webhook_id, limit, None)):
        typer.echo(delivery_line(delivery))


@webhooks_app.command("replay")
def webhooks_replay(
    webhook_id: Annotated[str, typer.Argument(help="The endpoint's id (wh_...).")],
    since: Annotated[
        datetime | None, typer.Option("--from", help="ISO 8601 time (UTC unless it says).")
    ] = None,
    cursor: Annotated[str | None, typer.Option(help="An event's cursor (as on /ws).")] = None,
) -> None:
    """Send the endpoint's events again from a time or cursor up to now."""
    from gateway.frames import Cursor
    from gateway.webhook_replay import replay

    if (since is None) == (cursor is None):
        _fail("give one of --from or --cursor", code=2)

    async def work(store: WebhookStore) -> str:
        hook = await store.get(webhook_id)
        if hook is None:
            _fail(f"no webhook {webhook_id!r}", code=2)
        # Topics are created with HUB_TOPIC_PARTITIONS partitions (hub services, ensure_topics).
        partitions = list(range(store.settings.topic_partitions))
        if cursor is not None:
            at = Cursor.parse(cursor)
            result = await replay(
                store, hook, partitions, from_offset=at.offset, partition=at.partition
            )
        else:
            assert since is not None
            when = since if since.tzinfo else since.replace(tzinfo=UTC)
            result = await replay(store, hook, partitions, since=when)
        more = " (truncated: HUB_WEBHOOK_REPLAY_MAX)" if result.truncated else ""
        span = f"from {result.first_cursor} to {result.last_cursor}"
        return f"scheduled {result.scheduled} {span}{more}"

    typer.echo(_with_store(work))
