"""The store on ClickHouse through clickhouse-connect: embedded chDB (`chdb://`) or a server over
HTTP(S) (`clickhouse://`, `clickhouses://`).

- chDB is one engine per process, synchronous, and its on-disk data belongs to one process at a
  time. Every chDB call of the process runs on ONE dedicated thread (`CHDB_EXECUTOR`), so the event
  loop never blocks and the engine is never entered from two threads. Stores on the same location
  share the engine; opening a second, different location in the same process is a FatalError.
  clickhouse-connect opens chDB with `get_client(interface="chdb", path=...)` (path None = memory).
- Over HTTP the client is thread-safe for session-less queries (`autogenerate_session_id=False`);
  calls run on the loop's default worker threads.
- Bulk I/O only: `insert_arrow` of the whole frame (polars → Arrow) and `query_arrow` (Arrow →
  polars), no per-row work in Python.
- Tables are `ReplacingMergeTree(_version, _deleted) ORDER BY <key>` (store/dialect.py)
  and reads use FINAL. replace = ONE query (the version fence and the client's current keys from
  `since` on), then ONE insert at `_version` = the write's version: the frame's rows plus a
  tombstone (`_deleted = 1`) for every key the client has now and the frame has not. Right after
  it a read returns exactly the frame; a racing reader sees the old rows or the new ones (one
  insert of up to ~1M rows forms one part, written atomically), never an empty client. No
  mutation is used: a lightweight DELETE waits for the background merge executor (0.2-1 s per
  call on chDB 26.9). Each engine call costs milliseconds even in-process (~2-5 ms for SELECT 1
  here), so a replace makes two.
- The version fence: the highest `_version` among the client's rows of the table (every part:
  merges keep each key's highest version, tombstones included), and store_versions for the
  writes that had no row to insert. A write older than the fence raises Superseded and changes
  nothing. chDB: check and insert run in one call on the engine's only thread, so within the
  process (the only one that may open the data) the fence is exact. ClickHouse server: the check
  is a read before the insert; two writers racing past it both insert, and then per key the
  higher version wins (the engine's own rule, always), but keys only the older write had may
  survive until the client's next replace, and its tombstones lose to the newer rows. A plain
  INSERT by another writer counts as a write at its insert time.
- A writer that inserts on its own (an integrator) may omit `_version`: it defaults to the insert
  time on the version scale (ms << 20), so a plain INSERT upserts by key, and a row with
  `_deleted = 1` deletes its key.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, TypeVar

import polars as pl

from core.errors import FatalError, RetryableError, Superseded, Unavailable
from core.redact import scrub
from store import dialect, digest
from store.base import BaseStore, Write
from store.digest import Period
from store.dsn import StoreDSN
from store.frames import cast_read
from store.schema import ALL_TABLES, FENCE, STAMP_DTYPE, VERSION, TableSpec

T = TypeVar("T")

# The one thread of this process that talks to chDB (created on first use).
CHDB_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chdb")

# ClickHouse error codes of requests that can never succeed as written (schema, data, access).
FATAL_CODES = frozenset(
    {
        6, 7, 8, 15, 16, 20, 26, 27, 32, 33, 36, 38, 41, 43, 44, 47, 48, 50, 53, 60, 62, 69, 70,
        72, 81, 117, 130, 158, 192, 193, 194, 215, 321, 349, 386, 497, 516,
    }
)

class ClickHouseStore(BaseStore):
    """`Store` on ClickHouse: embedded chDB or a server over HTTP(S)."""

    def __init__(self, dsn: StoreDSN) -> None:
        if dsn.scheme not in ("chdb", "clickhouse", "clickhouses"):
            raise ValueError(f"ClickHouseStore cannot open a {dsn.scheme}:// DSN")
        self._dsn = dsn
        self._chdb = dsn.scheme == "chdb"
        self.name = "chdb" if self._chdb else "clickhouse"
        self._executor: Executor | None = CHDB_EXECUTOR if self._chdb else None
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._closed = False
        self._where = f"{self.name} store at {dsn.where}/{dsn.database}"
        self._features: dict[str, set[str]] = {}  # the columns a wide table is known to have

    def __repr__(self) -> str:
        return f"<ClickHouseStore {self.name} {self._dsn.where}/{self._dsn.database}>"

    # --- plumbing ------------------------------------------------------------------------------

    def _open(self) -> Any:
        import clickhouse_connect

        d = self._dsn
        if self._chdb:
            client = clickhouse_connect.get_client(interface="chdb", path=d.path or None)
            try:
                client.command(f"CREATE DATABASE IF NOT EXISTS `{d.database}`")  # name validated
                client.database = d.database
            except Exception:
                client.close()
                raise
            return client
        kwargs: dict[str, Any] = {}
        if d.scheme == "clickhouses":
            kwargs["verify"] = d.options.get("verify", "true").lower() not in ("0", "false", "no")
        return clickhouse_connect.get_client(
            host=d.host,
            port=d.port,
            username=d.user or "default",
            password=d.password,
            database=d.database,
            secure=d.scheme == "clickhouses",
            connect_timeout=d.option("connect_timeout", 5),
            # A reply stalled this long means a dead link (a half-open connection): Unavailable.
            send_receive_timeout=d.option("send_receive_timeout", 60),
            autogenerate_session_id=False,
            **kwargs,
        )

    def _with_client(self, fn: Callable[..., T], *args: Any) -> T:
        # Runs on the worker thread (for chDB: always the same one).
        with self._client_lock:
            if self._closed:
                raise RuntimeError(f"{self.name} store is closed")
            if self._client is None:
                self._client = self._open()
            client = self._client
        return fn(client, *args)

    async def _run(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise RuntimeError(f"{self.name} store is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._with_client, fn, *args)
        except (FatalError, RetryableError, Superseded):
            raise
        except RuntimeError as exc:
            if "store is closed" in str(exc):
                raise
            raise self._classify(exc, what) from None
        except Exception as exc:
            raise self._classify(exc, what) from None

    def _classify(self, exc: Exception, what: str) -> Exception:
        """The app error for a driver error: names backend and host, never the password."""
        from clickhouse_connect.driver import exceptions as ch

        d = self._dsn
        detail = scrub(f"{type(exc).__name__}: {exc}", d.password)
        if len(detail) > 2000:
            detail = detail[:2000] + " ..."
        where = self._where
        if isinstance(exc, ch.OperationalError | OSError | socket.timeout | ConnectionError):
            return Unavailable(f"{where} unavailable during {what}: {detail}")
        if self._chdb and isinstance(exc, ch.ProgrammingError) and "chdb engine" in str(exc):
            return FatalError(
                f"{where}: chDB allows one engine location per process and another one is open "
                f"({detail})"
            )
        code = getattr(exc, "code", None)
        if code in FATAL_CODES or isinstance(
            exc, ch.DataError | ch.IntegrityError | ch.NotSupportedError | pl.exceptions.PolarsError
        ):
            return FatalError(f"{where} rejected {what}: {detail}")
        if isinstance(exc, ch.ProgrammingError) and code is None:
            return FatalError(f"{where} rejected {what}: {detail}")
        # Server-side trouble (memory, too many parts, timeouts, ...) or unknown: retry later.
        return RetryableError(f"{where} failed during {what}: {detail}")

    # --- Store ---------------------------------------------------------------------------------

    async def create_tables(self) -> None:
        await self._run("create_tables", self._create_tables)

    def _create_tables(self, client: Any) -> None:
        for sql in dialect.statements("clickhouse"):
            client.command(sql)
        # CREATE TABLE IF NOT EXISTS keeps a table made by an older DDL (e.g. in a persistent
        # chDB directory): refuse one whose engine lacks the tombstone column replace relies on,
        # add the columns an older version lacked.
        ours = {spec.name: spec for spec in ALL_TABLES}
        engines = client.query_arrow(
            "SELECT name, engine_full FROM system.tables WHERE database = currentDatabase()",
            use_strings=True,
        ).to_pylist()
        stale = sorted(
            row["name"] for row in engines
            if row["name"] in ours
            and not row["engine_full"].startswith("ReplacingMergeTree(_version, _deleted)")
        )
        if stale:
            raise FatalError(
                f"{self._where}: table(s) {stale} predate store/dialect.py (engine must be "
                "ReplacingMergeTree(_version, _deleted)); drop them (or the chDB directory) "
                "and run create_tables again"
            )
        columns = pl.from_arrow(client.query_arrow(
            "SELECT table, name, default_expression FROM system.columns "
            "WHERE database = currentDatabase()", use_strings=True))
        assert isinstance(columns, pl.DataFrame)
        for spec in ours.values():
            mine = columns.filter(pl.col("table") == spec.name)
            for sql in dialect.upgrade("clickhouse", spec, set(mine.get_column("name"))):
                client.command(sql)
            # Before versions were event positions, _version defaulted to nanoseconds: a plain
            # INSERT by an integrator would then lose to the store's rows.
            if mine.filter((pl.col("name") == VERSION)
                           & pl.col("default_expression").str.contains("Nano")).height:
                client.command(f"ALTER TABLE `{spec.name}` MODIFY COLUMN `{VERSION}` UInt64 "
                               f"DEFAULT {dialect.CLICKHOUSE_VERSION_DEFAULT}")

    async def ping(self) -> None:
        await self._run("ping", lambda client: client.command("SELECT 1"))

    async def _read(self, spec: TableSpec, client_id: str, since: dt.date | None) -> pl.DataFrame:
        cols = "*" if spec.extensible else ", ".join(f"`{c}`" for c in spec.columns)
        sql = f"SELECT {cols} FROM `{spec.name}` FINAL WHERE {_WHERE[since is not None]}"
        return await self._run(f"read {spec.name}", _read, spec, sql, _params(client_id, since))

    async def _clients(self, spec: TableSpec) -> list[str]:
        def op(client: Any) -> list[str]:
            table = client.query_arrow(f"SELECT DISTINCT `client_id` FROM `{spec.name}` FINAL",
                                       use_strings=True)
            return [str(c) for c in table.column("client_id").to_pylist()]

        return await self._run(f"list the clients of {spec.name}", op)

    async def _digest(
        self, spec: TableSpec, client_id: str, period: Period, since: dt.date | None,
        by_product: bool,
    ) -> pl.DataFrame:
        sql = digest.clickhouse_sql(spec, period, since, by_product)
        return await self._run(
            f"digest {spec.name}", _read, _DIGEST, sql, _params(client_id, since))

    async def _replace(self, write: Write) -> None:
        spec = write.spec
        if spec.extensible and not set(spec.values) <= self._features.get(spec.name, set()):
            await self._run(f"add columns to {spec.name}", _add_features, spec)
            self._features[spec.name] = set(spec.values) | self._features.get(spec.name, set())
        await self._run(write.what, _replace, write)

    async def close(self) -> None:
        if self._closed:
            return

        def close_client() -> None:
            with self._client_lock:
                self._closed = True
                client, self._client = self._client, None
            if client is not None:
                client.close()

        await asyncio.get_running_loop().run_in_executor(self._executor, close_client)


# The client's rows (from a date on): server-side parameters, nothing is inlined into the SQL.
_WHERE = {False: "`client_id` = {client:String}",
          True: "`client_id` = {client:String} AND `date` >= {since:Date32}"}
_DIGEST = TableSpec("digest", digest.DIGEST_SCHEMA, ("product_id", "period"))


def _params(client_id: str, since: dt.date | None) -> dict[str, object]:
    return {"client": client_id} if since is None else {"client": client_id, "since": since}


def _read(client: Any, spec: TableSpec, sql: str, params: dict[str, object]) -> pl.DataFrame:
    table = client.query_arrow(sql, parameters=params, use_strings=True)
    if spec.extensible:
        spec = spec.as_read(table.column_names)
    if table.num_rows == 0:
        return pl.DataFrame(schema=spec.schema)
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return cast_read(spec, frame)


def _add_features(client: Any, spec: TableSpec) -> None:
    """ADD COLUMN IF NOT EXISTS for a write's feature columns (a metadata change; idempotent)."""
    sql_type = dialect.column_type("clickhouse", pl.Float64(), key=False)
    for name in spec.values:
        client.command(dialect.add_column("clickhouse", spec.name, name, sql_type))


