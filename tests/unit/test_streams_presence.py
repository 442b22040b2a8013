"""Presence batch logic (streams/presence.py): devices, last seen, versions and leases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from schemas.presence import PresenceRecord
from streams.batch.records import Poison, SourceRecord
from streams.presence import MAX_DEVICES, PresenceBatch, UserPresence, decode

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
LEASE_MS = 30_000


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ms(seconds: float) -> int:
    return int(_at(seconds).timestamp() * 1000)


def connect(user: str, conn: str, gw: str, t: float, kind: str = "ws") -> PresenceRecord:
    return PresenceRecord(
        kind="connect",
        gateway_id=gw,
        at=_at(t),
        user_id=user,
        connection_id=conn,
        client_kind=kind,
    )


def disconnect(user: str, conn: str, gw: str, t: float) -> PresenceRecord:
    return PresenceRecord(
        kind="disconnect", gateway_id=gw, at=_at(t), user_id=user, connection_id=conn
    )


def clock(kind: str, gw: str, t: float) -> PresenceRecord:
    return PresenceRecord(kind=kind, gateway_id=gw, at=_at(t))


class Table:
    """The state the batches read and leave behind, as the worker's table would."""

    def __init__(self) -> None:
        self.users: dict[str, UserPresence] = {}
        self.gateways: dict[str, int] = {}
        self.applied = -1

    def run(self, *records: PresenceRecord, first: int | None = None) -> PresenceBatch:
        """Apply `records` at the offsets after the last one (or from `first`)."""
        start = self.applied + 1 if first is None else first
        batch = PresenceBatch(
            load=lambda u: UserPresence.from_value(
                self.users[u].to_value() if u in self.users else None
            ),
            holders=lambda: [u for u, s in self.users.items() if s.online],
            gateways=dict(self.gateways),
            lease_ms=LEASE_MS,
            applied=self.applied,
        )
        batch.apply(enumerate(records, start))
        for user in batch.changed:
            self.users[user] = batch.users[user]
        self.gateways, self.applied = batch.gateways, batch.applied
        return batch


def test_devices_across_gateways_then_last_seen_when_the_last_one_leaves() -> None:
    table = Table()
    batch = table.run(connect("ann", "c1", "gw1", 0), connect("ann", "c2", "gw2", 1, "socketio"))
    assert batch.changed == {"ann": ms(1)}
    doc = table.users["ann"].to_doc("ann")
    assert doc["online"] is True and doc["version"] == 2
    assert [(d["gatewayId"], d["connectionId"], d["clientKind"]) for d in doc["devices"]] == [
        ("gw1", "c1", "ws"),
        ("gw2", "c2", "socketio"),
    ]
    assert doc["devices"][0]["since"] == "2026-12-07T12:00:00.000Z"
    table.run(disconnect("ann", "c1", "gw1", 5), disconnect("ann", "c2", "gw2", 7))
    doc = table.users["ann"].to_doc("ann")
    assert doc == {
        "_id": "ann",
        "online": False,
        "devices": [],
        "lastSeen": "2026-12-07T12:00:07.000Z",
        "version": 4,
    }


def test_a_redelivered_batch_changes_nothing() -> None:
    table = Table()
    records = (
        connect("bo", "c1", "gw1", 0),
        disconnect("bo", "c1", "gw1", 2),
        connect("bo", "c2", "gw1", 3),
    )
    table.run(*records)
    before = table.users["bo"].to_value()
    again = table.run(*records, first=0)
    assert again.changed == {} and table.users["bo"].to_value() == before
    # Past the watermark (the table's write of it was lost): the same devices all the same.
    table.applied = -1
    table.run(*records, first=0)
    assert table.users["bo"].devices == UserPresence.from_value(before).devices


def test_a_silent_gateway_expires_after_the_lease_only() -> None:
    table = Table()
    table.run(
        connect("cy", "c1", "gw1", 0), connect("cy", "c2", "gw2", 0), connect("dee", "c3", "gw1", 1)
    )
    within = table.run(clock("heartbeat", "gw2", 25), clock("tick", "worker", 30))
    assert within.changed == {} and table.users["cy"].online
    # gw2 keeps beating, gw1 said nothing since 1 s: gone by 31.001 s, as of gw1's last word.
    expired = table.run(clock("heartbeat", "gw2", 31.5))
    assert expired.expired == ["gw1"] and set(expired.changed) == {"cy", "dee"}
    assert [d.gateway_id for d in table.users["cy"].devices.values()] == ["gw2"]
    assert table.users["dee"].to_doc("dee")["online"] is False
    assert table.users["dee"].to_doc("dee")["lastSeen"] == "2026-12-07T12:00:01.000Z"
    assert "gw1" not in table.gateways and table.gateways["gw2"] == ms(31.5)


def test_ticks_expire_gateways_when_none_is_left_to_heartbeat() -> None:
    table = Table()
    table.run(connect("eve", "c1", "gw1", 0), clock("heartbeat", "gw1", 10))
    assert table.run(clock("tick", "w", 39)).changed == {}
    gone = table.run(clock("tick", "w", 40.001))
    assert gone.changed == {"eve": ms(10)} and not table.users["eve"].online


def test_a_clean_shutdown_drops_the_gateways_devices_at_once() -> None:
    table = Table()
    table.run(connect("fay", "c1", "gw1", 0), connect("fay", "c2", "gw2", 0))
    table.run(clock("gateway_down", "gw1", 3))
    assert [d.connection_id for d in table.users["fay"].devices.values()] == ["c2"]
    assert table.users["fay"].last_seen == ms(3)


def test_devices_per_user_are_bounded() -> None:
    table = Table()
    table.run(*(connect("gus", f"c{n}", "gw1", 0) for n in range(MAX_DEVICES + 5)))
    assert len(table.users["gus"].devices) == MAX_DEVICES


def _source(key: bytes, value: object) -> SourceRecord:
    return SourceRecord("hub.presence", 0, 7, key, orjson.dumps(value))


def test_decode_refuses_what_it_cannot_apply() -> None:
    good = connect("hal", "c1", "gw1", 0)
    assert decode(SourceRecord("hub.presence", 0, 1, b"hal", good.to_json())) == good
    wrong_key = decode(SourceRecord("hub.presence", 0, 1, b"ivy", good.to_json()))
    assert isinstance(wrong_key, Poison) and wrong_key.error.error_type == "key_mismatch"
    no_conn = decode(_source(b"hal", {**good.to_dict(), "connectionId": None}))
    assert isinstance(no_conn, Poison) and "connectionId" in no_conn.error.message
    bad_kind = decode(_source(b"hal", {**good.to_dict(), "kind": "teleport"}))
    assert isinstance(bad_kind, Poison) and bad_kind.error.error_type == "invalid_record"
    not_json = decode(SourceRecord("hub.presence", 0, 1, b"hal", b"{"))
    assert isinstance(not_json, Poison) and not_json.error.error_type == "invalid_json"
