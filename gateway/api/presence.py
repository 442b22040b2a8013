"""REST: `GET /api/presence`, the caller's live devices on every gateway and last seen."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter

from gateway.api.deps import RuntimeDep, UserId
from hubcore.mongo import PRESENCE
from schemas.base import HubModel, UtcDatetime

router = APIRouter(prefix="/api", tags=["presence"])


class PresenceDevice(HubModel):
    """One live connection: `/ws` or Socket.IO, since when."""

    connection_id: str
    client_kind: Literal["ws", "socketio"]
    since: UtcDatetime


class Presence(HubModel):
    """`online`: a device is live on some gateway; `lastSeen`: when the user last
    connected or left (null: never seen)."""

    online: bool
    devices: list[PresenceDevice]
    last_seen: UtcDatetime | None = None


@router.get("/presence", response_model=Presence)
async def get_presence(user_id: UserId, runtime: RuntimeDep) -> Presence:
    """The caller's presence as the streams worker last projected it (a connection
    change shows within moments; a killed gateway's devices within the lease)."""
    doc = await runtime.db[PRESENCE].find_one({"_id": user_id})
    if doc is None:
        return Presence(online=False, devices=[])
    devices = [
        PresenceDevice(
            connection_id=d["connectionId"],
            client_kind=d["clientKind"],
            since=datetime.fromisoformat(d["since"]),
        )
        for d in doc.get("devices", [])
    ]
    last_seen = doc.get("lastSeen")
    return Presence(
        online=bool(devices),
        devices=devices,
        last_seen=datetime.fromisoformat(last_seen) if last_seen else None,
    )
