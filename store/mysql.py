"""The store over the MySQL protocol (pymysql): MariaDB/MySQL for tests, StarRocks in production.

- Connections: a small pool (DSN option `pool_size`, 4 by default) of autocommit connections,
  created on demand; every blocking call runs on a worker thread. A connection that fails is
  dropped; an operation that failed on a *reused* connection because it had gone away (server
  restart, idle timeout, KILL) is retried once on a fresh one, which `read` and `replace` allow
  because both are idempotent.
- Reads: one `SELECT ... WHERE client_id = %s`, streamed with an unbuffered cursor and turned into
  polars per chunk. pymysql is given no decoders, so every value arrives as text and polars parses
  whole columns (much faster than pymysql's per-value converters).
- Writes: multi-row `INSERT ... VALUES (...),(...)` batches (`batch_rows`, 5000 by default, and at
  most `batch_bytes`, 4 MiB, per statement). The literals are built by polars for whole columns with
  pymysql's escaping rules (its `escape_string` table, or doubled quotes when the server runs with
  NO_BACKSLASH_ESCAPES). pymysql's `executemany` escapes value by value in Python and is about 2x
  slower (see bench/bench_store.py). No `ON DUPLICATE KEY UPDATE`/`REPLACE INTO`/`LOAD DATA`:
  StarRocks accepts none of them.
- replace = `DELETE ... WHERE client_id = %s` + the INSERT batches.
  * mysql:// (MariaDB/MySQL, InnoDB): one transaction; readers see the old rows or the new ones.
  * starrocks:// : StarRocks runs each DELETE and INSERT statement as its own load transaction and
    has no multi-statement transaction covering a DELETE, so the replace is NOT atomic there: a
    reader racing it may see the client's rows missing or partly written. It is still idempotent
    and convergent: a retry deletes and writes everything again, and an INSERT into a PRIMARY KEY
    table upserts, so a redelivered event leaves exactly the frame. Downstream consumers read after
    the `*_updated` event, i.e. after the replace has finished. (Bulk loads far beyond ~1e5 rows per
    replace would be better served by StarRocks Stream Load over HTTP; not implemented.)
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import polars as pl
import pymysql
import pymysql.converters
import pymysql.cursors
from pymysql.constants import SERVER_STATUS

from core.errors import FatalError, RetryableError, Unavailable
from core.redact import scrub
from store import (
    StoreDSN,
    TableSpec,
    cast_read,
    check_client_id,
    conform,
    load_ddl,
    table_spec,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

# Encoders only: without decoders pymysql hands every value over as text; polars parses columns.
_CONV: dict[int | type[Any], Any] = {
    k: v for k, v in pymysql.converters.conversions.items() if not isinstance(k, int)
}

# MariaDB/MySQL sessions (StarRocks has its own rules and keeps its defaults):
# - strict mode: an over-long id or a bad value is an error, never a silent truncation;
# - READ COMMITTED: `DELETE ... WHERE client_id = ?` then takes no gap locks, so replaces of
#   different clients running at once do not deadlock each other (they do under REPEATABLE READ).
_SESSION_SETUP = (
    "SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@sql_mode, ''), 'STRICT_ALL_TABLES')",
    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
)
# A replace transaction that lost a race is run again at once (it is idempotent): a deadlock, or a
# duplicate key, which after our own DELETE can only come from a concurrent replace of the client.
_RACE_ERRNOS = frozenset({1213, 1062})
_RACE_ATTEMPTS = 4

# pymysql's escape table (converters._escape_table), applied by polars to whole columns.
_ESCAPE_FROM = ["\\", "\x00", "\n", "\r", "\x1a", '"', "'"]
_ESCAPE_TO = ["\\\\", "\\0", "\\n", "\\r", "\\Z", '\\"', "\\'"]

# "The server or the network is (temporarily) not there": retry, on a new connection.
_CONNECTION_ERRNOS = frozenset(
    {
        0,  # pymysql: connection already closed
        1040,  # too many connections
        1053,  # server shutdown in progress
        1077, 1078, 1079, 1080,  # normal/got signal/shutdown complete/forcing close
        1152, 1153, 1154, 1155, 1156, 1157, 1158, 1159, 1160, 1161,  # aborted/network read/write
        1927,  # MariaDB: connection was killed
        2002, 2003, 2006, 2013, 2014, 2045, 2048, 2055,  # client: can't connect / gone away / lost
    }
)
# Other transient server conditions: retry later (not necessarily on a new connection).
_TRANSIENT_ERRNOS = frozenset({1205, 1213, 1317, 1969, 3024, 1615, 1637, 1041, 1203})
# Requests that can never succeed as written: the schema or the data is wrong, or access is denied.
_FATAL_ERRNOS = frozenset(
    {
        1044, 1045, 1049, 1698,  # access denied, unknown database
        1054, 1146, 1064, 1051, 1142, 1143,  # unknown column/table, syntax, command denied
        1048, 1062, 1264, 1265, 1292, 1366, 1406, 1690,  # null/duplicate/out of range/bad value
    }
)
# StarRocks reports many errors, transient ones included, as 1064; these words mark the transient.
_STARROCKS_TRANSIENT_WORDS = (
    "timeout", "timed out", "too many", "busy", "unavailable", "not alive", "no alive", "retry",
    "try again", "memory",
)


def _errno(exc: BaseException) -> int | None:
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def _is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, pymysql.err.InterfaceError | OSError | socket.timeout | EOFError):
        return True
    return isinstance(exc, pymysql.err.OperationalError) and _errno(exc) in _CONNECTION_ERRNOS


def _force_close(conn: pymysql.connections.Connection) -> None:
    """Drop a connection without talking to the server (it may be broken or in use elsewhere)."""
    with contextlib.suppress(Exception):
        conn._force_close()  # type: ignore[attr-defined]  # pymysql's own, absent from its stubs


class MySQLStore:
    """`Store` over pymysql: `mysql://` (MariaDB/MySQL DDL) or `starrocks://` (StarRocks DDL)."""

    def __init__(self, dsn: StoreDSN) -> None:
        if dsn.scheme not in ("mysql", "starrocks"):
            raise ValueError(f"MySQLStore cannot open a {dsn.scheme}:// DSN")
        self.name = dsn.scheme
        self._dsn = dsn
        self._starrocks = dsn.scheme == "starrocks"
        self._pool_size = int(dsn.option("pool_size", 4))
        self._connect_timeout = dsn.option("connect_timeout", 5)
        self._read_timeout = dsn.option("read_timeout", 300)
        self._write_timeout = dsn.option("write_timeout", 300)
        self.batch_rows = int(dsn.option("batch_rows", 5000))
        self.batch_bytes = int(dsn.option("batch_bytes", 4 * 1024 * 1024))
        self._idle: list[pymysql.connections.Connection] = []
        self._slots = asyncio.Semaphore(self._pool_size)
        self._closed = False

    def __repr__(self) -> str:
        return f"<MySQLStore {self.name} {self._dsn.user}@{self._dsn.where}/{self._dsn.database}>"

    # --- connections ---------------------------------------------------------------------------

    def _connect(self) -> pymysql.connections.Connection:
        d = self._dsn
        conn = pymysql.connect(
            host=d.host,
            port=d.port,
            user=d.user or None,
            password=d.password,
            database=d.database,
            charset="utf8mb4",
            autocommit=True,
            conv=_CONV,
            connect_timeout=self._connect_timeout,
            read_timeout=self._read_timeout,
            write_timeout=self._write_timeout,
            local_infile=False,
        )
        if not self._starrocks:
            try:
                with conn.cursor() as cur:
                    for sql in _SESSION_SETUP:
                        cur.execute(sql)
            except BaseException:
                _force_close(conn)
                raise
        return conn

    async def _in_thread(
        self, fn: Callable[..., T], conn: pymysql.connections.Connection | None, *args: Any
    ) -> T:
        """Run fn(conn, *args) (or fn() to connect) on a worker thread. If the awaiting task is
        cancelled, the thread still finishes; its connection is then dropped, never pooled."""
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(None, fn, *((conn, *args) if conn is not None else args))
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:

            def _drop(f: asyncio.Future[Any]) -> None:
                if conn is not None:
                    _force_close(conn)
                elif not f.cancelled() and f.exception() is None:
                    _force_close(f.result())  # a connection opened for a cancelled caller

            fut.add_done_callback(_drop)
            raise

    async def _run(self, what: str, op: Callable[..., T], *args: Any) -> T:
        """Run op(conn, *args) on a pooled connection, mapping driver errors to the app's kinds."""
        if self._closed:
            raise RuntimeError(f"{self.name} store is closed")
        async with self._slots:
            for attempt in (1, 2):
                conn = self._idle.pop() if self._idle and attempt == 1 else None
                reused = conn is not None
                try:
                    if conn is None:
                        conn = await self._in_thread(self._connect, None)
                    result = await self._in_thread(op, conn, *args)
                except Exception as exc:
                    if conn is not None:
                        _force_close(conn)
                    if reused and _is_connection_error(exc):
                        # The server restarted or dropped idle connections: the other pooled ones
                        # are most likely dead too. Drop them all and retry once on a fresh one.
                        log.info("%s store: pooled connection lost (%s); reconnecting",
                                 self.name, scrub(str(exc), self._dsn.password))
                        idle, self._idle = self._idle, []
                        for dead in idle:
                            _force_close(dead)
                        continue
                    raise self._classify(exc, what) from None
                if self._closed:
                    _force_close(conn)
                else:
                    self._idle.append(conn)
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _classify(self, exc: Exception, what: str) -> Exception:
        """The app error for a driver error: names backend and host, never the password."""
        d = self._dsn
        detail = scrub(f"{type(exc).__name__}: {exc}", d.password)
        where = f"{self.name} store at {d.where}/{d.database}"
        errno = _errno(exc)
        if _is_connection_error(exc):
            return Unavailable(f"{where} unavailable during {what}: {detail}")
        if isinstance(exc, pl.exceptions.PolarsError):
            return FatalError(f"{where}: {what} returned values that do not parse: {detail}")
        if errno in _RACE_ERRNOS and what.startswith("replace"):
            return RetryableError(f"{where}: {what} kept racing a concurrent writer: {detail}")
        if self._starrocks and errno == 1064:
            text = str(exc).lower()
            if any(word in text for word in _STARROCKS_TRANSIENT_WORDS):
                return RetryableError(f"{where} failed transiently during {what}: {detail}")
        if isinstance(
            exc,
            pymysql.err.ProgrammingError
            | pymysql.err.DataError
            | pymysql.err.IntegrityError
            | pymysql.err.NotSupportedError,
        ) or errno in _FATAL_ERRNOS:
            return FatalError(f"{where} rejected {what}: {detail}")
        if errno in _TRANSIENT_ERRNOS:
            return RetryableError(f"{where} failed transiently during {what}: {detail}")
        # Unknown: retrying is the safe default (bounded by the delivery policy's max_deliveries).
        return RetryableError(f"{where} failed during {what}: {detail}")

    # --- Store ---------------------------------------------------------------------------------

    async def create_tables(self) -> None:
        statements = load_ddl("starrocks" if self._starrocks else "mysql")

        def op(conn: pymysql.connections.Connection) -> None:
            with conn.cursor() as cur:
                for sql in statements:
                    cur.execute(sql)

        await self._run("create_tables", op)

    async def ping(self) -> None:
        def op(conn: pymysql.connections.Connection) -> None:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchall()

        await self._run("ping", op)

    async def read(self, table: str, client_id: str) -> pl.DataFrame:
        spec = table_spec(table)
        check_client_id(client_id)
        # client_id is not fetched (it is the argument): a column less for pymysql to parse.
        cols = ", ".join(f"`{c}`" for c in spec.columns if c != "client_id")
        sql = f"SELECT {cols} FROM `{spec.name}` WHERE `client_id` = %s"
        return await self._run(f"read {spec.name}", _read, spec, sql, client_id)

    async def replace(self, table: str, client_id: str, frame: pl.DataFrame) -> int:
        spec = table_spec(table)
        check_client_id(client_id)
        rows = conform(spec, client_id, frame)
        stamp = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        return await self._run(
            f"replace {spec.name}", self._replace, spec, client_id, rows, stamp
        )

    def _replace(
        self,
        conn: pymysql.connections.Connection,
        spec: TableSpec,
        client_id: str,
        rows: pl.DataFrame,
        stamp: dt.datetime,
    ) -> int:
        status: int = conn.server_status  # type: ignore[attr-defined]  # set by every OK packet
        backslash = not (status & SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES)
        statements = list(
            insert_statements(spec, rows, stamp, backslash, self.batch_rows, self.batch_bytes)
        )
        transactional = not self._starrocks  # see the module doc
        for attempt in range(1, _RACE_ATTEMPTS + 1):
            try:
                with conn.cursor() as cur:
                    if transactional:
                        conn.begin()
                    cur.execute(f"DELETE FROM `{spec.name}` WHERE `client_id` = %s", (client_id,))
                    for sql in statements:
                        cur.execute(sql)  # args=None: pymysql does no %-formatting on the text
                    if transactional:
                        conn.commit()
                return rows.height
            except pymysql.err.MySQLError as exc:
                if transactional:
                    with contextlib.suppress(Exception):  # a broken connection is dropped anyway
                        conn.rollback()
                if _errno(exc) not in _RACE_ERRNOS or attempt == _RACE_ATTEMPTS:
                    raise
                log.info("%s store: replace %s lost a race (%s); again", self.name, spec.name, exc)
                time.sleep(0.02 * attempt * (1 + random.random()))
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        idle, self._idle = self._idle, []

        def close_all() -> None:
            for conn in idle:
                try:
                    conn.close()
                except Exception:
                    _force_close(conn)

        await asyncio.get_running_loop().run_in_executor(None, close_all)


