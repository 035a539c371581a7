"""Read-only views of the messenger's Redis, plus the DLQ operations (replay, purge).

Used by the `secretmagic` CLI (app.cli), the metrics collector (app.observability.collector)
and the demo summary.
Every function takes a *synchronous* `redis.Redis` (bytes or decoded responses both work; use a
bytes client, as `connect()` makes, when replaying DLQ entries that hold non-UTF-8 bytes) and
returns plain dataclasses; `as_dict()` gives their stable JSON form.

What the seed's operators typed by hand, and what replaces it:

    KEYS *                                  streams(r)            (SCAN TYPE stream, never KEYS)
    XLEN / XREVRANGE s + - COUNT 10         streams(r), tail(r, s, 10)
    XINFO GROUPS s                          groups(r, s), consumers(r, s, g)
    XPENDING s secretmagic-group            pending_summary(r, s, g), pending(r, s, g)
    "look at lag in XINFO GROUPS"           lag(r)  (Redis 7.x `lag`, counted on 6.2 / when nil)
    the seed's two SQL queries on the logs  logs(dsn, schema, ...)  (PostgreSQL, asyncpg)

Lag is the number of entries after the group's last-delivered-id (not yet handed to any consumer
of the group); pending entries (delivered, not acked) are reported separately.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.delivery import deadletter
from core import keys, wire
from core.errors import MalformedEvent
from core.wire import text

DEFAULT_GROUP = keys.DEFAULT_GROUP
LAG_CAP = 100_000  # counting lag by XRANGE stops here; the result is then reported as capped
PAGE = 1_000  # entries per XRANGE page
ALL: Literal["all"] = "all"
_ID = re.compile(r"^\d+(-\d+)?$")


# --- errors --------------------------------------------------------------------------------------


class MonitorError(Exception):
    """A request that cannot be answered (the message is one line for a person)."""


class NoSuchStream(MonitorError):
    def __init__(self, stream: str) -> None:
        super().__init__(f"no such stream: {stream}")
        self.stream = stream


class NotAStream(MonitorError):
    def __init__(self, key: str, kind: str) -> None:
        super().__init__(f"{key} is a {kind}, not a stream")
        self.key = key


class NoSuchGroup(MonitorError):
    def __init__(self, stream: str, group: str) -> None:
        super().__init__(f"no such group: {group} on stream {stream}")
        self.stream, self.group = stream, group


class NoSuchEntry(MonitorError):
    def __init__(self, where: str, entry_id: str) -> None:
        super().__init__(f"no such entry: {entry_id} in {where}")
        self.where, self.entry_id = where, entry_id


class InvalidId(MonitorError):
    def __init__(self, entry_id: str) -> None:
        super().__init__(f"invalid entry id: {entry_id!r} (expected MILLISECONDS-SEQUENCE)")


# --- results -------------------------------------------------------------------------------------


class _Dict:
    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


@dataclasses.dataclass(frozen=True)
class StreamInfo(_Dict):
    name: str
    length: int
    first_id: str | None  # None when the stream is empty
    last_id: str | None
    groups: int


@dataclasses.dataclass(frozen=True)
class GroupInfo(_Dict):
    name: str
    consumers: int
    pending: int
    last_delivered_id: str
    entries_read: int | None  # Redis 7.x only
    lag: int  # entries not yet delivered to the group
    lag_source: str  # "xinfo" (Redis 7.x reported it) or "counted" (XRANGE after last-delivered)
    lag_capped: bool  # counting stopped at the cap: the lag is at least `lag`


@dataclasses.dataclass(frozen=True)
class GroupLag(_Dict):
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
class ConsumerInfo(_Dict):
    name: str
    pending: int
    idle_ms: int  # since its last attempted interaction
    inactive_ms: int | None  # since its last successful read (Redis 7.2+ only)


@dataclasses.dataclass(frozen=True)
class PendingEntry(_Dict):
    entry_id: str
    consumer: str
    idle_ms: int
    deliveries: int
    event_type: str | None  # None: not an event, or no longer in the stream (trimmed)
    client_id: str | None
    last_error: str | None  # why the last delivery failed, when one did


@dataclasses.dataclass(frozen=True)
class PendingSummary(_Dict):
    stream: str
    group: str
    count: int
    min_id: str | None
    max_id: str | None
    consumers: dict[str, int]


@dataclasses.dataclass(frozen=True)
class Entry(_Dict):
    """A stream entry shown as text: `event` when it decodes as an event, else `error` says why."""

    id: str
    fields: dict[str, str]
    event: dict[str, Any] | None
    error: str | None


@dataclasses.dataclass(frozen=True)
class DlqEntry(_Dict):
    dlq_id: str
    group: str
    dlq_stream: str
    stream: str | None  # where it came from (dlq_stream field)
    entry_id: str | None  # its id there
    error_type: str | None
    error: str | None
    deliveries: int | None
    consumer: str | None
    time: str | None
    fields: dict[str, str]  # the original fields, as text


@dataclasses.dataclass(frozen=True)
class Replayed(_Dict):
    dlq_id: str
    stream: str
    new_id: str


@dataclasses.dataclass(frozen=True)
class ReplayFailure(_Dict):
    dlq_id: str
    reason: str


@dataclasses.dataclass
class ReplayResult(_Dict):
    group: str
    replayed: list[Replayed] = dataclasses.field(default_factory=list)
    failed: list[ReplayFailure] = dataclasses.field(default_factory=list)
    aborted: str | None = None  # the connection failed: the rest was not attempted


# --- connection ----------------------------------------------------------------------------------


def connect(messenger: Any, *, timeout: float = 5.0, retries: int = 0) -> redis.Redis:
    """A sync bytes client for `settings.MessengerSettings` that fails fast (no retry storms)."""
    password = messenger.password.get_secret_value() if messenger.password else None
    return redis.Redis(
        host=messenger.host,
        port=messenger.port,
        db=messenger.db,
        password=password,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), retries),
        client_name="secretmagic-monitor",
    )


# --- helpers -------------------------------------------------------------------------------------


def _opt(value: Any) -> str | None:
    return None if value is None else text(value)


def _parse_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _check_id(entry_id: str) -> str:
    if not _ID.match(entry_id):
        raise InvalidId(entry_id)
    return entry_id


def _require_stream(r: redis.Redis, stream: str) -> None:
    kind: Any = text(r.type(stream))
    if kind == "none":
        raise NoSuchStream(stream)
    if kind != "stream":
        raise NotAStream(stream, kind)


def _scan_streams(r: redis.Redis, match: str | None = None) -> list[str]:
    names = {text(k) for k in r.scan_iter(match=match, count=1000, _type="stream")}
    return sorted(names)


def _fields(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {text(k): text(v) for k, v in raw.items()}


# --- streams and groups --------------------------------------------------------------------------


def streams(r: redis.Redis, match: str | None = None) -> list[StreamInfo]:
    """Every stream key (SCAN TYPE stream), sorted by name."""
    found = []
    for name in _scan_streams(r, match):
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


def count_after(r: redis.Redis, stream: str, after_id: str, cap: int = LAG_CAP) -> tuple[int, bool]:
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
    r: redis.Redis, stream: str, raw: Mapping[str, Any], stream_info: Mapping[str, Any], cap: int
) -> tuple[int, str, bool]:
    reported = raw.get("lag")
    if reported is not None:
        return int(reported), "xinfo", False
    last_delivered = _parse_id(text(raw["last-delivered-id"]))
    length = int(stream_info["length"])
    first, last = stream_info.get("first-entry"), stream_info.get("last-entry")
    if not length or not last or last_delivered >= _parse_id(text(last[0])):
        return 0, "counted", False
    if first and last_delivered < _parse_id(text(first[0])):
        return length, "counted", False  # every entry is after it: XLEN is exact and O(1)
    count, capped = count_after(r, stream, text(raw["last-delivered-id"]), cap)
    return count, "counted", capped


def groups(r: redis.Redis, stream: str, cap: int = LAG_CAP) -> list[GroupInfo]:
    """The consumer groups of a stream with their lag (NoSuchStream if there is no stream)."""
    _require_stream(r, stream)
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


@contextlib.contextmanager
def _group_of(stream: str, group: str) -> Iterator[None]:
    """Turn Redis' NOGROUP reply into NoSuchGroup for this stream and group."""
    try:
        yield
    except redis.ResponseError as exc:
        if str(exc).startswith("NOGROUP"):
            raise NoSuchGroup(stream, group) from None
        raise


