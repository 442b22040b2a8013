"""Presence: which devices of each user are live on which gateway, as pure batch logic.

The state of one partition of `hub.presence` is its users' `UserPresence` and the time each
gateway was last heard of there (`GatewayClock`). A batch of records (in partition order)
changes them; `PresenceBatch` answers what changed, for the table, the store and the
users' `presence_update` events. No I/O here: streams/presence_agent.py does that.

Times are epoch milliseconds of the records' `at` (the writer's clock): a gateway not heard
of for the lease, as of a later heartbeat or a worker's tick on the same partition, has
expired, and its devices go with it. Every decision follows from the records alone, so a
redo after a worker restart decides the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from schemas.base import format_utc
from schemas.presence import PresenceRecord
from streams.batch.records import Poison, SourceRecord, _check_key, _describe, _parse
from streams.errors import PoisonRecord

# The table key of a partition's gateway clock; user ids never start with a NUL byte.
GATEWAYS_PREFIX = b"\x00gateways\x00"
# Devices kept per user: a client opening sockets in a loop cannot grow the state without
# bound (the per-user socket limit of the gateways is far below it).
MAX_DEVICES = 256


def gateways_key(partition: int) -> bytes:
    """Where the gateway clock and watermark of `partition` are kept in the table."""
    return GATEWAYS_PREFIX + str(partition).encode()


def clock_value(gateways: dict[str, int], applied: int) -> dict[str, Any]:
    """The table's value under `gateways_key`."""
    return {"g": gateways, "o": applied}


def clock_from_value(value: Any) -> tuple[dict[str, int], int]:
    """(gateways, watermark) from the table's value (None: a partition never seen)."""
    if not isinstance(value, dict):
        return {}, -1
    return {str(k): int(v) for k, v in value["g"].items()}, int(value["o"])


@dataclass(frozen=True, slots=True)
class Device:
    """One live connection of a user."""

    gateway_id: str
    connection_id: str
    client_kind: str
    since: int  # epoch ms

    def to_doc(self) -> dict[str, Any]:
        """The store's shape of a device (docs/presence.md)."""
        return {
            "gatewayId": self.gateway_id,
            "connectionId": self.connection_id,
            "clientKind": self.client_kind,
            "since": iso(self.since),
        }


@dataclass(slots=True)
class UserPresence:
    """A user's live devices (by connection id), when last seen, and the state's version."""

    devices: dict[str, Device] = field(default_factory=dict)
    last_seen: int = 0  # epoch ms
    version: int = 0

    @property
    def online(self) -> bool:
        return bool(self.devices)

    def to_value(self) -> dict[str, Any]:
        """The table's value (compact JSON)."""
        return {
            "d": [
                [d.gateway_id, d.connection_id, d.client_kind, d.since]
                for d in self.devices.values()
            ],
            "l": self.last_seen,
            "v": self.version,
        }

    @classmethod
    def from_value(cls, value: Any) -> UserPresence:
        """From the table's value (None: never seen)."""
        if not isinstance(value, dict):
            return cls()
        devices = {
            str(d[1]): Device(str(d[0]), str(d[1]), str(d[2]), int(d[3])) for d in value["d"]
        }
        return cls(devices, int(value["l"]), int(value["v"]))

    def to_doc(self, user_id: str) -> dict[str, Any]:
        """The `presence` collection's document (docs/presence.md; read by Web Push)."""
        devices = sorted(self.devices.values(), key=lambda d: (d.since, d.connection_id))
        return {
            "_id": user_id,
            "online": self.online,
            "devices": [d.to_doc() for d in devices],
            "lastSeen": iso(self.last_seen),
            "version": self.version,
        }


def iso(ms: int) -> str:
    """Epoch milliseconds as the hub's ISO 8601 UTC text."""
    return format_utc(datetime.fromtimestamp(ms / 1000, UTC))


def epoch_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