# --- reading -----------------------------------------------------------------------------------

_READ_CHUNK = 100_000


def _read(
    conn: pymysql.connections.Connection, spec: TableSpec, sql: str, client_id: str
) -> pl.DataFrame:
    chunks: list[pl.DataFrame] = []
    text_schema = pl.Schema({c: pl.String() for c in spec.columns if c != "client_id"})
    with conn.cursor(pymysql.cursors.SSCursor) as cur:
        cur.execute(sql, (client_id,))
        while rows := cur.fetchmany(_READ_CHUNK):
            text = pl.DataFrame(rows, schema=text_schema, orient="row")
            chunks.append(_parse(spec, text.with_columns(client_id=pl.lit(client_id, pl.String))))
    if not chunks:
        return pl.DataFrame(schema=spec.schema)
    return pl.concat(chunks, rechunk=True) if len(chunks) > 1 else chunks[0]


_TRUE_FALSE = {"1": True, "0": False, "true": True, "false": False}


def _parse(spec: TableSpec, text: pl.DataFrame) -> pl.DataFrame:
    """Text columns as the server sent them → the spec's dtypes."""
    exprs: list[pl.Expr] = []
    for name, dtype in spec.schema.items():
        col = pl.col(name)
        if dtype == pl.Date:
            exprs.append(col.str.to_date("%Y-%m-%d", strict=True))
        elif dtype == pl.Boolean:
            lowered = col.str.to_lowercase()
            exprs.append(lowered.replace_strict(_TRUE_FALSE, return_dtype=pl.Boolean))
        elif dtype == pl.String:
            exprs.append(col)
        else:
            exprs.append(col.cast(dtype, strict=True))
    return cast_read(spec, text.select(exprs))