def consumers(r: redis.Redis, stream: str, group: str) -> list[ConsumerInfo]:
    """The consumers of a group (Redis 7.0 lists a consumer only once it was handed an entry)."""
    _require_stream(r, stream)
    with _group_of(stream, group):
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


def lag(r: redis.Redis, cap: int = LAG_CAP) -> list[GroupLag]:
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


# --- pending -------------------------------------------------------------------------------------


def pending_summary(r: redis.Redis, stream: str, group: str = DEFAULT_GROUP) -> PendingSummary:
    """XPENDING's summary form: how many, the id range, per consumer."""
    _require_stream(r, stream)
    with _group_of(stream, group):
        raw: Any = r.xpending(stream, group)
    return PendingSummary(
        stream=stream,
        group=group,
        count=int(raw["pending"]),
        min_id=_opt(raw.get("min")),
        max_id=_opt(raw.get("max")),
        consumers={text(c["name"]): int(c["pending"]) for c in raw.get("consumers") or []},
    )


def oldest_pending_age(r: redis.Redis, stream: str, group: str) -> float:
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
    r: redis.Redis, stream: str, group: str = DEFAULT_GROUP, count: int = 100
) -> list[PendingEntry]:
    """The oldest `count` pending entries (XPENDING extended form): idle time, deliveries, and
    what is stuck and why: the event's type and client, and the last error the worker recorded."""
    _require_stream(r, stream)
    with _group_of(stream, group):
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
            last_error=_opt(error),
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
    return Entry(id=text(entry_id), fields=_fields(raw), event=event, error=error)