_ZERO = {pl.String(): "''", pl.Date(): "toDate32(0)", pl.Int32(): "toInt32(0)"}


def _fence_and_keys_sql(spec: TableSpec, since: bool) -> str:
    """ONE query for what a replace needs to know: the fence (first row) and the client's keys
    (from `since` on). The fence is the highest version written for the client's table: the
    `_version` of its rows (all parts, tombstones and replaced rows too: a merge keeps each key's
    highest version) or, for writes that inserted no row, store_versions."""
    keys = [c for c in spec.key if c != "client_id"]
    fence = (f"greatest((SELECT max(`{VERSION}`) FROM `{spec.name}` WHERE `client_id` = "
             f"{{client:String}}), (SELECT max(`{VERSION}`) FROM `{FENCE.name}` WHERE "
             "`client_id` = {client:String} AND `table_name` = {table:String}))")
    zeros = ", ".join(f"{_ZERO[spec.schema[c]]} AS `{c}`" for c in keys)
    return (f"SELECT 1 AS `_fence_row`, toUInt64({fence}) AS `_fence`, {zeros} UNION ALL "
            f"SELECT 0, toUInt64(0), {', '.join(f'`{c}`' for c in keys)} FROM `{spec.name}` "
            f"FINAL WHERE {_WHERE[since]}")


