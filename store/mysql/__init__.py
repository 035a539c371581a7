"""The store over the MySQL protocol: MariaDB/MySQL (`mysql://`) for tests, StarRocks
(`starrocks://`) in production.

- Connections and error kinds: store.mysql.pool. Reads and INSERT batches: store.mysql.text.
  No `ON DUPLICATE KEY UPDATE`/`REPLACE INTO`: StarRocks accepts neither.
- replace = the version fence, `DELETE ... WHERE client_id = %s [AND date >= since]`, the INSERT
  batches.
  * mysql:// (MariaDB/MySQL, InnoDB): ONE transaction that first locks the client's fence row
    (store_versions, `SELECT ... FOR UPDATE`; the row is created if missing) and compares versions:
    an older write rolls back and raises Superseded, having changed nothing. Replaces of one
    client's table are therefore serialised; readers see the old rows or the new ones.
  * starrocks:// : StarRocks runs each DELETE and INSERT statement as its own load transaction and
    has no multi-statement transaction covering a DELETE, so the replace is NOT atomic there: a
    reader racing it may see the client's rows missing or partly written, and the fence check is
    a read before the writes (two writers racing past it both write). It is still idempotent
    and convergent: a retry deletes and writes everything again, and an INSERT into a PRIMARY KEY
    table upserts, so a redelivered event leaves exactly the frame.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import time

import polars as pl
import pymysql
from pymysql.constants import SERVER_STATUS

from core import logs
from store import dialect, digest
from store.base import BaseStore, Write
from store.digest import Period
from store.dsn import StoreDSN
from store.mysql.pool import RACE_ERRNOS, Connection, Cursor, Pool, errno
from store.mysql.text import constants, insert_statements, read_text
from store.schema import ALL_TABLES, FENCE, VERSION, TableSpec

__all__ = ["MySQLStore"]

log = logs.get("store")
_RACE_ATTEMPTS = 4
_DUPLICATE_COLUMN = 1060


class MySQLStore(BaseStore):
    """`Store` over pymysql: `mysql://` (MariaDB/MySQL DDL) or `starrocks://` (StarRocks DDL)."""

    def __init__(self, dsn: StoreDSN) -> None:
        if dsn.scheme not in ("mysql", "starrocks"):
            raise ValueError(f"MySQLStore cannot open a {dsn.scheme}:// DSN")
        self.name = dsn.scheme
        self._dsn = dsn
        self._starrocks = dsn.scheme == "starrocks"
        self._pool = Pool(dsn, starrocks=self._starrocks)
        self.batch_rows = int(dsn.option("batch_rows", 5000))
        self.batch_bytes = int(dsn.option("batch_bytes", 4 * 1024 * 1024))
        self._flavour = "starrocks" if self._starrocks else "mysql"
        self._features: dict[str, set[str]] = {}  # the columns a wide table is known to have

    def __repr__(self) -> str:
        return f"<MySQLStore {self.name} {self._dsn.user}@{self._dsn.where}/{self._dsn.database}>"

    async def create_tables(self) -> None:
        def op(conn: Connection) -> None:
            with conn.cursor() as cur:
                for sql in dialect.statements(self._flavour):
                    cur.execute(sql)
                for spec in ALL_TABLES:  # tables made by an older version get its new columns
                    for sql in dialect.upgrade(self._flavour, spec, _columns(cur, spec.name)):
                        log.warning("%s store: %s", self.name, sql)
                        cur.execute(sql)

        await self._pool.run("create_tables", op)

    async def _add_features(self, spec: TableSpec) -> None:
        """ADD COLUMN for the feature columns of a write that the wide table lacks (outside the
        replace transaction: DDL commits implicitly)."""
        wanted = set(spec.values)
        if wanted <= self._features.get(spec.name, set()):
            return
        sql_type = dialect.column_type(self._flavour, pl.Float64(), key=False)

        def op(conn: Connection) -> set[str]:
            with conn.cursor() as cur:
                have = _columns(cur, spec.name)
                for name in sorted(wanted - have):
                    log.info("%s store: new feature column %s.%s", self.name, spec.name, name)
                    try:
                        cur.execute(dialect.add_column(self._flavour, spec.name, name, sql_type))
                    except pymysql.err.MySQLError as exc:
                        if errno(exc) != _DUPLICATE_COLUMN:  # else: another instance added it
                            raise
            return have | wanted

        self._features[spec.name] = await self._pool.run(f"add columns to {spec.name}", op)

    async def ping(self) -> None:
        def op(conn: Connection) -> None:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchall()

        await self._pool.run("ping", op)

    async def close(self) -> None:
        await self._pool.close()

    async def _read(self, spec: TableSpec, client_id: str, since: dt.date | None) -> pl.DataFrame:
        # client_id is not fetched (it is the argument): a column less for pymysql to parse.
        cols = "*" if spec.extensible else ", ".join(
            f"`{c}`" for c in spec.columns if c != "client_id")
        where, params = _where(client_id, since)
        sql = f"SELECT {cols} FROM `{spec.name}` WHERE {where}"
        return await self._pool.run(f"read {spec.name}", read_text, spec, sql, client_id, params)

    async def _digest(
        self, spec: TableSpec, client_id: str, period: Period, since: dt.date | None
    ) -> pl.DataFrame:
        sql = digest.mysql_sql(spec, period, since)
        params = (client_id,) if since is None else (client_id, since)

        def op(conn: Connection) -> pl.DataFrame:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                rows = cur.fetchall()
            return digest.from_halves(pl.DataFrame(
                rows, schema={c: pl.String() for c in ("product_id", "period", "rows", "h1", "h2")},
                orient="row"))

        return await self._pool.run(f"digest {spec.name}", op)

    async def _replace(self, write: Write) -> None:
        if write.spec.extensible:
            await self._add_features(write.spec)
        await self._pool.run(write.what, self._replace_on, write)

    def _replace_on(self, conn: Connection, write: Write) -> None:
        status: int = conn.server_status  # type: ignore[attr-defined]  # set by every OK packet
        backslash = not (status & SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES)
        stamp = write.stamp.replace(tzinfo=None)
        statements = list(insert_statements(
            write.spec, write.rows, constants(write.spec, stamp, write.version), backslash,
            self.batch_rows, self.batch_bytes))
        for attempt in range(1, _RACE_ATTEMPTS + 1):
            try:
                with conn.cursor() as cur:
                    if self._starrocks:  # see the module doc: no transaction there
                        write.admit(_applied(cur, write))
                        _delete_and_insert(cur, write, statements)
                        _set_fence(cur, write, stamp, upsert=True)
                        return
                    conn.begin()
                    cur.execute(
                        f"INSERT INTO `{FENCE.name}` (`client_id`, `table_name`, `{FENCE.stamp}`, "
                        f"`{VERSION}`) VALUES (%s, %s, %s, 0) "
                        f"ON DUPLICATE KEY UPDATE `{VERSION}` = `{VERSION}`",
                        (write.client_id, write.spec.name, stamp))
                    write.admit(_applied(cur, write, lock=True))
                    _delete_and_insert(cur, write, statements)
                    _set_fence(cur, write, stamp, upsert=False)
                    conn.commit()
                return
            except Exception as exc:
                if not self._starrocks:
                    with contextlib.suppress(Exception):  # a broken connection is dropped anyway
                        conn.rollback()
                if errno(exc) not in RACE_ERRNOS or attempt == _RACE_ATTEMPTS:
                    raise
                log.info("%s store: %s lost a race (%s); again", self.name, write.what, exc)
                time.sleep(0.02 * attempt * (1 + random.random()))


def _columns(cur: Cursor, table: str) -> set[str]:
    cur.execute("SELECT COLUMN_NAME FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s", (table,))
    return {row[0] for row in cur.fetchall()}


def _applied(cur: Cursor, write: Write, lock: bool = False) -> int | None:
    """The version the fence holds for the write's client and table (None: never written)."""
    cur.execute(f"SELECT `{VERSION}` FROM `{FENCE.name}` WHERE `client_id` = %s "
                f"AND `table_name` = %s" + (" FOR UPDATE" if lock else ""),
                (write.client_id, write.spec.name))
    row = cur.fetchone()
    return None if row is None else int(row[0])


