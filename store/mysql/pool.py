"""Connections over the MySQL protocol (pymysql) and what their errors mean to the app.

A small pool (DSN option `pool_size`, 4 by default) of autocommit connections, created on demand;
every blocking call runs on a worker thread. A connection that fails is dropped; an operation that
failed on a *reused* connection because it had gone away (server restart, idle timeout, KILL) is
retried once on a fresh one, which every store operation allows because all are idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import Any, TypeVar

import polars as pl
import pymysql
import pymysql.converters
import pymysql.cursors

from core import logs
from core.errors import FatalError, RetryableError, Superseded, Unavailable
from core.redact import scrub
from store.dsn import StoreDSN

log = logs.get("store")
T = TypeVar("T")
Connection = pymysql.connections.Connection
Cursor = pymysql.cursors.Cursor

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
RACE_ERRNOS = frozenset({1213, 1062})

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
TRANSIENT_WORDS = (
    "timeout", "timed out", "too many", "busy", "unavailable", "not alive", "no alive", "retry",
    "try again", "memory",
)


def errno(exc: BaseException) -> int | None:
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def _is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, pymysql.err.InterfaceError | OSError | socket.timeout | EOFError):
        return True
    return isinstance(exc, pymysql.err.OperationalError) and errno(exc) in _CONNECTION_ERRNOS


def force_close(conn: Connection) -> None:
    """Drop a connection without talking to the server (it may be broken or in use elsewhere)."""
    with contextlib.suppress(Exception):
        conn._force_close()  # type: ignore[attr-defined]  # pymysql's own, absent from its stubs


class Pool:
    """pymysql connections for one store DSN; `run(what, op, *args)` = op(conn, *args) off-loop."""

    def __init__(self, dsn: StoreDSN, *, starrocks: bool, local_infile: bool = False) -> None:
        self.dsn = dsn
        self.name = dsn.scheme
        self.starrocks = starrocks
        self._local_infile = local_infile  # LOAD DATA LOCAL (store.mysql.infile)
        self.where = f"{self.name} store at {dsn.where}/{dsn.database}"
        self._size = int(dsn.option("pool_size", 4))
        self._connect_timeout = dsn.option("connect_timeout", 5)
        # A reply stalled this long means a dead link (a half-open connection): Unavailable after
        # at most twice it (the query, then the handshake of its retry on a fresh connection).
        self._read_timeout = dsn.option("read_timeout", 60)
        self._write_timeout = dsn.option("write_timeout", 60)
        self.idle: list[Connection] = []
        self._slots = asyncio.Semaphore(self._size)
        self.closed = False

    def _connect(self) -> Connection:
        d = self.dsn
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
            local_infile=self._local_infile,
        )
        if not self.starrocks:
            try:
                with conn.cursor() as cur:
                    for sql in _SESSION_SETUP:
                        cur.execute(sql)
            except BaseException:
                force_close(conn)
                raise
        return conn

    async def _in_thread(self, fn: Callable[..., T], conn: Connection | None, *args: Any) -> T:
        """Run fn(conn, *args) (or fn() to connect) on a worker thread. If the awaiting task is
        cancelled, the thread still finishes; its connection is then dropped, never pooled."""
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(None, fn, *((conn, *args) if conn is not None else args))
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:

            def _drop(f: asyncio.Future[Any]) -> None:
                if conn is not None:
                    force_close(conn)
                elif not f.cancelled() and f.exception() is None:
                    force_close(f.result())  # a connection opened for a cancelled caller

            fut.add_done_callback(_drop)
            raise

    async def run(self, what: str, op: Callable[..., T], *args: Any) -> T:
        """Run op(conn, *args) on a pooled connection, mapping driver errors to the app's kinds."""
        if self.closed:
            raise RuntimeError(f"{self.name} store is closed")
        async with self._slots:
            for attempt in (1, 2):
                conn = self.idle.pop() if self.idle and attempt == 1 else None
                reused = conn is not None
                try:
                    if conn is None:
                        conn = await self._in_thread(self._connect, None)
                    result = await self._in_thread(op, conn, *args)
                except Exception as exc:
                    if conn is not None:
                        force_close(conn)
                    if reused and _is_connection_error(exc):
                        # The server restarted or dropped idle connections: the other pooled ones
                        # are most likely dead too. Drop them all and retry once on a fresh one.
                        log.info("%s store: pooled connection lost (%s); reconnecting",
                                 self.name, scrub(str(exc), self.dsn.password))
                        idle, self.idle = self.idle, []
                        for dead in idle:
                            force_close(dead)
                        continue
                    raise self.classify(exc, what) from None
                if self.closed:
                    force_close(conn)
                else:
                    self.idle.append(conn)
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    def classify(self, exc: Exception, what: str) -> Exception:
        """The app error for a driver error: names backend and host, never the password."""
        if isinstance(exc, Superseded | Unavailable):
            return exc  # already ours, and complete
        if isinstance(exc, RetryableError | FatalError):  # an operation's own check: say where
            return exc if self.where in str(exc) else type(exc)(f"{self.where}, {what}: {exc}")
        detail = scrub(f"{type(exc).__name__}: {exc}", self.dsn.password)
        code = errno(exc)
        if _is_connection_error(exc):
            return Unavailable(f"{self.where} unavailable during {what}: {detail}")
        if isinstance(exc, pl.exceptions.PolarsError):
            return FatalError(f"{self.where}: {what} returned values that do not parse: {detail}")
        if code in RACE_ERRNOS and what.startswith("replace"):
            return RetryableError(f"{self.where}: {what} kept racing a concurrent writer: {detail}")
        if self.starrocks and code == 1064:
            text = str(exc).lower()
            if any(word in text for word in TRANSIENT_WORDS):
                return RetryableError(f"{self.where} failed transiently during {what}: {detail}")
        if isinstance(
            exc,
            pymysql.err.ProgrammingError
            | pymysql.err.DataError
            | pymysql.err.IntegrityError
            | pymysql.err.NotSupportedError,
        ) or code in _FATAL_ERRNOS:
            return FatalError(f"{self.where} rejected {what}: {detail}")
        if code in _TRANSIENT_ERRNOS:
            return RetryableError(f"{self.where} failed transiently during {what}: {detail}")
        # Unknown: retrying is the safe default (bounded by the delivery policy's max_deliveries).
        return RetryableError(f"{self.where} failed during {what}: {detail}")

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        idle, self.idle = self.idle, []

        def close_all() -> None:
            for conn in idle:
                try:
                    conn.close()
                except Exception:
                    force_close(conn)

        await asyncio.get_running_loop().run_in_executor(None, close_all)
