"""The store over the MySQL protocol: MariaDB/MySQL (`mysql://`) for tests, StarRocks
(`starrocks://`) in production. Each path is the server's own bulk path, behind one interface:

    reads    connectorx into Arrow (store.mysql.arrow; DSN ?read=pymysql: pymysql text rows,
             store.mysql.text)
    writes   mysql://      LOAD DATA LOCAL INFILE in the replace transaction (store.mysql.infile,
                           .transaction); ?write=values, or a server with local_infile=OFF:
                           multi-row INSERT ... VALUES batches (store.mysql.text)
             starrocks://  Stream Load over HTTP (store.mysql.starrocks, .streamload; the FE's
                           HTTP port is ?http_port=, 8030 by default)

Connections, their retry and the errors' kinds: store.mysql.pool. What each backend guarantees
for a replace and its version fence is in the modules of its write path.
"""

from __future__ import annotations

import datetime as dt
import importlib.util

import polars as pl
import pymysql
from pymysql.constants import SERVER_STATUS

from core import logs
from store import dialect, digest
from store.base import BaseStore, Write
from store.digest import Period
from store.dsn import StoreDSN
from store.mysql import arrow, infile, starrocks, transaction
from store.mysql.pool import Connection, Cursor, Pool, errno
from store.mysql.streamload import StreamLoader
from store.mysql.text import constants, insert_statements, read_text
from store.schema import ALL_TABLES, TableSpec

__all__ = ["MySQLStore"]

log = logs.get("store")
_DUPLICATE_COLUMN = 1060
_HAS_CONNECTORX = importlib.util.find_spec("connectorx") is not None


class MySQLStore(BaseStore):
    """`Store` over the MySQL protocol: `mysql://` (MariaDB/MySQL) or `starrocks://`."""

    def __init__(self, dsn: StoreDSN) -> None:
        if dsn.scheme not in ("mysql", "starrocks"):
            raise ValueError(f"MySQLStore cannot open a {dsn.scheme}:// DSN")
        self.name = dsn.scheme
        self._dsn = dsn
        self._starrocks = dsn.scheme == "starrocks"
        self._flavour = dsn.scheme
        reads = ("connectorx", "pymysql") if _HAS_CONNECTORX else ("pymysql",)
        self.read_path = dsn.choice("read", reads)
        self.write_path = "stream_load" if self._starrocks else dsn.choice(
            "write", ("load_data", "values"))
        self._pool = Pool(dsn, starrocks=self._starrocks,
                          local_infile=self.write_path == "load_data")
        self.batch_rows = int(dsn.option("batch_rows", 5000))
        self.batch_bytes = int(dsn.option("batch_bytes", 4 * 1024 * 1024))
        self._loader = StreamLoader(
            dsn.host, int(dsn.option("http_port", 8030)), dsn.user or "root", dsn.password,
            dsn.database, timeout=dsn.option("load_timeout", 600)) if self._starrocks else None
        self.duplicate_loads = 0  # Stream Loads refused as a label already loaded (a retry)
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

    async def ping(self) -> None:
        def op(conn: Connection) -> None:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchall()

        await self._pool.run("ping", op)

    async def close(self) -> None:
        await self._pool.close()

    # --- reading --------------------------------------------------------------------------------

    async def _read(self, spec: TableSpec, client_id: str, since: dt.date | None) -> pl.DataFrame:
        # client_id is not fetched (it is the argument): a column less to transfer and parse.
        cols = "*" if spec.extensible else ", ".join(
            f"`{c}`" for c in spec.columns if c != "client_id")
        what = f"read {spec.name}"
        if self.read_path == "connectorx":
            sql = f"SELECT {cols} FROM `{spec.name}` WHERE {arrow.where(client_id, since)}"
            return await self._pool.run(what, arrow.read_arrow, self._dsn, spec, sql, client_id,
                                        self._starrocks)
        condition, params = transaction.where(client_id, since)
        sql = f"SELECT {cols} FROM `{spec.name}` WHERE {condition}"
        return await self._pool.run(what, read_text, spec, sql, client_id, params)

    async def _clients(self, spec: TableSpec) -> list[str]:
        def op(conn: Connection) -> list[str]:
            with conn.cursor() as cur:
                cur.execute(f"SELECT DISTINCT `client_id` FROM `{spec.name}`")
                return [str(row[0]) for row in cur.fetchall()]

        return await self._pool.run(f"list the clients of {spec.name}", op)

    async def _digest(
        self, spec: TableSpec, client_id: str, period: Period, since: dt.date | None,
        by_product: bool,
    ) -> pl.DataFrame:
        sql = digest.mysql_sql(spec, period, since, by_product)
        params = (client_id,) if since is None else (client_id, since)

        def op(conn: Connection) -> pl.DataFrame:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                rows = cur.fetchall()
            return digest.from_halves(pl.DataFrame(
                rows, schema={c: pl.String() for c in ("product_id", "period", "rows", "h1", "h2")},
                orient="row"))

        return await self._pool.run(f"digest {spec.name}", op)

    # --- writing --------------------------------------------------------------------------------

    async def _replace(self, write: Write) -> None:
        if write.spec.extensible:
            await self._add_features(write.spec)
        if self._loader is not None:
            result = await self._pool.run(write.what, starrocks.replace, self._loader, write)
            if result.duplicate:
                self.duplicate_loads += 1
                log.info("%s store: %s at version %d was loaded before (label %s): done",
                         self.name, write.what, write.version, result.label)
            return
        await self._pool.run(write.what, self._replace_in_transaction, write)

    def _replace_in_transaction(self, conn: Connection, write: Write) -> None:
        stamp = write.stamp.replace(tzinfo=None)
        fixed = constants(write.spec, stamp, write.version)
        if self.write_path == "load_data":
            try:
                transaction.replace(conn, write,
                                    lambda cur: infile.load(cur, write.spec, write.rows, fixed))
                return
            except pymysql.err.MySQLError as exc:
                if errno(exc) not in infile.REFUSED_ERRNOS:
                    raise
                log.warning("%s store: the server refuses LOAD DATA LOCAL INFILE (%s); writing "
                            "with INSERT ... VALUES from now on", self.name, exc)
                self.write_path = "values"
        status: int = conn.server_status  # type: ignore[attr-defined]  # set by every OK packet
        backslash = not (status & SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES)
        statements = list(insert_statements(
            write.spec, write.rows, fixed, backslash, self.batch_rows, self.batch_bytes))

        def insert(cur: Cursor) -> None:
            for sql in statements:
                cur.execute(sql)  # args=None: pymysql does no %-formatting on the text

        transaction.replace(conn, write, insert)

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


def _columns(cur: Cursor, table: str) -> set[str]:
    cur.execute("SELECT COLUMN_NAME FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s", (table,))
    return {row[0] for row in cur.fetchall()}
