"""The dead-letter streams (`<group>:dlq`): list, show, replay onto the original stream, purge."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, cast

import redis

from app.delivery import deadletter
from app.ops.common import (
    ALL,
    DEFAULT_GROUP,
    PAGE,
    Client,
    MonitorError,
    NoSuchEntry,
    Result,
    check_id,
    fields_text,
    parse_id,
    scan_streams,
)
from core import keys
from core.wire import text


@dataclasses.dataclass(frozen=True)
class DlqEntry(Result):
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
class Replayed(Result):
    dlq_id: str
    stream: str
    new_id: str


@dataclasses.dataclass(frozen=True)
class ReplayFailure(Result):
    dlq_id: str
    reason: str


@dataclasses.dataclass
class ReplayResult(Result):
    group: str
    replayed: list[Replayed] = dataclasses.field(default_factory=list)
    failed: list[ReplayFailure] = dataclasses.field(default_factory=list)
    aborted: str | None = None  # the connection failed: the rest was not attempted


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
        fields=fields_text(original),
    )


def dlq_streams(r: Client) -> list[str]:
    """Every DLQ stream (`<group>:dlq`)."""
    return scan_streams(r, match="*:dlq")


def dlq_list(r: Client, group: str | None = None, count: int = 100) -> list[DlqEntry]:
    """The newest `count` entries of one group's DLQ, or of every DLQ; newest first."""
    dlqs = [keys.dlq_stream(group)] if group else dlq_streams(r)
    result: list[DlqEntry] = []
    for key in dlqs:
        raw: Any = r.xrevrange(key, max="+", min="-", count=count)
        result.extend(_dlq_entry(key, entry_id, fields) for entry_id, fields in raw)
    result.sort(key=lambda e: parse_id(e.dlq_id), reverse=True)
    return result[:count]


def dlq_length(r: Client, group: str) -> int:
    length: Any = r.xlen(keys.dlq_stream(group))
    return int(length)


def dlq_show(r: Client, dlq_id: str, group: str | None = DEFAULT_GROUP) -> DlqEntry:
    """One DLQ entry in full; with group=None every DLQ is searched."""
    check_id(dlq_id)
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


def _dlq_ids(r: Client, key: str) -> Iterator[str]:
    """Every id in the DLQ up to its last entry *now* (entries dead-lettered meanwhile wait)."""
    newest: Any = r.xrevrange(key, max="+", min="-", count=1)
    if not newest:
        return
    end, start = text(newest[0][0]), "-"
    while True:
        page: Any = r.xrange(key, min=start, max=end, count=PAGE)
        if not page:
            return
        for entry_id, _ in page:
            yield text(entry_id)
        start = f"({text(page[-1][0])}"


def dlq_replay(
    r: Client, group: str, ids: Sequence[str] | Literal["all"],
    on_entry: Callable[[], None] | None = None,
) -> ReplayResult:
    """Put DLQ entries back on their original streams, one at a time.

    For each entry: XADD the original fields (the dlq_* ones removed) to the original stream, and
    only once that succeeded XDEL it from the DLQ; any failure leaves the DLQ entry in place. If the
    connection fails, the rest is not attempted (`aborted` says why). `on_entry` is called after
    each entry tried (progress).
    """
    key = keys.dlq_stream(group)
    result = ReplayResult(group=group)
    wanted = _dlq_ids(r, key) if ids == ALL else iter([check_id(i) for i in ids])
    for dlq_id in _counted(wanted, on_entry):
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


def _counted(ids: Iterator[str], on_entry: Callable[[], None] | None) -> Iterator[str]:
    """`ids`, calling `on_entry` once each has been dealt with (when the next is asked for)."""
    for dlq_id in ids:
        yield dlq_id
        if on_entry is not None:
            on_entry()


def dlq_purge(r: Client, group: str, up_to: str | None = None,
              on_page: Callable[[int], None] | None = None) -> int:
    """Delete the group's DLQ entries up to `up_to` (default: the last one now); how many went.

    XTRIM MINID (Redis 6.2+) rather than DEL: entries dead-lettered after the operator looked (and
    confirmed) are kept. A page of PAGE entries at a time, so that a large DLQ never holds Redis
    up for long; `on_page(n)` is told each page's count (progress).
    """
    key = keys.dlq_stream(group)
    if up_to is None:
        newest: Any = r.xrevrange(key, max="+", min="-", count=1)
        if not newest:
            return 0
        up_to = text(newest[0][0])
    check_id(up_to)
    removed = 0
    while True:
        page: Any = r.xrange(key, min="-", max=up_to, count=PAGE)
        if not page:
            return removed
        ms, seq = parse_id(text(page[-1][0]))
        trimmed = int(cast(Any, r.xtrim(key, minid=f"{ms}-{seq + 1}", approximate=False)))
        removed += trimmed
        if on_page is not None:
            on_page(trimmed)
        if len(page) < PAGE:
            return removed


def dlq_summary(r: Client) -> dict[str, int]:
    """{group: DLQ length} for every DLQ stream."""
    result = {}
    for key in dlq_streams(r):
        with contextlib.suppress(redis.ResponseError):
            length: Any = r.xlen(key)
            result[key.removesuffix(":dlq")] = int(length)
    return result