def tail(r: redis.Redis, stream: str, count: int = 10) -> list[Entry]:
    """The newest `count` entries, oldest first (like `tail`)."""
    _require_stream(r, stream)
    if count <= 0:
        return []
    raw: Any = r.xrevrange(stream, max="+", min="-", count=count)
    return [entry(entry_id, fields) for entry_id, fields in reversed(raw)]


def last_id(r: redis.Redis, stream: str) -> str:
    """The id to follow a stream from: its last entry ("0-0" when empty)."""
    _require_stream(r, stream)
    raw: Any = r.xrevrange(stream, max="+", min="-", count=1)
    return text(raw[0][0]) if raw else "0-0"


def follow(
    r: redis.Redis, stream: str, after: str, block_ms: int = 1000
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


# --- DLQ -----------------------------------------------------------------------------------------


def _dlq_entry(dlq_key: str, entry_id: Any, raw: Mapping[Any, Any]) -> DlqEntry:
    original, meta = deadletter.split(raw)
    deliveries = meta.get("dlq_deliveries")
    return DlqEntry(
        dlq_id=text(entry_id),
        group=meta.get("dlq_group") or dlq_key.removesuffix(":dlq"),
        dlq_stream=dlq_key,
        stream=meta.get("dlq_stream"),
        entry_id=meta.get("dlq_entry_id"),
        error_type=meta.get("dlq_error_type"),
        error=meta.get("dlq_error"),
        deliveries=int(deliveries) if deliveries and deliveries.isdigit() else None,
        consumer=meta.get("dlq_consumer"),
        time=meta.get("dlq_time"),
        fields=_fields(original),
    )


def dlq_streams(r: redis.Redis) -> list[str]:
    """Every DLQ stream (`<group>:dlq`)."""
    return _scan_streams(r, match="*:dlq")


def dlq_list(r: redis.Redis, group: str | None = None, count: int = 100) -> list[DlqEntry]:
    """The newest `count` entries of one group's DLQ, or of every DLQ; newest first."""
    dlqs = [keys.dlq_stream(group)] if group else dlq_streams(r)
    result: list[DlqEntry] = []
    for key in dlqs:
        raw: Any = r.xrevrange(key, max="+", min="-", count=count)
        result.extend(_dlq_entry(key, entry_id, fields) for entry_id, fields in raw)
    result.sort(key=lambda e: _parse_id(e.dlq_id), reverse=True)
    return result[:count]


def dlq_length(r: redis.Redis, group: str) -> int:
    length: Any = r.xlen(keys.dlq_stream(group))
    return int(length)


def dlq_show(r: redis.Redis, dlq_id: str, group: str | None = DEFAULT_GROUP) -> DlqEntry:
    """One DLQ entry in full; with group=None every DLQ is searched."""
    _check_id(dlq_id)
    dlqs = [keys.dlq_stream(group)] if group else dlq_streams(r)
    found: list[DlqEntry] = []
    for key in dlqs:
        raw: Any = r.xrange(key, min=dlq_id, max=dlq_id, count=1)
        found.extend(_dlq_entry(key, entry_id, fields) for entry_id, fields in raw)
    if not found:
        raise NoSuchEntry(dlqs[0] if len(dlqs) == 1 else "any DLQ", dlq_id)
    if len(found) > 1:
        where = ", ".join(e.group for e in found)
        raise MonitorError(f"entry {dlq_id} is in several DLQs ({where}): name the group")
    return found[0]


def _dlq_ids(r: redis.Redis, key: str) -> Iterator[str]:
    """Every id in the DLQ up to its last entry *now* (entries dead-lettered meanwhile wait)."""
    newest: Any = r.xrevrange(key, max="+", min="-", count=1)
    if not newest:
        return
    end, start = text(newest[0][0]), "-"
    while True:
        page: Any = r.xrange(key, min=start, max=end, count=PAGE)
        if not page:
            return
        for entry_id, _fields in page:
            yield text(entry_id)
        start = f"({text(page[-1][0])}"


def dlq_replay(
    r: redis.Redis, group: str, ids: Sequence[str] | Literal["all"]
) -> ReplayResult:
    """Put DLQ entries back on their original streams, one at a time.

    For each entry: XADD the original fields (the dlq_* ones removed) to the original stream, and
    only once that succeeded XDEL it from the DLQ; any failure leaves the DLQ entry in place. If the
    connection fails, the rest is not attempted (`aborted` says why).
    """
    key = keys.dlq_stream(group)
    result = ReplayResult(group=group)
    wanted = _dlq_ids(r, key) if ids == ALL else iter([_check_id(i) for i in ids])
    for dlq_id in wanted:
        try:
            raw: Any = r.xrange(key, min=dlq_id, max=dlq_id, count=1)
            if not raw:
                result.failed.append(ReplayFailure(dlq_id, f"no such entry in {key}"))
                continue
            original, meta = deadletter.split(raw[0][1])
            target = meta.get("dlq_stream")
            if not target:
                result.failed.append(ReplayFailure(dlq_id, "no original stream (dlq_stream)"))
                continue
            if not original:
                result.failed.append(ReplayFailure(dlq_id, "no original fields to replay"))
                continue
            try:
                new_id: Any = r.xadd(target, original)
            except redis.ResponseError as exc:
                result.failed.append(ReplayFailure(dlq_id, f"XADD to {target} failed: {exc}"))
                continue
            try:
                r.xdel(key, dlq_id)
            except redis.RedisError as exc:
                result.failed.append(
                    ReplayFailure(
                        dlq_id,
                        f"replayed to {target} as {text(new_id)} but still in the DLQ: {exc}",
                    )
                )
                if isinstance(exc, redis.ConnectionError):
                    result.aborted = str(exc)
                    break
                continue
            result.replayed.append(Replayed(dlq_id, target, text(new_id)))
        except redis.ConnectionError as exc:
            if isinstance(exc, redis.AuthenticationError):
                raise
            result.failed.append(ReplayFailure(dlq_id, f"left in the DLQ: {exc}"))
            result.aborted = str(exc)
            break
    return result


def dlq_purge(r: redis.Redis, group: str, up_to: str | None = None) -> int:
    """Delete the group's DLQ entries up to `up_to` (default: the last one now); how many went.

    XTRIM MINID (Redis 6.2+) rather than DEL: entries dead-lettered after the operator looked (and
    confirmed) are kept.
    """
    key = keys.dlq_stream(group)
    if up_to is None:
        newest: Any = r.xrevrange(key, max="+", min="-", count=1)
        if not newest:
            return 0
        up_to = text(newest[0][0])
    ms, seq = _parse_id(_check_id(up_to))
    removed: Any = r.xtrim(key, minid=f"{ms}-{seq + 1}", approximate=False)
    return int(removed)


def dlq_summary(r: redis.Redis) -> dict[str, int]:
    """{group: DLQ length} for every DLQ stream."""
    result = {}
    for key in dlq_streams(r):
        with contextlib.suppress(redis.ResponseError):
            length: Any = r.xlen(key)
            result[key.removesuffix(":dlq")] = int(length)
    return result


# --- the PostgreSQL log table (the seed's two SQL queries) ---------------------------------------


class LogsUnreachable(MonitorError):
    """PostgreSQL cannot be reached (the message names host:port, never the password)."""


class LogsAuthFailed(MonitorError):
    """PostgreSQL refused the credentials of the DSN."""


class NoLogTable(MonitorError):
    """The schema or its `logs` table does not exist (nothing was logged there yet)."""


@dataclasses.dataclass(frozen=True)
class LogRow(_Dict):
    timestamp: str
    level: str
    category: str
    message: str
    error: str | None
    context: Any


def pg_endpoint(dsn: str) -> str:
    """host:port of a PostgreSQL DSN (safe to show: no user, no password)."""
    try:
        parts = urlsplit(dsn)
        return f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
    except ValueError:
        return "PostgreSQL (unparsable DSN)"


def _redacted(message: str, dsn: str) -> str:
    with contextlib.suppress(ValueError):
        password = urlsplit(dsn).password
        if password:
            message = message.replace(password, "***")
    return message.replace(dsn, pg_endpoint(dsn))


async def fetch_logs(
    dsn: str,
    schema: str = "secretmagic",
    *,
    category: str | None = "messenger",
    errors_only: bool = False,
    since_s: float | None = 600.0,
    limit: int = 100,
    wait_s: float = 5.0,
) -> list[LogRow]:
    """Rows of `<schema>.logs`, newest first.

    The defaults are the seed's first query (category 'messenger', last 10 minutes); with
    errors_only=True, since_s=None, limit=20 it is the second (level 'error'). `wait_s` bounds
    the connection (the query gets six times as long).
    """
    import asyncpg

    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$", schema):
        raise MonitorError(f"invalid log schema name {schema!r}")
    where: list[str] = []
    params: list[Any] = []
    if category is not None:
        params.append(category)
        where.append(f"category = ${len(params)}")
    if errors_only:
        where.append("level = 'error'")
    if since_s is not None:
        params.append(float(since_s))
        where.append(f"timestamp > NOW() - make_interval(secs => ${len(params)})")
    params.append(int(limit))
    sql = (
        f'SELECT timestamp, level, category, message, error, context::text AS context '
        f'FROM "{schema.lower()}".logs'
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + f" ORDER BY timestamp DESC LIMIT ${len(params)}"
    )
    endpoint = pg_endpoint(dsn)
    try:
        conn = await asyncpg.connect(dsn, timeout=wait_s)
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
        raise LogsAuthFailed(
            f"authentication failed for PostgreSQL at {endpoint}: {_redacted(str(exc), dsn)}"
        ) from None
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        reason = _redacted(str(exc), dsn) or type(exc).__name__
        raise LogsUnreachable(f"cannot reach PostgreSQL at {endpoint}: {reason}") from None
    try:
        rows = await conn.fetch(sql, *params, timeout=wait_s * 6)
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        raise NoLogTable(
            f"no log table {schema.lower()}.logs in PostgreSQL at {endpoint} (nothing logged yet?)"
        ) from None
    finally:
        await conn.close()
    return [
        LogRow(
            timestamp=row["timestamp"].astimezone(UTC).isoformat().replace("+00:00", "Z"),
            level=row["level"],
            category=row["category"],
            message=row["message"],
            error=row["error"],
            context=json.loads(row["context"]) if row["context"] is not None else None,
        )
        for row in rows
    ]


def logs(dsn: str, schema: str = "secretmagic", **options: Any) -> list[LogRow]:
    """fetch_logs() for synchronous callers (the CLI)."""
    return asyncio.run(fetch_logs(dsn, schema, **options))
