"""Operations endpoints without auth: `/health` and `/metrics`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from gateway.api.deps import RuntimeDep
from hubcore.group_lag import GroupLagProbe, watched_groups
from hubcore.health import record_health
from schemas.base import format_utc, utc_now

router = APIRouter(tags=["operations"])

HEALTH_EXAMPLE: dict[str, Any] = {
    "status": "ok",
    "timestamp": "2026-11-25T12:00:00.123Z",
    "services": {
        "kafka": {"status": "ok", "latencyMs": 1.2, "brokers": 1},
        "mongodb": {"status": "ok", "latencyMs": 0.8},
        "database": "connected",
        "websocket": {"status": "active", "connections": 3, "authenticatedUsers": 2},
    },
}


def _record(services: dict[str, Any]) -> bool:
    # `database` repeats mongodb's state in the seed's words; `active` is the seed's "ok".
    return record_health(
        "gateway",
        {
            "kafka": services["kafka"]["status"] == "ok",
            "mongodb": services["mongodb"]["status"] == "ok",
            "websocket": services["websocket"]["status"] == "active",
        },
    )


@router.get(
    "/health",
    responses={
        200: {"content": {"application/json": {"example": HEALTH_EXAMPLE}}},
        503: {"description": "degraded: a service is down (or the event stream is starting)"},
    },
)
async def health(runtime: RuntimeDep) -> JSONResponse:
    """Kafka, MongoDB and the WebSocket side; 503 with `status: degraded` when one is down."""
    services = await runtime.health()
    ok = _record(services)
    body = {
        "status": "ok" if ok else "degraded",
        "timestamp": format_utc(utc_now()),
        "services": services,
    }
    return JSONResponse(body, status_code=200 if ok else 503)


# One per hub namespace served by this process (tests run several in one).
_group_lag: dict[str, GroupLagProbe] = {}


@router.get("/metrics", response_class=Response)
async def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus text exposition of this process (health evaluated now: `hub_healthy`;
    the streams and reply-sender groups' lag read from Kafka now: hubcore.group_lag)."""
    _record(await runtime.health())
    settings = runtime.settings
    probe = _group_lag.get(settings.topic_namespace)
    if probe is None:
        probe = GroupLagProbe(settings, watched_groups(settings))
        _group_lag[settings.topic_namespace] = probe
    await probe.refresh()
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
