"""The durable local outbox: a SQLite file (WAL) of stream entries waiting for Redis, so no event
secretmagic publishes is lost while Redis is unreachable (SPEC §3 «Fail-safe»).

Guarantee: an event `app.publishing.drainer.publish()` returned for is in Redis or in the outbox
file. It is never lost: not by an outage, not by a crash of this process (the outbox is reopened
and drained by the next start on the same path). The one caveat is a possible duplicate, never a
loss: a crash, a cancellation or a dropped connection between the XADD and the deletion of the
outbox row (or a connection that drops after Redis appended a direct XADD but before its reply
arrived) sends the event again. The copy carries the same `event_id` and `timestamp` (they are
stream fields, stored with the event), so consumers drop it with their `event_id` dedup (SPEC §3).

What counts as "Redis cannot take it now" (`outage_reason`): unreachable, timed out, loading, and
the replies that refuse writes for a while: out of memory (`maxmemory` reached under
`noeviction`), a read-only replica, a cluster slot not served. redis-py strips the reply's code
from the message (`OOM command not allowed…` arrives as OutOfMemoryError("command not
allowed…")), so they are told apart by class.

Not an outage: a wrong password (`AuthenticationError`, which redis-py derives from
`ConnectionError`) or missing permissions. They are configuration errors and are raised, never
absorbed into the outbox.

Bounds: at most `max_entries` events; beyond that `put` raises `OutboxFull`. A disk that cannot
take the row (full, read-only, failing) raises `OutboxUnavailable` naming the path and the space
left. Both are core.errors.Unavailable: the input event that produced it is not acked; its stream
pauses and retries it, uncounted, until the event can be sent or stored: nothing is acked whose
output is neither in Redis nor on disk, and nothing is dead-lettered for it.

Sent rows whose deletion the disk refuses (it is full) are remembered in memory and skipped, not
sent again; they are deleted once the disk takes writes again (a restart before that sends them
again: the duplicate of the caveat above).

One process owns an outbox file at a time (an exclusive lock beside it): give each instance on a
host its own path. The object is used from one event-loop thread (only `depth()` and
`oldest_age()`, answered from memory, may be called from another, such as a metrics scrape);
SQLite calls are synchronous (a WAL commit without fsync takes microseconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import redis.asyncio as aioredis
from redis import exceptions as rexc

from core import logs
from core.errors import Unavailable

log = logs.get("messenger")

Route = Literal["direct", "outbox"]

# Replies that mean "Redis cannot take writes right now", not "this command is wrong": worth
# keeping the event and trying later. redis-py's class, the reply's code (for a reply it does not
# type), the reason (secretmagic_outbox_queued_total's label) and what it means (for the log).
_REFUSALS: tuple[tuple[type[Exception], str, str, str], ...] = (
    (rexc.OutOfMemoryError, "OOM", "out_of_memory",
     "Redis is out of memory (maxmemory reached, writes refused)"),
    (rexc.ReadOnlyError, "READONLY", "read_only", "Redis is a read-only replica"),
    (rexc.MasterDownError, "MASTERDOWN", "master_down", "the Redis replica lost its master"),
    (rexc.ClusterDownError, "CLUSTERDOWN", "cluster_down", "the Redis Cluster is down"),
    (rexc.TryAgainError, "TRYAGAIN", "try_again", "a Redis Cluster slot is being moved"),
)
MEANING = {reason: meaning for _, _, reason, meaning in _REFUSALS} | {
    "unreachable": "Redis unreachable", "loading": "Redis is loading its data"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    stream  TEXT    NOT NULL,
    fields  TEXT    NOT NULL,
    maxlen  INTEGER NULL,
    created REAL    NOT NULL
)
"""


class OutboxFull(Unavailable):
    """The outbox holds `max_entries` events; the new one was not stored (nothing else lost)."""


class OutboxUnavailable(Unavailable):
    """The outbox's disk refused the new row (full, read-only, failing); it was not stored."""


class OutboxLocked(RuntimeError):
    """Another process has this outbox file open."""


def outage_reason(exc: BaseException) -> str | None:
    """Why Redis cannot take `exc`'s command for now (a MEANING key), or None: not an outage.

    Authentication and authorization errors are not outages: retrying or queueing cannot fix a
    wrong password, so they must reach the operator.
    """
    if isinstance(exc, rexc.AuthenticationError | rexc.AuthorizationError):
        return None
    if isinstance(exc, rexc.BusyLoadingError) or (
            isinstance(exc, rexc.ResponseError) and str(exc).lstrip().startswith("LOADING")):
        return "loading"
    for kind, code, reason, _ in _REFUSALS:
        if isinstance(exc, kind) or (isinstance(exc, rexc.ResponseError)
                                     and str(exc).lstrip().upper().startswith(code)):
            return reason
    if isinstance(exc, rexc.ConnectionError | rexc.TimeoutError):
        return "unreachable"
    # What redis-py should have wrapped, should it ever leak through.
    return "unreachable" if isinstance(exc, ConnectionError | TimeoutError) else None


