"""The connectors process: webhooks, pollers, `/health` and `/metrics` in one FastAPI app."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo.errors import PyMongoError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from connectors.deliveries.consumer import start_deliveries
from connectors.media.consumer import MediaConsumer
from connectors.media.fetcher import MediaFetcher
from connectors.outbound.consumer import OutboundConsumer
from connectors.outbound.delivery import Delivery
from connectors.outbound.ledger import SendLedger
from connectors.outbound.senders import SendContext
from connectors.pollers.supervisor import PollerSupervisor
from connectors.publisher import Publisher
from connectors.push.notifier import start_notifier
from connectors.runtime import AccountCache, Runtime
from connectors.webhooks import answer_webhook, router
from hubcore.accounts import AccountStore
from hubcore.blobs import blob_store
from hubcore.health import record_health
from hubcore.kafka import kafka_ping
from hubcore.mongo import create_client, database
from hubcore.sealing import CredentialCipher
from hubcore.settings import Settings
from hubcore.webpush import Vapid
from schemas.base import format_utc, utc_now

_PROBE_TIMEOUT = 2.0


class ConnectorsApp(FastAPI):
    """FastAPI, but webhook deliveries skip its middleware and routing: they are most of
    the traffic, and those layers cost more than the hub's own work (README, Performance)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not await answer_webhook(self, scope, receive, send):
            await super().__call__(scope, receive, send)


def create_app(settings: Settings, *, pollers: bool | None = None) -> FastAPI:
    """The connectors app. `pollers` overrides `HUB_CONNECTORS_POLLERS` (tests).

    `SettingsError` at once when HUB_CREDENTIALS_KEY is missing or malformed.
    """
    CredentialCipher.from_settings(settings)
    vapid = Vapid.from_settings(settings)  # a bad key is a start-up error, like the cipher's
    run_pollers = settings.connectors_pollers if pollers is None else pollers

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = create_client(settings.mongo_url)
        db = database(client, settings)
        publisher = Publisher(settings)
        await publisher.start()  # connects in the background: Kafka may come later
        supervisor = PollerSupervisor(settings, db, publisher) if run_pollers else None
        if supervisor is not None:
            await supervisor.start()
        accounts = AccountCache(AccountStore(db, settings), settings.connectors_account_cache_ttl)
        app.state.runtime = Runtime(settings, client, db, publisher, accounts, supervisor)
        # What startup built lives as long as the process: keep it out of the collector's
        # scans, which otherwise revisit it on every full collection under load.
        gc.freeze()
        stack = contextlib.AsyncExitStack()
        try:
            if settings.connectors_outbound:
                http = await stack.enter_async_context(httpx.AsyncClient())
                # A lease outlives one call plus the longest wait between calls.
                lease = settings.send_timeout + settings.send_max_backoff + 5
                ledger = SendLedger(db, lease)
                blobs = blob_store(settings, db)  # attachments' bytes (docs/media.md)
                stack.push_async_callback(blobs.aclose)
                delivery = Delivery(SendContext(settings, http, blobs), ledger, accounts)
                outbound = OutboundConsumer(settings, delivery, publisher)
                outbound.start()
                stack.push_async_callback(outbound.stop)
            if settings.connectors_push and vapid is not None:
                push_http = await stack.enter_async_context(httpx.AsyncClient())
                notifier = await start_notifier(settings, db, push_http, vapid, publisher)
                stack.push_async_callback(notifier.stop)
            if settings.media_fetch:
                # Its own client: a slow download must not hold the senders' connections.
                media_http = await stack.enter_async_context(httpx.AsyncClient())
                store = blob_store(settings, db)
                stack.push_async_callback(store.aclose)
                fetcher = MediaFetcher(settings, db, store, media_http, accounts, asyncio.sleep)
                media = MediaConsumer(settings, fetcher, publisher)
                media.start()
                stack.push_async_callback(media.stop)
            if settings.webhooks_deliver:
                stack.push_async_callback(await start_deliveries(settings, db, publisher, stack))
            yield
        finally:
            await stack.aclose()
            if supervisor is not None:
                await supervisor.stop()
            await publisher.stop()
            await client.close()

    app = ConnectorsApp(title="hub connectors", lifespan=lifespan)
    app.include_router(router)

    @app.get("/health")
    async def health(request: Request) -> Response:
        """Kafka and MongoDB status; 503 when either is down."""
        rt: Runtime = request.app.state.runtime
        kafka, mongo = await asyncio.gather(_kafka_ok(rt), _mongo_ok(rt))
        ok = record_health("connectors", {"kafka": kafka, "mongodb": mongo})
        body: dict[str, Any] = {
            "status": "ok" if ok else "degraded",
            "timestamp": format_utc(utc_now()),
            "services": {
                "kafka": "ok" if kafka else "unavailable",
                "mongodb": "ok" if mongo else "unavailable",
                "pollers": len(rt.pollers.pollers) if rt.pollers else 0,
            },
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        """Prometheus text format (health evaluated now: `hub_healthy`)."""
        rt: Runtime = request.app.state.runtime
        kafka, mongo = await asyncio.gather(_kafka_ok(rt), _mongo_ok(rt))
        record_health("connectors", {"kafka": kafka, "mongodb": mongo})
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


async def _kafka_ok(rt: Runtime) -> bool:
    return rt.publisher.ready and await kafka_ping(rt.settings.kafka_bootstrap, _PROBE_TIMEOUT)


async def _mongo_ok(rt: Runtime) -> bool:
    try:
        await asyncio.wait_for(rt.db.command("ping"), _PROBE_TIMEOUT)
        return True
    except (PyMongoError, TimeoutError):
        return False