# --- writing -----------------------------------------------------------------------------------


def _literal(name: str, dtype: pl.DataType, backslash: bool) -> pl.Expr:
    """A SQL literal for every value of a column (NULL for nulls)."""
    col = pl.col(name)
    if dtype == pl.String:
        if backslash:
            escaped = col.str.replace_many(_ESCAPE_FROM, _ESCAPE_TO)
        else:  # NO_BACKSLASH_ESCAPES: a backslash is an ordinary character, only quotes double
            escaped = col.str.replace_all("'", "''", literal=True)
        expr = pl.concat_str(pl.lit("'"), escaped, pl.lit("'"))
    elif dtype == pl.Date:
        expr = pl.concat_str(pl.lit("'"), col.cast(pl.String), pl.lit("'"))
    elif dtype == pl.Boolean:
        expr = col.cast(pl.Int8).cast(pl.String)
    else:  # Float64 (shortest round-trip repr, finite: conform() rejected ±inf), Int32
        expr = col.cast(pl.String)
    return expr.fill_null(pl.lit("NULL"))


def insert_statements(
    spec: TableSpec,
    rows: pl.DataFrame,
    stamp: dt.datetime | None,
    backslash: bool = True,
    batch_rows: int = 5000,
    batch_bytes: int = 4 * 1024 * 1024,
) -> Iterator[str]:
    """Multi-row INSERT statements writing `rows` (already conformed to `spec`)."""
    if rows.height == 0:
        return
    columns = list(spec.columns)
    parts = [_literal(c, spec.schema[c], backslash) for c in columns]
    if spec.stamp:
        columns.append(spec.stamp)
        when = (stamp or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M:%S.%f")
        parts.append(pl.lit(f"'{when}'"))
    prefix = f"INSERT INTO `{spec.name}` ({', '.join(f'`{c}`' for c in columns)}) VALUES "
    values = rows.select(
        pl.concat_str(pl.lit("("), pl.concat_str(parts, separator=","), pl.lit(")")).alias("v")
    ).get_column("v")
    # Batch boundaries: at most batch_rows rows and (a single huge row aside) batch_bytes bytes.
    ends = (values.str.len_bytes().cast(pl.Int64) + 1).cum_sum()
    start, n = 0, values.len()
    while start < n:
        base = int(ends[start - 1]) if start else 0
        by_bytes = int(ends.search_sorted(base + batch_bytes - len(prefix), side="right"))
        stop = min(n, start + batch_rows, max(by_bytes, start + 1))
        yield prefix + values.slice(start, stop - start).str.join(",").item()
        start = stop
