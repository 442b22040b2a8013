"""The pump's own Fetch v4 (gateway/fetch.py): the bytes aiokafka's protocol classes would
write and read, record batches walked as aiokafka's fetcher walks them, and the pump's
handling of a partition's error and records."""

from __future__ import annotations

import struct
from io import BytesIO
from typing import Any

import pytest
from aiokafka.errors import IncompatibleBrokerVersion, KafkaError, OffsetOutOfRangeError
from aiokafka.protocol.api import RequestHeader_v1
from aiokafka.protocol.fetch import FetchRequest_v4, FetchResponse_v4
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.util import calc_crc32c_py

from gateway.fetch import (
    FetchEncoder,
    FetchRequest,
    PartitionData,
    decode_response,
    fetched_records,
)
from gateway.pump import EventPump
from gateway.registry import Registry
from hubcore.settings import Settings

TOPIC = "hub.user-events"


def _batch(base: int, values: list[bytes], *, control: bool = False) -> bytes:
    """A v2 record batch whose records sit at `base`, `base + 1`, ..."""
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for delta, value in enumerate(values):
        builder.append(delta, timestamp=1_000, key=b"alice", value=value, headers=[])
    data = bytearray(builder.build())
    struct.pack_into(">q", data, 0, base)  # the base offset is outside the checksum
    if control:
        (attributes,) = struct.unpack_from(">h", data, 21)
        struct.pack_into(">h", data, 21, attributes | 0x20)
        struct.pack_into(">I", data, 17, calc_crc32c_py(memoryview(data)[21:]))
    return bytes(data)


def test_a_request_is_the_bytes_of_aiokafkas_fetch_v4() -> None:
    encoder = FetchEncoder(TOPIC, max_wait_ms=500, max_bytes=52_428_800, partition_max_bytes=1024)
    request = encoder.request([(0, 17), (3, 2**40)])
    expected = FetchRequest_v4(
        -1, 500, 1, 52_428_800, 0, [(TOPIC, [(0, 17, 1024), (3, 2**40, 1024)])]
    )
    assert request.encode() == expected.encode()
    header = request.build_request_header(correlation_id=41, client_id="hub-gateway-pump")
    assert header.encode() == RequestHeader_v1(expected, 41, "hub-gateway-pump").encode()


def test_a_broker_without_fetch_v4_is_refused() -> None:
    request = FetchEncoder(TOPIC, max_wait_ms=1, max_bytes=1, partition_max_bytes=1).request([])
    assert request.prepare({1: (4, 17)}) is request
    with pytest.raises(IncompatibleBrokerVersion):
        request.prepare({1: (12, 17)})
    with pytest.raises(IncompatibleBrokerVersion):
        request.prepare({})


def test_a_response_reads_as_aiokafka_reads_it() -> None:
    records = _batch(5, [b"a", b"b"])
    response = FetchResponse_v4(
        0,
        [
            (
                TOPIC,
                [
                    (0, 0, 7, 7, [], records),
                    (1, 1, -1, -1, [(9, 3), (10, 4)], None),
                    (2, 0, 0, 0, None, b""),
                ],
            )
        ],
    )
    data = response.encode()
    assert decode_response(data) == [
        PartitionData(0, 0, records),
        PartitionData(1, 1, None),
        PartitionData(2, 0, b""),
    ]
    assert FetchRequest.RESPONSE_TYPE.decode(BytesIO(data)) == decode_response(data)
    with pytest.raises(ValueError, match="read"):
        decode_response(data + b"\0")


def _offsets(raw: bytes, position: int) -> list[tuple[int, list[int]]]:
    return [(at, [r.offset for r in found]) for at, found in fetched_records(raw, position)]


def test_records_before_the_position_and_control_batches_are_skipped() -> None:
    raw = _batch(10, [b"x"] * 3) + _batch(13, [b"marker"], control=True) + _batch(14, [b"y"])
    assert _offsets(raw, 11) == [(13, [11, 12]), (14, []), (15, [14])]
    assert _offsets(raw, 0) == [(13, [10, 11, 12]), (14, []), (15, [14])]


def test_an_incomplete_last_batch_waits_for_the_next_fetch() -> None:
    whole, cut = _batch(0, [b"x"]), _batch(1, [b"y" * 100])
    assert _offsets(whole + cut[:-10], 0) == [(1, [0])]


def test_a_corrupt_batch_is_an_error() -> None:
    raw = bytearray(_batch(0, [b"hello"]))
    raw[-1] ^= 0xFF
    with pytest.raises(ValueError, match="CRC"):
        list(fetched_records(bytes(raw), 0))


class _Listener:
    def __init__(self) -> None:
        self.offsets: list[int] = []

    def deliver(self, event: Any) -> None:
        self.offsets.append(event.offset)


def _event(n: int) -> bytes:
    return (
        b'{"schema":"hub.user-event/1","id":"e%d","type":"presence_update","userId":"alice",'
        b'"occurredAt":"2026-12-07T12:00:00Z","data":{}}' % n
    )


def test_the_pump_dispatches_a_partitions_records_and_moves_its_position() -> None:
    registry = Registry()
    listener = _Listener()
    registry.ws[b"alice"] = [listener]  # type: ignore[list-item]
    pump = EventPump(Settings(_env_file=None), registry)
    pump._next = {0: 11, 1: 0}
    raw = _batch(10, [_event(n) for n in range(3)]) + _batch(13, [b"m"], control=True)
    pump.take(PartitionData(0, 0, raw))
    pump.take(PartitionData(1, 0, None))
    assert listener.offsets == [11, 12]
    assert pump.position(0) == 14
    assert pump.position(1) == 0


def test_a_partition_error_stops_the_fetch_and_out_of_range_restarts_at_the_end() -> None:
    pump = EventPump(Settings(_env_file=None), Registry())
    pump._next = {0: 5, 1: 9}
    with pytest.raises(KafkaError):
        pump.take(PartitionData(1, 6, None))  # not the leader
    assert pump.position(1) == 9
    with pytest.raises(OffsetOutOfRangeError):
        pump.take(PartitionData(0, 1, None))
    assert pump._lost == {0}  # the restart seeks this one to its end
    assert pump.partitions == [0, 1]  # cursors still name the user's partition meanwhile