@dataclass(slots=True)
class PresenceBatch:
    """Applies one partition's records in order to its users and gateway clock.

    `load(user_id)` gives a user's state before the batch (read once per user);
    `holders()` the users of the partition with a live device (read only when a gateway
    leaves). After `apply`, `changed` names the users whose state changed, and
    `users` holds their states; `gateways` is the partition's clock after the batch, and
    `applied` its watermark (both kept under `gateways_key`, see `clock_value`).
    """

    load: Callable[[str], UserPresence]
    holders: Callable[[], Iterable[str]]
    gateways: dict[str, int]
    lease_ms: int
    applied: int = -1  # the partition's last offset whose effect is in the state
    users: dict[str, UserPresence] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)  # user -> when (epoch ms)
    touched: set[str] = field(default_factory=set)  # users named by a record
    expired: list[str] = field(default_factory=list)  # gateways that left
    clock_changed: bool = False

    def user(self, user_id: str) -> UserPresence:
        state = self.users.get(user_id)
        if state is None:
            state = self.users[user_id] = self.load(user_id)
        return state

    def apply(self, records: Iterable[tuple[int, PresenceRecord]]) -> None:
        """Apply (offset, record) pairs in offset order; those applied before are skipped
        (a redo after a restart), so each record counts once."""
        for offset, record in records:
            if offset <= self.applied:
                continue
            self.applied = offset
            self.clock_changed = True
            at = epoch_ms(record.at)
            kind = record.kind
            if kind == "tick":
                self._expire_silent(at)
                continue
            if kind == "gateway_down":
                self._gateway_left(record.gateway_id, at)
                continue
            self._heard(record.gateway_id, at)
            if kind == "heartbeat":
                self._expire_silent(at)
            elif record.user_id is not None and record.connection_id is not None:
                self.touched.add(record.user_id)
                if kind == "connect":
                    self._connect(record.user_id, record, at)
                else:
                    self._disconnect(record.user_id, record.connection_id, at)

    def _heard(self, gateway_id: str, at: int) -> None:
        if at > self.gateways.get(gateway_id, -1):
            self.gateways[gateway_id] = at
            self.clock_changed = True

    def _connect(self, user_id: str, record: PresenceRecord, at: int) -> None:
        state = self.user(user_id)
        conn = str(record.connection_id)
        if conn in state.devices or len(state.devices) >= MAX_DEVICES:
            return  # a redelivered connect changes nothing
        kind = record.client_kind or "ws"
        state.devices[conn] = Device(record.gateway_id, conn, kind, at)
        self._changed(user_id, state, at)

    def _disconnect(self, user_id: str, connection_id: str, at: int) -> None:
        state = self.user(user_id)
        if state.devices.pop(connection_id, None) is not None:
            self._changed(user_id, state, at)

    def _expire_silent(self, now: int) -> None:
        for gateway_id, last in sorted(self.gateways.items()):
            if last < now - self.lease_ms:
                # Last seen when the gateway was last heard of: its users were there then.
                self._gateway_left(gateway_id, last)

    def _gateway_left(self, gateway_id: str, at: int) -> None:
        if self.gateways.pop(gateway_id, None) is not None:
            self.clock_changed = True
        self.expired.append(gateway_id)
        for user_id in [*self.holders(), *self.users]:
            state = self.user(user_id)
            gone = [c for c, d in state.devices.items() if d.gateway_id == gateway_id]
            for conn in gone:
                del state.devices[conn]
            if gone:
                self._changed(user_id, state, at)

    def _changed(self, user_id: str, state: UserPresence, at: int) -> None:
        state.last_seen = max(state.last_seen, at)
        state.version += 1
        self.changed[user_id] = max(self.changed.get(user_id, at), at)


def decode(record: SourceRecord) -> PresenceRecord | Poison:
    """A `hub.presence` record, or why it goes to the dead letters."""
    try:
        value = PresenceRecord.model_validate(_parse(record, PresenceRecord.SCHEMA))
        if value.kind in ("connect", "disconnect"):
            if value.user_id is None or value.connection_id is None:
                raise PoisonRecord(
                    f"{value.kind} needs userId and connectionId", error_type="invalid_record"
                )
            _check_key(record, value.user_id)  # the user's state lives on the key's partition
    except ValidationError as exc:
        return Poison(record, PoisonRecord(_describe(exc), error_type="invalid_record"))
    except PoisonRecord as exc:
        return Poison(record, exc)
    return value
