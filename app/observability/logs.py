"""Structured logging, console plus PostgreSQL (the seed's «Dual logging», principle 5).

A thin layer over stdlib logging. Every record of the "secretmagic" logger may carry, via `extra`:

    category   what it is about: "messenger", "config", "app", ... (the seed's SQL filters on it)
    context    a dict of details: stream, entry_id, event_id, event_type, client_id, duration_ms
    error      the error text, when there is one

`log(level, message, category=..., error=..., **context)` fills them; plain `logger.info(...)`
calls and other libraries' records (FastStream, asyncpg, ...) go through the same handlers: their
category is the logger name's first part ("app" for "secretmagic" itself and the root logger),
their context the non-standard attributes they carry, their error the exception they were logged
with.

Handlers:

* `setup_console(level)`: one readable line per record on stderr,
  `2026-11-26T18:00:00.123Z INFO  messenger  event handled  stream=sales-updates entry_id=1-0 ...`.
* `PostgresSink(dsn, schema)`: rows in `<schema>.logs (timestamp, level, category, message, error,
  context jsonb)`, so that the seed's SQL works verbatim (`level` is lowercase: 'error', 'info').
  `emit()` only appends to a bounded in-memory queue, from any thread; a writer task on the event
  loop sends batches with COPY. PostgreSQL down: records stay queued up to `buffer` (more are
  dropped and counted, reported once per outage), the writer reconnects with capped backoff and
  writes what it kept, in order. The DSN's password never appears in a log line or an error.

`install(handler)` attaches a handler to the "secretmagic" logger and, by default, forwards other
libraries' WARNING+ records to it as well; `uninstall(handler)` undoes that.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import re
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import unquote, urlsplit

import asyncpg

from app.observability.metrics import LOG_DROPS

LOGGER_NAME = "secretmagic"
SINK_LOGGER_NAME = "secretmagic.logsink"  # the sink's own messages: console only, never queued

logger = logging.getLogger(LOGGER_NAME)
_sink_log = logging.getLogger(SINK_LOGGER_NAME)

SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
TABLE = "logs"
COLUMNS = ("timestamp", "level", "category", "message", "error", "context")

# Attributes every LogRecord has; anything else on a record came from `extra`.
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_OWN_ATTRS = frozenset({"category", "context", "error"})


# --- records ------------------------------------------------------------------------------------


def log(
    level: int,
    message: str,
    *,
    category: str = "messenger",
    error: BaseException | str | None = None,
    **context: Any,
) -> None:
    """Log `message` on the "secretmagic" logger with a category, an error text and a context."""
    if not logger.isEnabledFor(level):
        return
    logger.log(
        level,
        message,
        extra={"category": category, "context": context, "error": error_text(error)},
        stacklevel=2,
    )


def error_text(error: BaseException | str | None) -> str | None:
    """`ValueError: boom` for an exception, the string itself for a string."""
    if error is None or isinstance(error, str):
        return error
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def record_category(record: logging.LogRecord) -> str:
    category = getattr(record, "category", None)
    if isinstance(category, str) and category:
        return category
    name = record.name
    if name in (LOGGER_NAME, "root", ""):
        return "app"
    if name.startswith(LOGGER_NAME + "."):
        name = name[len(LOGGER_NAME) + 1 :]
    return name.split(".", 1)[0] or "app"


def record_context(record: logging.LogRecord) -> dict[str, Any]:
    context = getattr(record, "context", None)
    if isinstance(context, Mapping):
        return dict(context)
    if context is not None:
        return {"context": context}
    # A record without our context (FastStream, another library, a bare `extra`): keep its extras.
    extras = {k: v for k, v in record.__dict__.items()
              if k not in _STANDARD_ATTRS and k not in _OWN_ATTRS and not k.startswith("_")}
    if not record.name.startswith(LOGGER_NAME):
        extras["logger"] = record.name
    return extras


def record_error(record: logging.LogRecord, *, full: bool) -> str | None:
    """The record's error text; with `full`, an exception's traceback rather than its last line."""
    error = getattr(record, "error", None)
    if error is not None:
        return error if isinstance(error, str) else error_text(error)
    exc_info = record.exc_info
    if exc_info and exc_info[1] is not None:
        if full:
            return "".join(traceback.format_exception(*exc_info)).rstrip()
        return error_text(exc_info[1])
    context = getattr(record, "context", None)
    if isinstance(context, Mapping) and isinstance(context.get("error"), str):
        return str(context["error"])
    return None


def record_message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # bad %-arguments: keep what there is rather than lose the record
        return f"{record.msg} {record.args!r}"


def _json(value: Any) -> str:
    try:
        text = json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):  # keys that are not strings, circular references
        text = json.dumps(_plain(value), default=str, ensure_ascii=False, separators=(",", ":"))
    if "\\u0000" in text:  # PostgreSQL's jsonb refuses NUL characters
        text = json.dumps(_no_nul(json.loads(text)), ensure_ascii=False, separators=(",", ":"))
    return text


def _plain(value: Any, depth: int = 0) -> Any:
    if depth > 20:
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v, depth + 1) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _no_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\\x00")
    if isinstance(value, dict):
        return {_no_nul(k): _no_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nul(v) for v in value]
    return value


def _level(level: int | str) -> int:
    if isinstance(level, int):
        return level
    value = logging.getLevelName(level.strip().upper())
    if not isinstance(value, int):
        raise ValueError(f"unknown log level {level!r}")
    return value


# --- console ------------------------------------------------------------------------------------


_PLAIN_VALUE = re.compile(r'^[^\s"=]+$')


def _console_value(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, Mapping | list | tuple):
        text = _json(value)
    else:
        text = str(value)
    if _PLAIN_VALUE.match(text):
        return text
    return json.dumps(text, ensure_ascii=False)  # quoted, newlines escaped: one line per record


class ConsoleFormatter(logging.Formatter):
    """`<UTC time> <LEVEL> <category>  <message>  key=value ...  error=...`, one line."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        head = f"{ts}.{int(record.msecs):03d}Z {record.levelname:<5} {record_category(record)}"
        message = record_message(record).replace("\r", "\\r").replace("\n", "\\n")
        parts = [head, message]
        context = record_context(record)
        if context:
            parts.append(" ".join(f"{k}={_console_value(v)}" for k, v in context.items()))
        error = record_error(record, full=False)
        if error is not None and context.get("error") != error:
            parts.append(f"error={_console_value(error)}")
        return "  ".join(parts)