def is_outage(exc: BaseException) -> bool:
    """True if `exc` means Redis is unreachable or cannot take writes for now."""
    return outage_reason(exc) is not None


class Outbox:
    """A durable FIFO of stream entries waiting for Redis (SQLite, WAL)."""

    def __init__(self, path: Path | str, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.path = Path(path)
        self.max_entries = max_entries
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock(self.path)
        self._sent: set[int] = set()  # sent, but the disk refused to delete their rows (yet)
        self._undeletable = False  # the disk refuses deletes (reported once until it takes one)
        self._refusing = False  # the disk refuses new rows (reported once until it takes one)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)  # autocommit; explicit txns
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit is in the WAL file before put() returns, so it survives
            # a crash of this process (SIGKILL, OOM kill). FULL would also fsync the WAL on every
            # commit, which adds survival of a power loss or OS crash at the cost of one fsync per
            # event.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute(_SCHEMA)
            rows = self._db.execute("SELECT stream, COUNT(*) FROM outbox GROUP BY stream")
            self._counts: dict[str, int] = {stream: int(n) for stream, n in rows}
            self._oldest_created: float | None = None
            self._load_oldest()
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._depth = sum(self._counts.values())
        self._drain_lock = asyncio.Lock()
        self._reported: set[int] = set()  # seqs whose permanent XADD error was logged once
        self.on_put: Callable[[], None] | None = None  # set by OutboxDrainer to wake it
        self.last_error: str | None = None  # why the latest event was queued
        self.last_reason: str | None = None  # its MEANING key

    # --- reading ---------------------------------------------------------------------------

    def has(self, stream: str) -> bool:
        """Does anything wait for `stream`? O(1), from the in-memory count."""
        return self._counts.get(stream, 0) > 0

    def depth(self) -> int:
        return self._depth

    def streams(self) -> list[str]:
        return sorted(stream for stream, n in self._counts.items() if n > 0)

    def oldest_age(self) -> float | None:
        """Seconds the oldest queued entry has waited, None if empty.

        From memory, like depth(), so a metrics scrape on another thread may call both.
        """
        oldest = self._oldest_created
        return None if oldest is None else max(0.0, time.time() - oldest)

    def _load_oldest(self) -> None:
        rows = self._db.execute("SELECT seq, created FROM outbox ORDER BY seq LIMIT ?",
                                (len(self._sent) + 1,)).fetchall()
        waiting = [created for seq, created in rows if seq not in self._sent]
        self._oldest_created = float(waiting[0]) if waiting else None

    def space(self) -> str:
        """What the outbox's filesystem has left, for error messages."""
        try:
            usage = shutil.disk_usage(self.path.parent)
        except OSError as exc:
            return f"free space unknown: {exc}"
        return f"{_size(usage.free)} free of {_size(usage.total)} on {self.path.parent}"

    # --- writing ---------------------------------------------------------------------------

    def put(self, stream: str, fields: dict[str, str], maxlen: int | None) -> None:
        """Queue an entry durably (committed when this returns); OutboxFull at the limit."""
        if self._depth >= self.max_entries:
            age = self.oldest_age()
            raise OutboxFull(
                f"outbox full: {self._depth} events wait in {self.path} "
                f"(OUTBOX_MAX_ENTRIES={self.max_entries}), the oldest for "
                f"{age or 0:.0f}s, because Redis is unreachable; this event was not stored and "
                "will be retried. Bring Redis back so the outbox drains, or raise "
                "OUTBOX_MAX_ENTRIES (disk permitting)."
            )
        now = time.time()
        try:
            self._db.execute(
                "INSERT INTO outbox (stream, fields, maxlen, created) VALUES (?, ?, ?, ?)",
                (stream, json.dumps(fields, ensure_ascii=False, separators=(",", ":")), maxlen,
                 now),
            )
        except sqlite3.OperationalError as exc:  # SQLITE_FULL, SQLITE_IOERR, SQLITE_READONLY
            full = getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
            error = OutboxUnavailable(
                f"outbox {self.path} cannot store the event: "
                f"{'the disk is full' if full else exc} ({self.space()}); Redis does not take "
                f"it either ({self.last_error or 'events for this stream wait in the outbox'}). "
                "It is retried, not acked, until there is room or Redis takes it")
            if not self._refusing:  # once per episode, whether or not Redis can record more
                self._refusing = True
                log.error("%s", error, outbox=str(self.path), stream=stream)
            raise error from None
        if self._refusing:
            self._refusing = False
            log.warning("outbox %s stores events again (%s)", self.path, self.space(),
                        outbox=str(self.path))
        if self._oldest_created is None:
            self._oldest_created = now
        self._counts[stream] = self._counts.get(stream, 0) + 1
        self._depth += 1
        if self.on_put is not None:
            self.on_put()

    async def drain(self, client: aioredis.Redis, batch: int = 500) -> int:
        """Send what is queued, in seq order (so in order per stream); return how many were sent.

        Each batch is one pipeline of XADDs (with `MAXLEN ~ maxlen` where set); its rows are
        deleted once Redis has appended them. Stops at the first outage and leaves the rest.
        A stream whose XADD fails for good (say its key holds a non-stream) keeps its entries,
        logged once, and is skipped in this pass so other streams still drain. An
        AuthenticationError is raised.
        """
        async with self._drain_lock:
            self.tidy()
            sent = 0
            skipped: set[str] = set()
            while self._depth:
                rows = self._next_batch(batch, skipped)
                if not rows:
                    break
                try:
                    async with client.pipeline(transaction=False) as pipe:
                        for _seq, stream, fields, maxlen in rows:
                            pipe.xadd(stream, json.loads(fields), maxlen=maxlen,
                                      approximate=maxlen is not None)
                        results = await pipe.execute(raise_on_error=False)
                except Exception as exc:
                    if is_outage(exc):
                        self.note(exc)
                        return sent
                    raise
                done: list[tuple[int, str]] = []
                outage = False
                for (seq, stream, _fields, _maxlen), result in zip(rows, results, strict=True):
                    if not isinstance(result, Exception):
                        done.append((seq, stream))
                    elif is_outage(result):
                        outage = True
                        skipped.add(stream)
                        self.note(result)
                    else:
                        skipped.add(stream)  # later entries of it wait too: order per stream
                        if seq not in self._reported:
                            self._reported.add(seq)
                            log.error(
                                "outbox entry cannot be sent to %s: %s (it stays queued, with "
                                "the stream's later entries, until the key is fixed)",
                                stream, result, stream=stream, seq=seq, error=str(result),
                                outbox=str(self.path))
                self._forget(done)
                self._delete_sent()
                sent += len(done)
                if outage:
                    break
            return sent

    def _next_batch(self, batch: int, skipped: set[str]) -> list[tuple[int, str, str, int | None]]:
        marks = ",".join("?" * len(skipped))
        where = f"WHERE stream NOT IN ({marks}) " if skipped else ""
        rows = self._db.execute(
            f"SELECT seq, stream, fields, maxlen FROM outbox {where}ORDER BY seq LIMIT ?",
            (*sorted(skipped), batch + len(self._sent))).fetchall()
        return [row for row in rows if row[0] not in self._sent][:batch]

    def note(self, exc: BaseException) -> None:
        """Remember why Redis did not take an event (for the drainer's log and the metric)."""
        self.last_error, self.last_reason = describe(exc), outage_reason(exc)

    def _forget(self, done: list[tuple[int, str]]) -> None:
        """Sent: no longer waiting (in memory at once; their rows are deleted by _delete_sent)."""
        for seq, stream in done:
            self._sent.add(seq)
            left = self._counts[stream] - 1
            if left:
                self._counts[stream] = left
            else:
                del self._counts[stream]
        self._depth -= len(done)
        self._reported.difference_update(seq for seq, _ in done)

    def tidy(self) -> None:
        """Delete the rows of events already sent, if the disk refused it before."""
        if self._sent:
            self._delete_sent()

    def _delete_sent(self) -> None:
        """Delete the rows sent so far; a disk that refuses keeps them (skipped) for later."""
        if not self._sent:
            self._load_oldest()
            return
        doomed = sorted(self._sent)
        try:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(q,) for q in doomed])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            if not self._undeletable:
                log.warning("outbox %s: sent events cannot be deleted (%s; %s); they are not "
                            "sent again, and deleted once the disk takes writes (a restart "
                            "before that sends them again, same event_id)", self.path, exc,
                            self.space(), outbox=str(self.path), undeleted=len(doomed))
            self._undeletable = True
        else:
            self._sent.difference_update(doomed)
            self._undeletable = False
        self._load_oldest()

    def close(self) -> None:
        """Close the database and release the file lock (queued entries stay on disk)."""
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Outbox({str(self.path)!r}, depth={self._depth}, max_entries={self.max_entries})"


def _lock(path: Path) -> int:
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise OutboxLocked(
            f"outbox {path} is in use by another process (lock {lock_path}): give each instance "
            "on this host its own OUTBOX_PATH"
        ) from None
    return fd


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"