def _replace(client: Any, write: Write) -> None:
    """The fence check with the client's current keys (one query), then ONE insert of the rows
    and tombstones (or, when there are none, of the fence row). On chDB both run in this one
    call on the engine's only thread: atomic for the process."""
    spec, client_id, rows = write.spec, write.client_id, write.rows
    answer = pl.from_arrow(client.query_arrow(
        _fence_and_keys_sql(spec, write.since is not None),
        parameters={**_params(client_id, write.since), "table": spec.name}, use_strings=True))
    assert isinstance(answer, pl.DataFrame)
    write.admit(answer.filter(pl.col("_fence_row") == 1).item(0, "_fence"))
    key = list(spec.key)
    existing = answer.filter(pl.col("_fence_row") == 0).select(
        pl.lit(client_id, pl.String).alias("client_id"),
        *(pl.col(c).cast(spec.schema[c]) for c in key if c != "client_id"))
    gone = existing.join(rows.select(key), on=key, how="anti", nulls_equal=True)
    live = rows.with_columns(_deleted=pl.lit(0, pl.UInt8))
    tombstones = gone.with_columns(_deleted=pl.lit(1, pl.UInt8))
    batch = pl.concat([live, tombstones], how="diagonal")
    if batch.height:
        _insert(client, write, spec, batch)
    else:  # nothing changes in the table: the fence must still learn this version
        _insert(client, write, FENCE, pl.DataFrame(
            {"client_id": [client_id], "table_name": [spec.name]}, schema=FENCE.schema))


def _insert(client: Any, write: Write, spec: TableSpec, batch: pl.DataFrame) -> None:
    extra = [pl.lit(write.version, dtype=pl.UInt64).alias(VERSION)]
    if spec.stamp:
        extra.append(pl.lit(write.stamp, dtype=STAMP_DTYPE).alias(spec.stamp))
    client.insert_arrow(spec.name, batch.with_columns(extra).rechunk().to_arrow())
