"""Columns of the Parquet files: the Kafka envelope of every record plus its topic's fields.

Fields are read from the JSON value leniently (a wrong type or a bad time becomes null) so
that every record on a topic, poison ones included, lands in exactly one row; `value`
keeps the record as it was produced.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa

# The topics `export` reads, by the kind that names their Hive partition (`topic=<kind>`).
KINDS = ("raw-messages", "commands", "user-events", "dead-letter")

TIMESTAMP = pa.timestamp("ms", tz="UTC")

ENVELOPE: tuple[pa.Field, ...] = (
    pa.field("kafka_partition", pa.int32(), nullable=False),
    pa.field("kafka_offset", pa.int64(), nullable=False),
    pa.field("kafka_timestamp", TIMESTAMP, nullable=False),
    pa.field("key", pa.string()),
    pa.field("schema", pa.string()),
    pa.field("value", pa.string()),
)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else None


def _texts(value: Any) -> list[str] | None:
    if not isinstance(value, list):
        return None
    return [v for v in value if isinstance(v, str)]


@dataclass(frozen=True, slots=True)
class Column:
    """One topic-specific column: its name, Arrow type, JSON path and converter."""

    name: str
    type: pa.DataType
    path: tuple[str, ...]
    convert: Callable[[Any], Any]


def _each(key: str) -> Callable[[Any], list[str] | None]:
    """One string field of every object of a list (attachments' ids, kinds...)."""

    def convert(value: Any) -> list[str] | None:
        if not isinstance(value, list):
            return None
        return [str(v[key]) for v in value if isinstance(v, dict) and isinstance(v.get(key), str)]

    return convert


def _attachments(name: str, key: str) -> Column:
    # Metadata only: the bytes never travel on the exported topics.
    return Column(name, pa.list_(pa.string()), ("attachments",), _each(key))


def _col(name: str, path: str, kind: str = "text") -> Column:
    types: dict[str, tuple[pa.DataType, Callable[[Any], Any]]] = {
        "text": (pa.string(), _text),
        "int": (pa.int64(), _int),
        "bool": (pa.bool_(), _bool),
        "time": (TIMESTAMP, _time),
        "texts": (pa.list_(pa.string()), _texts),
    }
    arrow_type, convert = types[kind]
    return Column(name, arrow_type, tuple(path.split(".")), convert)


COLUMNS: dict[str, tuple[Column, ...]] = {
    "raw-messages": (
        _col("id", "id"),
        _col("user_id", "userId"),
        _col("platform", "platform"),
        _col("account_id", "accountId"),
        _col("conversation_id", "conversationId"),
        _col("conversation_title", "conversationTitle"),
        _col("external_message_id", "externalMessageId"),
        _col("sender_id", "sender.id"),
        _col("sender_name", "sender.name"),
        _col("text", "text"),
        _col("sent_at", "sentAt", "time"),
        _col("received_at", "receivedAt", "time"),
        _attachments("attachment_ids", "id"),
        _attachments("attachment_kinds", "kind"),
        _attachments("attachment_mime_types", "mimeType"),
    ),
    "commands": (
        _col("id", "id"),
        _col("user_id", "userId"),
        _col("type", "type"),
        _col("conversation_id", "conversationId"),
        _col("message_ids", "messageIds", "texts"),
        _col("issued_at", "issuedAt", "time"),
        _col("attachment_id", "attachmentId"),
        _col("status", "status"),
        _col("reason", "reason"),
    ),
    "user-events": (
        _col("id", "id"),
        _col("user_id", "userId"),
        _col("type", "type"),
        _col("occurred_at", "occurredAt", "time"),
    ),
    "dead-letter": (
        _col("reason", "reason"),
        _col("error_type", "errorType"),
        _col("retriable", "retriable", "bool"),
        _col("source_topic", "source.topic"),
        _col("source_partition", "source.partition", "int"),
        _col("source_offset", "source.offset", "int"),
        _col("source_platform", "source.platform"),
        _col("source_account_id", "source.accountId"),
        _col("failed_at", "failedAt", "time"),
    ),
}


def arrow_schema(kind: str) -> pa.Schema:
    """The schema of every file of topic kind `kind`."""
    return pa.schema([*ENVELOPE, *(pa.field(c.name, c.type) for c in COLUMNS[kind])])


def _lookup(doc: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    return doc


def _decode(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="replace")


def to_table(kind: str, records: Sequence[Any]) -> pa.Table:
    """Arrow table of aiokafka `ConsumerRecord`s of one partition of topic kind `kind`."""
    columns = COLUMNS[kind]
    data: dict[str, list[Any]] = {f.name: [] for f in ENVELOPE}
    data.update({c.name: [] for c in columns})
    for record in records:
        try:
            doc = orjson.loads(record.value) if record.value is not None else None
        except orjson.JSONDecodeError:
            doc = None
        data["kafka_partition"].append(record.partition)
        data["kafka_offset"].append(record.offset)
        data["kafka_timestamp"].append(datetime.fromtimestamp(record.timestamp / 1000, UTC))
        data["key"].append(_decode(record.key))
        data["schema"].append(_text(_lookup(doc, ("schema",))))
        data["value"].append(_decode(record.value))
        for column in columns:
            data[column.name].append(column.convert(_lookup(doc, column.path)))
    return pa.table(data, schema=arrow_schema(kind))