class _LibraryForwarder(logging.Handler):
    """On the root logger: hands other libraries' records (not "secretmagic.*") to `target`."""

    def __init__(self, target: logging.Handler, level: int) -> None:
        super().__init__(level)
        self.target = target

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if name == LOGGER_NAME or name.startswith(LOGGER_NAME + "."):
            return False  # already handled on the "secretmagic" logger
        return bool(super().filter(record))

    def emit(self, record: logging.LogRecord) -> None:
        self.target.handle(record)


_forwarders: dict[int, _LibraryForwarder] = {}
_console: logging.StreamHandler[IO[str]] | None = None
_install_lock = threading.Lock()


def install(handler: logging.Handler, *, libraries: int | str | None = logging.WARNING) -> None:
    """Attach `handler` to the "secretmagic" logger; also forward other libraries' records at
    `libraries` and above to it (None: only "secretmagic"). Idempotent."""
    with _install_lock:
        if handler not in logger.handlers:
            logger.addHandler(handler)
        if logger.level == logging.NOTSET or logger.level > handler.level:
            logger.setLevel(max(handler.level, 1))
        root = logging.getLogger()
        old = _forwarders.pop(id(handler), None)
        if old is not None:
            root.removeHandler(old)
        if libraries is not None:
            forwarder = _LibraryForwarder(handler, _level(libraries))
            _forwarders[id(handler)] = forwarder
            root.addHandler(forwarder)


def uninstall(handler: logging.Handler) -> None:
    """Detach `handler` from the "secretmagic" logger and the root logger."""
    with _install_lock:
        logger.removeHandler(handler)
        forwarder = _forwarders.pop(id(handler), None)
        if forwarder is not None:
            logging.getLogger().removeHandler(forwarder)


