"""Base model and field types every schema shares: frozen, camelCase, UTC times, a `schema` tag."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Self

import orjson
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, PlainSerializer
from pydantic.alias_generators import to_camel


def _to_utc_millis(value: datetime) -> datetime:
    # Milliseconds: what MongoDB stores, so a value reads back equal to what was written.
    if value.tzinfo is UTC and not value.microsecond % 1000:
        return value  # already normalized (revalidated into a record): no new object
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def format_utc(value: datetime) -> str:
    """ISO 8601 in UTC with millisecond precision and a `Z`, the wire format of every time."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(timespec="milliseconds")[:-6] + "Z"  # "+00:00" -> "Z"


def wire_time(value: datetime) -> str:
    """A time exactly as a `UtcDatetime` field validates and serializes it."""
    return format_utc(_to_utc_millis(value))


UtcDatetime = Annotated[
    AwareDatetime,
    AfterValidator(_to_utc_millis),
    PlainSerializer(format_utc, return_type=str, when_used="json"),
]


def utc_now() -> datetime:
    """The current time, timezone-aware, at the precision the hub stores."""
    now = datetime.now(UTC)  # already in UTC: no conversion needed
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class HubModel(BaseModel):
    """Frozen; camelCase on the wire; unknown fields ignored so old readers accept new writers."""

    model_config = ConfigDict(
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        ser_json_timedelta="float",
    )

    def to_json(self) -> bytes:
        """The wire form: UTF-8 JSON with camelCase keys."""
        # The serializer's own bytes: `model_dump_json` would decode them to str first.
        return self.__pydantic_serializer__.to_json(self, by_alias=True)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict (times as strings) with camelCase keys."""
        return self.model_dump(mode="json", by_alias=True)

    @classmethod
    def from_json(cls, data: bytes | str) -> Self:
        """Parse and validate the wire form."""
        return cls.model_validate_json(data)


class Record(HubModel):
    """A value written to a Kafka topic: carries `schema`, its name and version."""

    SCHEMA: ClassVar[str]

    @classmethod
    def schema_tag(cls) -> str:
        return cls.SCHEMA


def loads(data: bytes | str) -> Any:
    """Fast JSON decode used on hot paths before the schema is known."""
    return orjson.loads(data)
