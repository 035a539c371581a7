"""The PostgreSQL side of the seed's «Dual logging»: a logging handler that never blocks.

`emit()` only turns the record into a row (app.observability.pgtable) and appends it to a bounded
in-memory queue, from any thread; a writer task on the event loop sends batches with COPY.
PostgreSQL down: rows stay queued up to `buffer` (more are dropped and counted, on the sink and in
secretmagic_log_records_dropped_total, and reported once per outage); the writer reconnects with
capped backoff and writes what it kept, in order. A batch refused for its content is retried
sanitised, then row by row, so one bad record costs only itself. The DSN's password never appears
in a log line or an error.

The sink's own messages (category "logs") go to the console only: a report of the table's outage
must not wait in the buffer it reports on.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from app.observability import pgtable, records
from app.observability.console import uninstall
from app.observability.metrics import LOG_DROPS
from core import logs
from core.redact import Redactor

CATEGORY = "logs"
log = logs.get(CATEGORY)


def _not_own(record: logging.LogRecord) -> bool:
    return getattr(record, "category", None) != CATEGORY


class PostgresSink(logging.Handler):
    """A logging handler writing rows to `<schema>.logs` from a writer task, never blocking emit().

    Counters: `written` (rows committed), `dropped` (records lost: buffer full, unwritable even
    when sanitised, or still queued at stop), `connected`, `last_error` (masked).
    """

    def __init__(
        self,
        dsn: str,
        schema: str = "secretmagic",
        level: int | str = logging.INFO,
        buffer: int = 10_000,
        batch: int = 500,
        flush_interval: float = 0.5,
        *,
        backoff: tuple[float, float] = (0.2, 5.0),
        connect_timeout: float = 5.0,
        write_timeout: float = 30.0,
    ) -> None:
        super().__init__(records.level_number(level))
        self.schema = pgtable.validate_schema(schema)
        self._redact = Redactor(dsn)
        try:
            parts = urlsplit(dsn)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError as exc:
            raise ValueError(f"invalid PostgreSQL DSN for the log sink: {self._redact(str(exc))}")\
                from None
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError("invalid PostgreSQL DSN for the log sink: expected postgresql://...")
        if buffer < 1 or batch < 1 or flush_interval <= 0:
            raise ValueError("buffer and batch must be >= 1 and flush_interval > 0")
        self.__dsn = dsn
        self.target = self._redact.masked
        self.buffer = buffer
        self.batch = batch
        self.flush_interval = flush_interval
        self.backoff = backoff
        self.connect_timeout = connect_timeout
        self.write_timeout = write_timeout
        self.addFilter(_not_own)

        self.written = 0
        self.dropped = 0
        self.connected = False
        self.last_error: str | None = None

        self._count_lock = threading.Lock()  # _held, dropped, written: emitters vs the writer
        self._queue: collections.deque[pgtable.Row] = collections.deque()
        self._batch: list[pgtable.Row] = []
        self._held = 0  # queued + in the batch being written: what the `buffer` bound applies to
        self._unreported = 0  # drops not yet reported on the console
        self._last_report = 0.0
        self._counter: Any = LOG_DROPS
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._wake: asyncio.Event | None = None
        self._stop_requested: asyncio.Event | None = None
        self._stopping = False
        self._closed = False
        self._delay = backoff[0]
        self._down_since: float | None = None

    def __repr__(self) -> str:
        return (f"<PostgresSink {self.target} schema={self.schema} "
                f"({logging.getLevelName(self.level)})>")

    @property
    def table(self) -> str:
        return pgtable.qualified(self.schema)

    @property
    def queued(self) -> int:
        """Records kept but not written yet."""
        return self._held

    # -- emit: any thread, never blocks on I/O, never raises ---------------------------------------

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self._closed:
                return
            if self._held >= self.buffer:  # fast path while full; checked again under the lock
                self._drop(1)
                return
            row = pgtable.row(record)
            with self._count_lock:
                full = self._held >= self.buffer
                if not full:
                    self._queue.append(row)
                    self._held += 1
            if full:
                self._drop(1)
            elif len(self._queue) == self.batch:
                self._notify()
        except Exception:
            with contextlib.suppress(Exception):
                self._drop(1)

    def _drop(self, n: int, *, reported: bool = False) -> None:
        with self._count_lock:
            self.dropped += n
            if not reported:
                self._unreported += n
        if self._counter is not None:
            try:
                self._counter.inc(n)
            except Exception:  # a broken registry must not break logging
                self._counter = None

    def _notify(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return
        if threading.get_ident() == self._loop_thread:
            wake.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed
                loop.call_soon_threadsafe(wake.set)

    def close(self) -> None:
        self._closed = True
        super().close()

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and create the schema and table if missing; start the writer. PostgreSQL
        unreachable is not an error: records are kept and the writer keeps trying."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wake = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._closed = self._stopping = False
        await self._connect()
        self._task = asyncio.create_task(self._run(), name="secretmagic-log-sink")

    async def stop(self, timeout: float = 5.0) -> None:
        """Write what can be written within `timeout` seconds, then close. What is left unwritten
        is counted in `dropped` and reported."""
        uninstall(self)
        task = self._task
        if task is not None and self._wake and self._stop_requested:
            self._stopping = True
            self._stop_requested.set()
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            except Exception as exc:  # the writer never raises; belt and braces
                self.last_error = self._describe(exc)
        self._task = None
        await self._close_connection()
        self._closed = True
        left = self._held
        if left:
            self._queue.clear()
            self._batch = []
            self._held = 0
            self._drop(left, reported=True)
            log.warning("log sink: %d record(s) not written to PostgreSQL %s at stop", left,
                        self.target, error=self.last_error or "timeout", unwritten=left)
        self._report_drops(force=True)
        self.close()

    # -- the writer -------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                if self._conn is None:
                    if self._stopping and not self._held:
                        return
                    if not await self._connect():
                        await self._backoff_sleep()
                        continue
                if not self._batch:
                    self._take()
                if not self._batch:
                    if self._stopping:
                        return
                    await self._sleep(self.flush_interval)
                    continue
                await self._write()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug of ours must not end the writer
                await self._lost(exc)
                await self._backoff_sleep()

    def _take(self) -> None:
        queue, n = self._queue, min(self.batch, len(self._queue))
        self._batch = [queue.popleft() for _ in range(n)]

    async def _sleep(self, seconds: float) -> None:
        assert self._wake is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _backoff_sleep(self) -> None:
        assert self._stop_requested is not None
        delay = self._delay
        self._delay = min(self._delay * 2, self.backoff[1])
        if self._stopping:  # stop() is waiting: retry soon, but do not spin
            await asyncio.sleep(self.backoff[0])
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_requested.wait(), delay)

    async def _connect(self) -> bool:
        try:
            conn = await asyncpg.connect(
                self.__dsn, timeout=self.connect_timeout,
                server_settings={"application_name": "secretmagic-logs"},
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._went_down(exc)
            return False
        try:
            await pgtable.ensure(conn, self.schema, self.write_timeout)
        except asyncio.CancelledError:
            conn.terminate()
            raise
        except Exception as exc:
            conn.terminate()
            self._went_down(exc)
            return False
        self._conn = conn
        self.connected = True
        self._delay = self.backoff[0]
        if self._down_since is not None:
            log.info("log sink: PostgreSQL %s reachable again after %.1f s; writing %d kept "
                     "record(s)", self.target, time.monotonic() - self._down_since, self._held,
                     kept=self._held)
            self._down_since = None
        return True

    async def _write(self) -> None:
        assert self._conn is not None
        try:
            await self._copy(self._batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if pgtable.is_outage(self._conn, exc):
                await self._lost(exc)
            else:
                await self._salvage(exc)
            return
        self._done(len(self._batch))

    async def _copy(self, rows: list[pgtable.Row]) -> None:
        assert self._conn is not None
        await pgtable.copy(self._conn, self.schema, rows, self.write_timeout)

    async def _salvage(self, first: BaseException) -> None:
        """The batch was refused for its content (or the table vanished): recreate the table,
        retry sanitised, then row by row; rows refused even so are dropped and reported."""
        assert self._conn is not None
        batch = self._batch
        try:
            if isinstance(first, pgtable.MISSING):
                await pgtable.ensure(self._conn, self.schema, self.write_timeout)
                with contextlib.suppress(*pgtable.REFUSED):
                    await self._copy(batch)
                    self._done(len(batch))
                    return
            clean = [pgtable.sanitised(row) for row in batch]
            with contextlib.suppress(*pgtable.REFUSED):
                await self._copy(clean)
                self._done(len(batch))
                return
            refused: BaseException = first
            written = 0
            for row in clean:
                try:
                    await self._copy([row])
                    written += 1
                except pgtable.REFUSED as exc:
                    refused = exc
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if pgtable.is_outage(self._conn, exc):
                await self._lost(exc)
                return
            raise
        lost = len(batch) - written
        with self._count_lock:
            self._held -= len(batch)
            self.written += written
        self._batch = []
        if lost:
            self._drop(lost, reported=True)
            log.warning("log sink: PostgreSQL refused %d record(s)", lost,
                        error=self._describe(refused), refused=lost)

    def _done(self, n: int) -> None:
        with self._count_lock:
            self._held -= n
            self.written += n
        self._batch = []
        self._delay = self.backoff[0]
        self._report_drops()

    def _report_drops(self, *, force: bool = False) -> None:
        """One warning per outage (or per 10 s of a writer too slow for the log rate)."""
        if not self._unreported or (not force and time.monotonic() - self._last_report < 10):
            return
        with self._count_lock:
            n, self._unreported = self._unreported, 0
        self._last_report = time.monotonic()
        log.warning("log sink: %d record(s) dropped: the buffer of %d was full (PostgreSQL %s "
                    "unavailable or slower than the log rate); %d dropped in all",
                    n, self.buffer, self.target, self.dropped, dropped=n, buffer=self.buffer)

    def _went_down(self, exc: BaseException) -> None:
        self.connected = False
        self.last_error = self._describe(exc)
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("log sink: PostgreSQL %s unavailable; keeping up to %d records, "
                        "retrying", self.target, self.buffer, error=self.last_error,
                        kept=self._held)

    async def _lost(self, exc: BaseException) -> None:
        await self._close_connection()
        self._went_down(exc)

    async def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        self.connected = False
        if conn is None or conn.is_closed():
            return
        try:
            await asyncio.wait_for(conn.close(), 1.0)
        except BaseException:
            conn.terminate()

    def _describe(self, exc: BaseException) -> str:
        return self._redact(logs.error_text(exc) or type(exc).__name__)