def setup_console(
    level: int | str = logging.INFO,
    *,
    stream: IO[str] | None = None,
    libraries: int | str | None = logging.WARNING,
) -> logging.Handler:
    """One readable line per record on `stream` (stderr). Calling it again updates the level and
    stream of the same handler rather than adding another."""
    global _console
    level = _level(level)
    if _console is None:
        _console = logging.StreamHandler(stream or sys.stderr)
        _console.setFormatter(ConsoleFormatter())
    elif stream is not None:
        _console.setStream(stream)
    _console.setLevel(level)
    if logger.level == logging.NOTSET or logger.level > level:
        logger.setLevel(level)
    install(_console, libraries=libraries)
    return _console


# --- PostgreSQL -----------------------------------------------------------------------------------


def validate_schema(schema: str) -> str:
    """A safe schema identifier, lowercased as PostgreSQL folds unquoted names (so that the seed's
    unquoted `secretmagic.logs` and a quoted "secretmagic".logs are the same table)."""
    if not isinstance(schema, str) or not SCHEMA_NAME.match(schema):
        raise ValueError(
            f"invalid log schema name {schema!r}: use 1-63 letters, digits or underscores, "
            "not starting with a digit"
        )
    return schema.lower()


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


_PASSWORD_PARAM = re.compile(r"(?i)(password=)[^&\s]*")


def mask_dsn(dsn: str) -> str:
    """The DSN with its password (in the userinfo or a `password=` parameter) replaced by ***."""
    try:
        parts = urlsplit(dsn)
        password = parts.password
    except ValueError:
        return "<unparsable DSN>"
    masked = dsn
    if password is not None:
        userinfo = parts.netloc.rpartition("@")[0]
        user = userinfo.split(":", 1)[0]
        masked = masked.replace(f"{userinfo}@", f"{user}:***@", 1)
    return _PASSWORD_PARAM.sub(r"\1***", masked)


