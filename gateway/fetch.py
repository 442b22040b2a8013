"""The pump's fetch: Kafka's Fetch API (v4) spoken directly over aiokafka's connections.

The pump reads every partition of `user-events` from the end, commits nothing and hands
each record on at once, so it needs none of aiokafka's consumer machinery (the fetcher
task, its per-node bookkeeping run twice per fetch, `getmany`, a `ConsumerRecord` per
record). That machinery, and the generic protocol encoder and decoder it drives for
every partition of every request and response, cost about 500 us of CPU per fetch on
the bench machine, and at light load every message is a fetch of its own (issue 21: the
gateway's 600-900 us per message at 100 msg/s). Here a fetch is one request packed with
`struct`, a response walked with `struct.unpack_from`, and aiokafka's C record batches.

Fetch v4 is the oldest version Kafka 4 still serves and has the v2 message format with
`isolation_level`; it carries no fetch session, so every request names every partition.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from aiokafka.errors import IncompatibleBrokerVersion
from aiokafka.protocol.api import ResponseHeader_v0
from aiokafka.record.memory_records import MemoryRecords

FETCH_KEY = 1
FETCH_VERSION = 4
READ_UNCOMMITTED = 0  # aiokafka's default, as the pump's consumer had

_HEADER = struct.Struct(">hhih")  # api key, version, correlation id, client id length
_REQUEST = struct.Struct(">iiiib")  # replica id, max wait, min bytes, max bytes, isolation
_PARTITION = struct.Struct(">iqi")  # partition, fetch offset, partition max bytes
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
# partition, error code, high watermark, last stable offset, aborted transactions count
_PARTITION_HEAD = struct.Struct(">ihqqi")


@dataclass(frozen=True, slots=True)
class PartitionData:
    """One partition of a fetch response: its error code and record bytes (or None)."""

    partition: int
    error: int
    records: bytes | None


class _Header:
    """The request header, packed once per request (aiokafka packs it field by field)."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    def encode(self) -> bytes:
        return self._data


class _FetchResponse:
    """What aiokafka's connection calls to decode the response body."""

    @staticmethod
    def decode(buffer: BytesIO) -> list[PartitionData]:
        return decode_response(buffer.read())


class FetchRequest:
    """A Fetch v4 request of one topic's partitions at given offsets.

    Duck-types the two faces aiokafka's connection wants: the version builder
    (`prepare`) and the prepared struct (`build_request_header`, `encode`,
    `parse_response_header`, `RESPONSE_TYPE`).
    """

    API_KEY = FETCH_KEY
    API_VERSION = FETCH_VERSION
    FLEXIBLE_VERSION = False
    RESPONSE_TYPE = _FetchResponse

    __slots__ = ("_body",)

    def __init__(self, body: bytes) -> None:
        self._body = body

    def prepare(self, versions: dict[int, tuple[int, int]]) -> FetchRequest:
        low, high = versions.get(FETCH_KEY, (0, -1))
        if not low <= FETCH_VERSION <= high:
            raise IncompatibleBrokerVersion(
                f"the broker serves Fetch v{low}-v{high}, the pump speaks v{FETCH_VERSION}"
            )
        return self

    def build_request_header(self, correlation_id: int, client_id: str) -> _Header:
        name = client_id.encode()
        head = _HEADER.pack(FETCH_KEY, FETCH_VERSION, correlation_id, len(name))
        return _Header(head + name)

    def encode(self) -> bytes:
        return self._body

    def parse_response_header(self, buffer: BytesIO | bytes) -> Any:
        return ResponseHeader_v0.decode(buffer)


class FetchEncoder:
    """Packs Fetch v4 requests of `topic`; only the offsets change between requests."""

    def __init__(
        self, topic: str, *, max_wait_ms: int, max_bytes: int, partition_max_bytes: int
    ) -> None:
        name = topic.encode()
        # One topic: the array count, then the topic name, then the partition count.
        self._head = (
            _REQUEST.pack(-1, max_wait_ms, 1, max_bytes, READ_UNCOMMITTED)
            + _I32.pack(1)
            + _I16.pack(len(name))
            + name
        )
        self._partition_max = partition_max_bytes

    def request(self, positions: Iterable[tuple[int, int]]) -> FetchRequest:
        """A request for each (partition, next offset)."""
        parts = [_PARTITION.pack(p, offset, self._partition_max) for p, offset in positions]
        return FetchRequest(self._head + _I32.pack(len(parts)) + b"".join(parts))


def decode_response(data: bytes) -> list[PartitionData]:
    """The partitions of a Fetch v4 response body (after the correlation id)."""
    out: list[PartitionData] = []
    at = 4  # throttle time
    (topics,) = _I32.unpack_from(data, at)
    at += 4
    for _ in range(topics):
        (length,) = _I16.unpack_from(data, at)
        at += 2 + length
        (partitions,) = _I32.unpack_from(data, at)
        at += 4
        for _ in range(partitions):
            partition, error, _high, _stable, aborted = _PARTITION_HEAD.unpack_from(data, at)
            at += _PARTITION_HEAD.size + 16 * max(aborted, 0)
            (size,) = _I32.unpack_from(data, at)
            at += 4
            records = None
            if size >= 0:
                records = data[at : at + size]
                at += size
            out.append(PartitionData(partition, error, records))
    if at != len(data):
        raise ValueError(f"fetch response of {len(data)} bytes, {at} read")
    return out


def fetched_records(raw: bytes, position: int) -> Iterator[tuple[int, list[Any]]]:
    """Each complete batch of `raw` as (the partition's next position, its records at or
    after `position`, control batches giving none), as aiokafka's fetcher walks them.

    A batch can begin before the offset asked for (the broker sends whole batches), and
    its last offsets can be gone (compaction): the position after it is the batch's own
    next offset. An incomplete batch at the end (the response's size limit) is left for
    the next fetch. Raises `ValueError` on a batch whose checksum is wrong.
    """
    records = MemoryRecords(raw)
    while records.has_next():
        batch = records.next_batch()
        if batch is None:
            return
        if not batch.validate_crc():
            raise ValueError("record batch with a wrong CRC")
        found: list[Any] = []
        last = position - 1
        if not batch.is_control_batch:
            for record in batch:
                offset = record.offset
                if offset >= position:
                    found.append(record)
                    last = offset
        next_offset = getattr(batch, "next_offset", last + 1)
        position = max(position, last + 1, next_offset)
        yield position, found
