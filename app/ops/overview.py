"""Streams and consumer groups: what `KEYS *`, `XLEN` and `XINFO GROUPS` showed the seed's
operators, with the lag counted where Redis does not report it (6.2, or nil after XDEL).

Lag is the number of entries after the group's last-delivered-id (not yet handed to any consumer
of the group); pending entries (delivered, not acked) are reported separately.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import redis

from app.ops.common import (
    LAG_CAP,
    PAGE,
    Client,
    MonitorError,
    NoSuchStream,
    Result,
    group_of,
    parse_id,
    require_stream,
    scan_streams,
)
from app.ops.entries import oldest_pending_age
from core.wire import text


@dataclasses.dataclass(frozen=True)
class StreamInfo(Result):
    name: str
    length: int
    first_id: str | None  # None when the stream is empty
    last_id: str | None
    groups: int


@dataclasses.dataclass(frozen=True)
class GroupInfo(Result):
    name: str
    consumers: int
    pending: int
    last_delivered_id: str
    entries_read: int | None  # Redis 7.x only
    lag: int  # entries not yet delivered to the group
    lag_source: str  # "xinfo" (Redis 7.x reported it) or "counted" (XRANGE after last-delivered)
    lag_capped: bool  # counting stopped at the cap: the lag is at least `lag`


@dataclasses.dataclass(frozen=True)
class GroupLag(Result):
    stream: str
    group: str
    lag: int
    lag_source: str
    lag_capped: bool
    pending: int
    consumers: int
    last_delivered_id: str
    oldest_pending_s: float  # age of the oldest unacknowledged entry; 0 when none


@dataclasses.dataclass(frozen=True)
class ConsumerInfo(Result):
    name: str
    pending: int
    idle_ms: int  # since its last attempted interaction
    inactive_ms: int | None  # since its last successful read (Redis 7.2+ only)


# --- streams and groups --------------------------------------------------------------------------


def streams(r: Client, match: str | None = None) -> list[StreamInfo]:
    """Every stream key (SCAN TYPE stream), sorted by name."""
    found = []
    for name in scan_streams(r, match):
        try:
            info: Any = r.xinfo_stream(name)
        except redis.ResponseError:
            continue  # deleted between SCAN and XINFO
        first, last = info.get("first-entry"), info.get("last-entry")
        found.append(
            StreamInfo(
                name=name,
                length=int(info["length"]),
                first_id=text(first[0]) if first else None,
                last_id=text(last[0]) if last else None,
                groups=int(info["groups"]),
            )
        )
    return found


def count_after(r: Client, stream: str, after_id: str, cap: int = LAG_CAP) -> tuple[int, bool]:
    """(entries with an id greater than `after_id`, capped?) counted with XRANGE in pages."""
    count, start = 0, f"({after_id}"
    while count < cap:
        page: Any = r.xrange(stream, min=start, max="+", count=min(PAGE, cap - count))
        if not page:
            return count, False
        count += len(page)
        start = f"({text(page[-1][0])}"
    # Exactly at the cap: capped only if something is left.
    more: Any = r.xrange(stream, min=start, max="+", count=1)
    return count, bool(more)


def _lag(
    r: Client, stream: str, raw: Mapping[str, Any], stream_info: Mapping[str, Any], cap: int
) -> tuple[int, str, bool]:
    reported = raw.get("lag")
    if reported is not None:
        return int(reported), "xinfo", False
    last_delivered = parse_id(text(raw["last-delivered-id"]))
    length = int(stream_info["length"])
    first, last = stream_info.get("first-entry"), stream_info.get("last-entry")
    if not length or not last or last_delivered >= parse_id(text(last[0])):
        return 0, "counted", False
    if first and last_delivered < parse_id(text(first[0])):
        return length, "counted", False  # every entry is after it: XLEN is exact and O(1)
    count, capped = count_after(r, stream, text(raw["last-delivered-id"]), cap)
    return count, "counted", capped


def groups(r: Client, stream: str, cap: int = LAG_CAP) -> list[GroupInfo]:
    """The consumer groups of a stream with their lag (NoSuchStream if there is no stream)."""
    require_stream(r, stream)
    try:
        raw_groups: Any = r.xinfo_groups(stream)
        stream_info: Any = r.xinfo_stream(stream) if raw_groups else {}
    except redis.ResponseError as exc:
        if "no such key" in str(exc).lower():
            raise NoSuchStream(stream) from None
        raise
    result = []
    for raw in raw_groups:
        lag_value, source, capped = _lag(r, stream, raw, stream_info, cap)
        entries_read = raw.get("entries-read")
        result.append(
            GroupInfo(
                name=text(raw["name"]),
                consumers=int(raw["consumers"]),
                pending=int(raw["pending"]),
                last_delivered_id=text(raw["last-delivered-id"]),
                entries_read=None if entries_read is None else int(entries_read),
                lag=lag_value,
                lag_source=source,
                lag_capped=capped,
            )
        )
    return sorted(result, key=lambda g: g.name)


def consumers(r: Client, stream: str, group: str) -> list[ConsumerInfo]:
    """The consumers of a group (Redis 7.0 lists a consumer only once it was handed an entry)."""
    require_stream(r, stream)
    with group_of(stream, group):
        raw: Any = r.xinfo_consumers(stream, group)
    return sorted(
        (
            ConsumerInfo(
                name=text(c["name"]),
                pending=int(c["pending"]),
                idle_ms=int(c["idle"]),
                inactive_ms=None if c.get("inactive") is None else int(c["inactive"]),
            )
            for c in raw
        ),
        key=lambda c: c.name,
    )


def lag(r: Client, cap: int = LAG_CAP) -> list[GroupLag]:
    """Every group of every stream, worst first (largest lag, then most pending)."""
    result: list[GroupLag] = []
    for info in streams(r):
        if not info.groups:
            continue
        try:
            stream_groups = groups(r, info.name, cap)
        except MonitorError:
            continue  # deleted meanwhile
        result.extend(
            GroupLag(
                stream=info.name,
                group=g.name,
                lag=g.lag,
                lag_source=g.lag_source,
                lag_capped=g.lag_capped,
                pending=g.pending,
                consumers=g.consumers,
                last_delivered_id=g.last_delivered_id,
                oldest_pending_s=oldest_pending_age(r, info.name, g.name) if g.pending else 0.0,
            )
            for g in stream_groups
        )
    return sorted(result, key=lambda g: (-g.lag, -g.pending, g.stream, g.group))