class _Redactor:
    """Removes a DSN's secrets from any text (error messages of drivers included)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.masked = mask_dsn(dsn)
        secrets: set[str] = set()
        with contextlib.suppress(ValueError):
            if (password := urlsplit(dsn).password) is not None:
                secrets |= {password, unquote(password)}
        secrets |= {m.group(0)[len("password="):] for m in _PASSWORD_PARAM.finditer(dsn)}
        secrets |= {unquote(s) for s in secrets}
        self.secrets = sorted((s for s in secrets if len(s) >= 3), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        text = text.replace(self.dsn, self.masked)
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def _not_own(record: logging.LogRecord) -> bool:
    return record.name != SINK_LOGGER_NAME


Row = tuple[datetime, str, str, str, str | None, str]

# SQLSTATE classes that mean "the connection or the server is gone", not "this data is bad".
_OUTAGE_CLASSES = ("08", "53", "57", "58")


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
        super().__init__(_level(level))
        self.schema = validate_schema(schema)
        self._redact = _Redactor(dsn)
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
        self._queue: collections.deque[Row] = collections.deque()
        self._batch: list[Row] = []
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
        return f"{_quote(self.schema)}.{_quote(TABLE)}"

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
            row: Row = (
                datetime.fromtimestamp(record.created, UTC),
                record.levelname.lower(),
                record_category(record),
                record_message(record),
                record_error(record, full=True),
                _json(record_context(record)),
            )
            with self._count_lock:
                if self._held >= self.buffer:
                    full = True
                else:
                    full = False
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
            except Exception:
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
            _sink_log.warning(
                "log sink: %d record(s) not written to PostgreSQL %s at stop (%s)",
                left, self.target, self.last_error or "timeout",
                extra={"category": "logs", "context": {"unwritten": left}},
            )
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
                self.last_error = self._describe(exc)
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
            await self._ensure_table(conn)
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
            _sink_log.info(
                "log sink: PostgreSQL %s reachable again after %.1f s; writing %d kept record(s)",
                self.target, time.monotonic() - self._down_since, self._held,
                extra={"category": "logs", "context": {"kept": self._held}},
            )
            self._down_since = None
        return True

    async def _ensure_table(self, conn: asyncpg.Connection) -> None:
        if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", self.table):
            return
        ddl = (
            f"CREATE SCHEMA IF NOT EXISTS {_quote(self.schema)};"
            f"CREATE TABLE IF NOT EXISTS {self.table} ("
            " timestamp timestamptz NOT NULL,"
            " level text NOT NULL,"
            " category text NOT NULL,"
            " message text NOT NULL,"
            " error text,"
            " context jsonb);"
            f"CREATE INDEX IF NOT EXISTS logs_category_timestamp_idx ON {self.table}"
            " (category, timestamp);"
        )
        for attempt in range(3):  # concurrent creators race on the catalog's unique indexes
            try:
                async with conn.transaction():
                    await conn.execute(ddl, timeout=self.write_timeout)
                return
            except (asyncpg.UniqueViolationError, asyncpg.DuplicateObjectError,
                    asyncpg.DuplicateTableError, asyncpg.DuplicateSchemaError):
                if attempt == 2:
                    raise

    async def _write(self) -> None:
        assert self._conn is not None
        try:
            await self._copy(self._batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._is_outage(exc):
                await self._lost(exc)
                return
            await self._salvage(exc)
            return
        self._done(len(self._batch))

    async def _copy(self, rows: list[Row]) -> None:
        assert self._conn is not None
        await self._conn.copy_records_to_table(
            TABLE, schema_name=self.schema, records=rows, columns=COLUMNS,
            timeout=self.write_timeout,
        )

    def _is_outage(self, exc: BaseException) -> bool:
        if self._conn is None or self._conn.is_closed():
            return True
        if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError):
            return True
        if isinstance(exc, asyncpg.PostgresError):
            return str(getattr(exc, "sqlstate", "") or "").startswith(_OUTAGE_CLASSES)
        return False

    async def _salvage(self, first: BaseException) -> None:
        """The batch was refused for its content (or the table vanished): recreate the table,
        retry sanitised, then row by row; rows refused even so are dropped and reported."""
        assert self._conn is not None
        batch = self._batch
        try:
            if isinstance(first, asyncpg.UndefinedTableError | asyncpg.InvalidSchemaNameError):
                await self._ensure_table(self._conn)
                with contextlib.suppress(asyncpg.DataError, UnicodeError, TypeError, ValueError):
                    await self._copy(batch)
                    self._done(len(batch))
                    return
            clean = [_sanitise(row) for row in batch]
            with contextlib.suppress(asyncpg.DataError, UnicodeError, TypeError, ValueError):
                await self._copy(clean)
                self._done(len(batch))
                return
            refused: BaseException = first
            written = 0
            for row in clean:
                try:
                    await self._copy([row])
                    written += 1
                except (asyncpg.DataError, UnicodeError, TypeError, ValueError) as exc:
                    refused = exc
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._is_outage(exc):
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
            _sink_log.warning("log sink: PostgreSQL refused %d record(s): %s", lost,
                              self._describe(refused),
                              extra={"category": "logs", "context": {"refused": lost}})

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
        _sink_log.warning(
            "log sink: %d record(s) dropped: the buffer of %d was full (PostgreSQL %s "
            "unavailable or slower than the log rate); %d dropped in all",
            n, self.buffer, self.target, self.dropped,
            extra={"category": "logs", "context": {"dropped": n, "buffer": self.buffer}},
        )

    def _went_down(self, exc: BaseException) -> None:
        self.connected = False
        self.last_error = self._describe(exc)
        if self._down_since is None:
            self._down_since = time.monotonic()
            _sink_log.warning(
                "log sink: PostgreSQL %s unavailable (%s); keeping up to %d records, retrying",
                self.target, self.last_error, self.buffer,
                extra={"category": "logs", "context": {"kept": self._held}},
            )

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
        return self._redact(error_text(exc) or type(exc).__name__)


def _sanitise(row: Row) -> Row:
    ts, level, category, message, error, context = row

    def clean(text: str) -> str:
        return text.replace("\x00", "\\x00").encode("utf-8", "replace").decode("utf-8")

    if "\\u0000" in context:
        context = json.dumps(_no_nul(json.loads(context)), ensure_ascii=False)
    return (ts, clean(level), clean(category), clean(message),
            None if error is None else clean(error), clean(context))
