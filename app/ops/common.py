"""What every operator view shares: errors, results as JSON, the connection, small helpers."""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import redis
from redis.cluster import RedisCluster

from core import keys
from core.wire import text

# A synchronous client of a standalone Redis, a sentinel's master, or a cluster: the views use only
# commands all three answer the same way (SCAN on a cluster walks every master).
Client = redis.Redis | RedisCluster

DEFAULT_GROUP = keys.DEFAULT_GROUP
LAG_CAP = 100_000  # counting lag by XRANGE stops here; the result is then reported as capped
PAGE = 1_000  # entries per XRANGE page
ALL: Literal["all"] = "all"
ENTRY_ID = re.compile(r"^\d+(-\d+)?$")


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


class Result:
    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


# --- helpers -------------------------------------------------------------------------------------


def opt(value: Any) -> str | None:
    return None if value is None else text(value)


def parse_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def check_id(entry_id: str) -> str:
    if not ENTRY_ID.match(entry_id):
        raise InvalidId(entry_id)
    return entry_id


def require_stream(r: Client, stream: str) -> None:
    kind: Any = text(r.type(stream))
    if kind == "none":
        raise NoSuchStream(stream)
    if kind != "stream":
        raise NotAStream(stream, kind)


def scan_streams(r: Client, match: str | None = None) -> list[str]:
    names = {text(k) for k in r.scan_iter(match=match, count=1000, _type="stream")}
    return sorted(names)


def fields_text(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {text(k): text(v) for k, v in raw.items()}


@contextlib.contextmanager
def group_of(stream: str, group: str) -> Iterator[None]:
    """Turn Redis' NOGROUP reply into NoSuchGroup for this stream and group."""
    try:
        yield
    except redis.ResponseError as exc:
        if str(exc).startswith("NOGROUP"):
            raise NoSuchGroup(stream, group) from None
        raise
