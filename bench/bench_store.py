"""Store I/O benchmark: feature rows (client_id, product_id, date, feature, value) per backend.

    .venv/bin/python bench/bench_store.py                       # 100k and 1M rows, chDB + MariaDB
    .venv/bin/python bench/bench_store.py --rows 100000 --repeat 3
    .venv/bin/python bench/bench_store.py --backends mysql --mysql-dsn mysql://root@127.0.0.1:3306/x

For every backend and size, through the public `Store` API (conform + I/O, as the app sees it):
- write:   `replace` for a new client (nothing to delete);
- replace: `replace` of the same client with new values (the old rows go: DELETE on MySQL,
           tombstones on ClickHouse);
- read:    `read` of the client.
For the MySQL protocol it also times pymysql's `executemany` writing the same rows (DELETE + insert
in one transaction, the rows turned into tuples first, as a caller would), interleaved with the
store's multi-row INSERT path, and prints the ratio. The machine's CPU speed drifts (±30% over
minutes): compare figures from one run. The MySQL database is the DSN's server with a private,
temporary database (`sm_bench_<random>`); chDB is in memory unless --chdb-dsn says otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import polars as pl
import pymysql

from store import Store, open_store, parse_dsn

DEFAULT_MYSQL = os.environ.get("TEST_MYSQL_DSN", "mysql://root@127.0.0.1:3306/test")


def features(client_id: str, n: int, seed: int = 0) -> pl.DataFrame:
    """n rows: 1000 products x n/1000 days x one feature (like a client's ema_7 history)."""
    return pl.DataFrame({"i": pl.int_range(n, eager=True)}).select(
        pl.lit(client_id, pl.String).alias("client_id"),
        pl.format("sku-{}", (pl.col("i") % 1000).cast(pl.String).str.pad_start(5, "0"))
        .alias("product_id"),
        (pl.lit(dt.date(2015, 1, 1)) + pl.duration(days=pl.col("i") // 1000))
        .cast(pl.Date)
        .alias("date"),
        pl.lit("ema_7", pl.String).alias("feature"),
        ((pl.col("i") + seed).cast(pl.Float64) / 7.3).alias("value"),
    )


T = TypeVar("T")


async def timed(work: Awaitable[T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = await work
    return time.perf_counter() - start, result


def rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:>12,.0f}/s ({seconds:6.2f} s)"


async def bench_store(
    store: Store,
    n: int,
    repeat: int,
    reset: Callable[[], Awaitable[None]],
    settle: Callable[[], Awaitable[None]],
) -> dict[str, float]:
    """Median seconds of write/replace/read for n rows."""
    out: dict[str, list[float]] = {"write": [], "replace": [], "read": []}
    for r in range(repeat):
        client = f"bench-{uuid.uuid4().hex[:8]}"
        first, second = features(client, n), features(client, n, seed=r + 1)
        out["write"].append((await timed(store.replace("features", client, first)))[0])
        out["replace"].append((await timed(store.replace("features", client, second)))[0])
        await settle()
        seconds, got = await timed(store.read("features", client))
        out["read"].append(seconds)
        assert got.height == n, (got.height, n)
        await reset()
    return {k: statistics.median(v) for k, v in out.items()}


def executemany_write(dsn: str, frame: pl.DataFrame) -> float:
    """The baseline: pymysql executemany (builds multi-row INSERTs itself, escaping in Python)."""
    d = parse_dsn(dsn)
    conn = pymysql.connect(host=d.host, port=d.port, user=d.user or None, password=d.password,
                           database=d.database, charset="utf8mb4", autocommit=True)
    stamp = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    client = frame.item(0, "client_id")
    start = time.perf_counter()
    rows = [(*row, stamp) for row in frame.iter_rows()]
    with conn.cursor() as cur:
        conn.begin()
        cur.execute("DELETE FROM features WHERE client_id = %s", (client,))
        cur.executemany(
            "INSERT INTO features (client_id, product_id, date, feature, value, computed_at) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            rows,
        )
        conn.commit()
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def truncate(dsn: str) -> None:
    """Empty the features table, then let InnoDB finish purging what earlier DELETEs left (it
    slows the next inserts down by 2-4x while it runs, which would make timings meaningless)."""
    d = parse_dsn(dsn)
    conn = pymysql.connect(host=d.host, port=d.port, user=d.user or None, password=d.password,
                           database=d.database, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("TRUNCATE TABLE features")
    conn.close()
    wait_for_purge(dsn)


def wait_for_purge(dsn: str, timeout: float = 60) -> None:
    d = parse_dsn(dsn)
    conn = pymysql.connect(host=d.host, port=d.port, user=d.user or None, password=d.password,
                           autocommit=True)
    with conn.cursor() as cur:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            cur.execute("SHOW GLOBAL STATUS LIKE 'Innodb_history_list_length'")
            row = cur.fetchone()
            if row is None or int(row[1]) < 1000:
                break
            time.sleep(0.2)
    conn.close()


async def compare_mysql_writes(
    store: Store, dsn: str, n: int, repeat: int, reset: Callable[[], Awaitable[None]]
) -> tuple[float, float]:
    """Interleaved: the store's multi-row INSERT path vs executemany, same rows, empty table."""
    ours: list[float] = []
    theirs: list[float] = []
    await reset()
    for _ in range(repeat):
        client = f"cmp-{uuid.uuid4().hex[:8]}"
        frame = features(client, n)
        ours.append((await timed(store.replace("features", client, frame)))[0])
        await reset()
        theirs.append(await asyncio.to_thread(executemany_write, dsn, frame))
        await reset()
    return statistics.median(ours), statistics.median(theirs)


def private_mysql_database(dsn: str) -> tuple[str, Callable[[], None]] | None:
    d = parse_dsn(dsn)
    try:
        conn = pymysql.connect(host=d.host, port=d.port, user=d.user or None, password=d.password,
                               autocommit=True, connect_timeout=3)
    except pymysql.err.MySQLError as exc:
        print(f"mysql: not reachable at {d.host}:{d.port} ({exc.args[-1]}); skipped")
        return None
    database = f"sm_bench_{uuid.uuid4().hex[:8]}"
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{database}`")
        cur.execute("SELECT VERSION()")
        (version,) = cur.fetchone() or ("?",)
        print(f"mysql: {version} at {d.host}:{d.port}, database {database}")

    def drop() -> None:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        conn.close()

    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}", query="")), drop


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--backends", nargs="+", choices=["chdb", "mysql"], default=["chdb", "mysql"])
    ap.add_argument("--mysql-dsn", default=DEFAULT_MYSQL)
    ap.add_argument("--chdb-dsn", default="chdb://")
    ap.add_argument("--repeat", type=int, default=1, help="runs per case (median reported)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the executemany comparison")
    args = ap.parse_args()

    print(f"python {sys.version.split()[0]}, polars {pl.__version__}, "
          f"pymysql {version('PyMySQL')}, clickhouse-connect {version('clickhouse-connect')}")
    for backend in args.backends:
        cleanup: Callable[[], None] | None = None
        if backend == "chdb":
            import chdb

            dsn = args.chdb_dsn
            print(f"chdb: {chdb.__version__} (engine {chdb.engine_version}) at {dsn}")
        else:
            found = private_mysql_database(args.mysql_dsn)
            if found is None:
                continue
            dsn, cleanup = found
        store = open_store(dsn)

        async def reset(backend: str = backend, dsn: str = dsn) -> None:
            if backend == "mysql":
                await asyncio.to_thread(truncate, dsn)
            # chDB: the clients' rows stay (in memory); each case uses a new client

        async def settle(backend: str = backend, dsn: str = dsn) -> None:
            if backend == "mysql":
                await asyncio.to_thread(wait_for_purge, dsn)

        try:
            await store.create_tables()
            await store.replace("features", "warm-up", features("warm-up", 1000))
            await reset()
            for n in args.rows:
                t = await bench_store(store, n, args.repeat, reset, settle)
                print(f"  {store.name:<6} {n:>9,} rows  write {rate(n, t['write'])}  "
                      f"replace {rate(n, t['replace'])}  read {rate(n, t['read'])}")
            if backend == "mysql" and not args.no_baseline:
                for n in args.rows:
                    ours, theirs = await compare_mysql_writes(store, dsn, n, args.repeat, reset)
                    print(f"  mysql  {n:>9,} rows  multi-row INSERT {rate(n, ours)}  "
                          f"executemany {rate(n, theirs)}  -> {theirs / ours:.2f}x faster")
        finally:
            await store.close()
            if cleanup:
                cleanup()


if __name__ == "__main__":
    asyncio.run(main())