def _where(client_id: str, since: dt.date | None) -> tuple[str, tuple[object, ...]]:
    """The WHERE clause of a client's rows (from `since` on) and its parameters."""
    if since is None:
        return "`client_id` = %s", (client_id,)
    return "`client_id` = %s AND `date` >= %s", (client_id, since)


def _delete_and_insert(cur: Cursor, write: Write, statements: list[str]) -> None:
    where, params = _where(write.client_id, write.since)
    cur.execute(f"DELETE FROM `{write.spec.name}` WHERE {where}", params)
    for sql in statements:
        cur.execute(sql)  # args=None: pymysql does no %-formatting on the text


def _set_fence(cur: Cursor, write: Write, stamp: dt.datetime, upsert: bool) -> None:
    key = (write.client_id, write.spec.name)
    if upsert:  # StarRocks: an INSERT of an existing key replaces the row (DELETE keeps MariaDB,
        # which the tests run this flavour's DML on, from refusing the duplicate)
        cur.execute(f"DELETE FROM `{FENCE.name}` WHERE `client_id` = %s AND `table_name` = %s",
                    key)
        cur.execute(f"INSERT INTO `{FENCE.name}` (`client_id`, `table_name`, `{FENCE.stamp}`, "
                    f"`{VERSION}`) VALUES (%s, %s, %s, %s)", (*key, stamp, write.version))
    else:
        cur.execute(f"UPDATE `{FENCE.name}` SET `{VERSION}` = %s, `{FENCE.stamp}` = %s "
                    "WHERE `client_id` = %s AND `table_name` = %s", (write.version, stamp, *key))
