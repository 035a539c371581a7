"""The Event model and its wire format on Redis Streams (docs/wire-format.md).

One stream entry = one event, as flat fields an integrator writes with a plain XADD:

    event_id    uuid                     (text)
    event_type  e.g. sales_updated       (text)
    client_id   the client               (text)
    timestamp   ISO 8601 UTC             (text)
    data        a JSON object            (text)

Everything is UTF-8 text, so `redis-cli XREVRANGE features-updates + - COUNT 10` reads it. Decoding
is strict and names the field that is wrong: a bad entry is dead-lettered with that reason.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.errors import MalformedEvent

FIELDS = ("event_id", "event_type", "client_id", "timestamp", "data")
MAX_ENTRY_BYTES = 1 << 20  # an entry larger than this is malformed: events are notifications


def _now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """An event as in the seed: a notification; the data itself is in the store by client_id."""

    model_config = ConfigDict(frozen=True)

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    event_type: str = Field(min_length=1, pattern=r"^[a-z][a-z0-9_]*$")
    client_id: str = Field(min_length=1)
    timestamp: datetime = Field(default_factory=_now)
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # A naive timestamp from an integrator is taken as UTC, as the seed's "Z" examples are.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


    def reply(self, event_type: str, data: BaseModel) -> Event:
        """The event this one leads to, for the same client (e.g. features_updated)."""
        return Event(event_type=event_type, client_id=self.client_id, data=data.model_dump())


class IncomingData(BaseModel):
    """`data` of sales_updated / stock_updated / bom_updated / products_updated."""

    integration_id: str | None = None
    table_name: str | None = None


class FeaturesUpdatedData(BaseModel):
    """`data` of features_updated."""

    features_count: int = Field(ge=0)
    processing_time_ms: int = Field(ge=0)
    feature_types: list[str]
    rows: int = Field(0, ge=0, description="feature rows written for the client")


class BomExplodedData(BaseModel):
    """`data` of bom_exploded."""

    products_count: int = Field(ge=0)
    rows: int = Field(ge=0, description="(product, component) rows written for the client")
    processing_time_ms: int = Field(ge=0)


def encode(event: Event) -> dict[str, str]:
    """The stream fields of an event."""
    return {
        "event_id": str(event.event_id),
        "event_type": event.event_type,
        "client_id": event.client_id,
        "timestamp": event.timestamp.isoformat().replace("+00:00", "Z"),
        "data": json.dumps(event.data, separators=(",", ":"), ensure_ascii=False, default=str),
    }


def decode(fields: Mapping[Any, Any]) -> Event:
    """An event from stream fields (or a JSON object with the same keys, where `data` may already
    be an object); MalformedEvent names what is wrong."""
    size = sum(len(k) + len(v) for k, v in fields.items() if isinstance(v, str | bytes))
    if size > MAX_ENTRY_BYTES:
        raise MalformedEvent(f"entry is {size} bytes, over the {MAX_ENTRY_BYTES}-byte limit")
    values: dict[str, Any] = {}
    for key, value in fields.items():
        try:
            name = key.decode() if isinstance(key, bytes) else str(key)
            values[name] = value.decode() if isinstance(value, bytes) else value
        except UnicodeDecodeError:
            raise MalformedEvent(f"field {key!r} is not UTF-8 text") from None
    missing = [name for name in ("event_type", "client_id") if not values.get(name)]
    if missing:
        raise MalformedEvent(f"missing field(s): {', '.join(missing)}")
    data = values.get("data", "{}")
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise MalformedEvent(f"field 'data' is not JSON: {exc.msg} at char {exc.pos}") from None
    if not isinstance(data, dict):
        raise MalformedEvent(f"field 'data' must be a JSON object, got {type(data).__name__}")
    known = {k: values[k] for k in FIELDS[:4] if values.get(k)}
    try:
        return Event(**known, data=data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise MalformedEvent(f"field {where!r}: {first['msg']}") from None
