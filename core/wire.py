"""An Event as a Redis Stream entry and back (docs/wire-format.md).

One stream entry = one event, as flat fields an integrator writes with a plain XADD:

    event_id    uuid                     (text)
    event_type  e.g. sales_updated       (text)
    client_id   the client               (text)
    timestamp   ISO 8601 UTC             (text)
    data        a JSON object            (text)

Everything is UTF-8 text, so `redis-cli XREVRANGE features-updates + - COUNT 10` reads it.
Decoding is strict and names the field that is wrong: a bad entry is dead-lettered with that
reason. FastStream's own envelope (one `__data__` field holding the same object as JSON) is
accepted too, so a FastStream-based integrator may publish an Event directly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_core import from_json

from core.errors import MalformedEvent
from core.events import Event

FIELDS = ("event_id", "event_type", "client_id", "timestamp", "data")
MAX_ENTRY_BYTES = 1 << 20  # an entry larger than this is malformed: events are notifications
FASTSTREAM_ENVELOPE = b"__data__"


def text(value: bytes | str, errors: str = "backslashreplace") -> str:
    """Bytes (as redis-py returns them) or str as text. By default bytes that are not UTF-8 are
    shown escaped (`\\xff`), never raised on: for showing what someone wrote to a stream."""
    return value.decode("utf-8", errors) if isinstance(value, bytes) else str(value)


_SEQ_BITS = 20  # entry sequence numbers within one millisecond, kept exactly up to ~1M


def position(entry_id: str | bytes) -> int:
    """A stream entry id (`<ms>-<seq>`) as one sortable integer: where an event stands in time.

    Entry ids come from the Redis server's clock, so the events of one server order by it across
    streams; the store keeps the position of the newest event each client's results were
    computed for and refuses older ones (core.errors.Superseded)."""
    ms, _, seq = text(entry_id).partition("-")
    return (int(ms) << _SEQ_BITS) | min(int(seq or 0), (1 << _SEQ_BITS) - 1)


def position_now() -> int:
    """The position of an event arriving now (for work that no stream entry asked for)."""
    return position(f"{time.time_ns() // 1_000_000}-0")


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
    """An event from stream fields (flat, or FastStream's envelope); MalformedEvent names what is
    wrong. On the consume path of every entry: one pass over the fields."""
    envelope = fields.get(FASTSTREAM_ENVELOPE)
    if envelope is not None:
        _check_size(sum(len(k) + len(v) for k, v in fields.items()))
        return _decode_values(_unwrap(envelope))
    values: dict[str, Any] = {}
    size = 0
    for key, value in fields.items():
        size += len(key) + (len(value) if isinstance(value, str | bytes) else 0)
        try:
            values[key.decode() if isinstance(key, bytes) else str(key)] = (
                value.decode() if isinstance(value, bytes) else value)
        except UnicodeDecodeError:
            _check_size(size)
            raise MalformedEvent(f"field {key!r} is not UTF-8 text") from None
    _check_size(size)
    return _decode_values(values)


def _check_size(size: int) -> None:
    if size > MAX_ENTRY_BYTES:
        raise MalformedEvent(f"entry is {size} bytes, over the {MAX_ENTRY_BYTES}-byte limit")


def _unwrap(envelope: bytes) -> dict[str, Any]:
    """The JSON object inside FastStream's binary message format (header, then the body)."""
    from faststream.redis.parser.binary import BinaryMessageFormatV1

    try:
        body, _headers = BinaryMessageFormatV1.parse(envelope)
        value = json.loads(body)
    except Exception:
        raise MalformedEvent("FastStream envelope does not hold a JSON object") from None
    if not isinstance(value, dict):
        raise MalformedEvent("FastStream envelope does not hold a JSON object")
    return value


def _decode_values(values: Mapping[str, Any]) -> Event:
    missing = [name for name in ("event_type", "client_id") if not values.get(name)]
    if missing:
        raise MalformedEvent(f"missing field(s): {', '.join(missing)}")
    data = values.get("data", "{}")
    if isinstance(data, str):
        try:
            data = from_json(data)
        except ValueError as exc:
            raise MalformedEvent(f"field 'data' is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedEvent(f"field 'data' must be a JSON object, got {type(data).__name__}")
    known = {k: values[k] for k in FIELDS[:4] if values.get(k)}
    try:
        return Event(**known, data=data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise MalformedEvent(f"field {where!r}: {first['msg']}") from None
