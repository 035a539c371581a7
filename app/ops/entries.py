"""Entries: pending ones (`XPENDING`, with what is stuck and why) and the newest ones of a stream
(`XREVRANGE … COUNT n`, then `XREAD BLOCK` to follow), decoded as events where they are."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any, cast

from app.ops.common import (
    DEFAULT_GROUP,
    Client,
    MonitorError,
    Result,
    fields_text,
    group_of,
    opt,
    require_stream,
)
from core import keys, wire
from core.errors import MalformedEvent
from core.wire import text


@dataclasses.dataclass(frozen=True)
class PendingEntry(Result):
    entry_id: str
    consumer: str
    idle_ms: int
    deliveries: int
    event_type: str | None  # None: not an event, or no longer in the stream (trimmed)
    client_id: str | None
    last_error: str | None  # why the last delivery failed, when one did


@dataclasses.dataclass(frozen=True)
class PendingSummary(Result):
    stream: str
    group: str
    count: int
    min_id: str | None
    max_id: str | None
    consumers: dict[str, int]


@dataclasses.dataclass(frozen=True)
class Entry(Result):
    """A stream entry shown as text: `event` when it decodes as an event, else `error` says why."""

    id: str
    fields: dict[str, str]
    event: dict[str, Any] | None
    error: str | None


# --- pending -------------------------------------------------------------------------------------


def pending_summary(r: Client, stream: str, group: str = DEFAULT_GROUP) -> PendingSummary:
    """XPENDING's summary form: how many, the id range, per consumer."""
    require_stream(r, stream)
    with group_of(stream, group):
        raw: Any = r.xpending(stream, group)
    return PendingSummary(
        stream=stream,
        group=group,
        count=int(raw["pending"]),
        min_id=opt(raw.get("min")),
        max_id=opt(raw.get("max")),
        consumers={text(c["name"]): int(c["pending"]) for c in raw.get("consumers") or []},
    )


def oldest_pending_age(r: Client, stream: str, group: str) -> float:
    """Seconds since the group's oldest unacknowledged entry was added to the stream (by Redis'
    clock, which made its id), 0 when nothing is pending: how long its oldest work is stuck."""
    try:
        oldest = pending_summary(r, stream, group).min_id
    except MonitorError:  # the stream or group was deleted meanwhile
        return 0.0
    if oldest is None:
        return 0.0
    seconds, micros = cast(tuple[int, int], r.time())
    return max(0.0, seconds + micros / 1e6 - int(oldest.split("-")[0]) / 1e3)


def pending(
    r: Client, stream: str, group: str = DEFAULT_GROUP, count: int = 100
) -> list[PendingEntry]:
    """The oldest `count` pending entries (XPENDING extended form): idle time, deliveries, and
    what is stuck and why: the event's type and client, and the last error the worker recorded."""
    require_stream(r, stream)
    with group_of(stream, group):
        raw: Any = r.xpending_range(stream, group, min="-", max="+", count=count)
    if not raw:
        return []
    ids = [text(p["message_id"]) for p in raw]
    with r.pipeline(transaction=False) as pipe:
        pipe.hmget(keys.errors_key(group), [f"{stream}/{i}" for i in ids])
        for i in ids:
            pipe.xrange(stream, min=i, max=i)
        errors, *found = pipe.execute()
    result = []
    for p, entry_id, error, hit in zip(raw, ids, errors, found, strict=True):
        event = entry(entry_id, hit[0][1]).event if hit else None
        result.append(PendingEntry(
            entry_id=entry_id,
            consumer=text(p["consumer"]),
            idle_ms=int(p["time_since_delivered"]),
            deliveries=int(p["times_delivered"]),
            event_type=event["event_type"] if event else None,
            client_id=event["client_id"] if event else None,
            last_error=opt(error),
        ))
    return result


# --- entries -------------------------------------------------------------------------------------


def entry(entry_id: Any, raw: Mapping[Any, Any]) -> Entry:
    """A raw stream entry as text, decoded as an event when it is one."""
    try:
        event: dict[str, Any] | None = wire.decode(raw).model_dump(mode="json")
        error = None
    except MalformedEvent as exc:
        event, error = None, str(exc)
    except Exception as exc:  # never crash on what someone wrote to a stream
        event, error = None, f"{type(exc).__name__}: {exc}"
    return Entry(id=text(entry_id), fields=fields_text(raw), event=event, error=error)


def tail(r: Client, stream: str, count: int = 10) -> list[Entry]:
    """The newest `count` entries, oldest first (like `tail`)."""
    require_stream(r, stream)
    if count <= 0:
        return []
    raw: Any = r.xrevrange(stream, max="+", min="-", count=count)
    return [entry(entry_id, fields) for entry_id, fields in reversed(raw)]


def last_id(r: Client, stream: str) -> str:
    """The id to follow a stream from: its last entry ("0-0" when empty)."""
    require_stream(r, stream)
    raw: Any = r.xrevrange(stream, max="+", min="-", count=1)
    return text(raw[0][0]) if raw else "0-0"


def follow(
    r: Client, stream: str, after: str, block_ms: int = 1000
) -> Iterator[list[Entry]]:
    """Batches of entries added after `after` (XREAD BLOCK); an empty batch on each timeout.

    The caller stops by breaking out (or by Ctrl-C); the client's socket timeout must be longer
    than `block_ms`.
    """
    while True:
        raw: Any = r.xread({stream: after}, count=100, block=block_ms)
        batch = []
        for _name, items in raw or []:
            for entry_id, fields in items:
                batch.append(entry(entry_id, fields))
                after = text(entry_id)
        yield batch
