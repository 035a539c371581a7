"""Store I/O benchmark: rows/s per backend and path, in one interleaved run, with ratios.

    .venv/bin/python bench/bench_store.py                        # 100k wide rows, chDB + MariaDB
    .venv/bin/python bench/bench_store.py --rows 100000 1000000 --repeat 3
    .venv/bin/python bench/bench_store.py --backends mysql --mysql-dsn mysql://root@127.0.0.1/x

The data is a client's feature store: daily_features, 100 products x N/100 days, 13 Float64
feature columns (the default parameters' ema/ma/std/lag/stock columns). Everything goes through
the public `Store` API (conform + I/O, as the app sees it); each MySQL path is the same store
opened with another DSN option. Per backend and size:

- write      `replace` of a new client (nothing to delete)
- replace    `replace` of the same client with new values (the old rows go)
- read       `read` of the client
- day        `replace(..., since=last day)`: one appended day rewritten (100 rows)
- read 60d   `read(..., since=)` of the last 60 days (what an incremental recompute reads)
- digest     `digest("sales")` of the client's 100k-row sales: the server-side change check
Each round's client is deleted afterwards, so the tables stay at about one client's size (on
MariaDB, a table that outgrows the 128 MB buffer pool turns every write into disk reads).

MariaDB paths, interleaved case by case: reads connectorx (default) vs pymysql (`?read=pymysql`),
writes LOAD DATA LOCAL INFILE (default) vs multi-row INSERT VALUES (`?write=values`), and the
baseline a user would write by hand: pymysql `executemany` (DELETE + INSERT in one transaction).
Ratios are printed from the same run (this machine's CPU speed drifts +-30% over minutes).
MariaDB gets a private database (dropped afterwards); before each write InnoDB is let finish
purging what earlier DELETEs left (it slows inserts 2-4x while it runs). StarRocks is not here:
only a protocol simulation of it exists on this machine, and its speed would be the simulation's.
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import polars as pl
import pymysql

from store import Store, empty_frame, open_store, parse_dsn
from store.schema import feature_columns, table_spec

DEFAULT_MYSQL = os.environ.get("TEST_MYSQL_DSN", "mysql://root@127.0.0.1:3306/test")
PRODUCTS = 100


class Params:  # the default feature parameters (features.FeatureParams), without importing it
    ema_spans = ma_windows = std_windows = (7, 28)
    lags = (1, 7, 28)


FEATURES = feature_columns(Params())
KEY = ["client_id", "product_id", "date"]
START = dt.date(2020, 1, 1)


def wide(client: str, n: int, seed: int = 0, first_day: int = 0) -> pl.DataFrame:
    """n rows of daily_features: PRODUCTS products x n/PRODUCTS days from START + first_day."""
    i = pl.int_range(n, eager=True)
    return pl.DataFrame({"i": i}).select(
        pl.lit(client).alias("client_id"),
        pl.format("sku-{}", (pl.col("i") % PRODUCTS).cast(pl.String).str.pad_start(4, "0"))
        .alias("product_id"),
        (pl.lit(START) + pl.duration(days=pl.col("i") // PRODUCTS + first_day)).cast(pl.Date)
        .alias("date"),
        *[((pl.col("i") * (k + 1) + seed) / 7.3).alias(name) for k, name in enumerate(FEATURES)],
    )


def sales(client: str, n: int) -> pl.DataFrame:
    return wide(client, n).select(
        "client_id", "product_id", "date", qty=pl.col(FEATURES[0]), amount=pl.col(FEATURES[1]))


async def timed(work: Awaitable[Any]) -> float:
    start = time.perf_counter()
    await work
    return time.perf_counter() - start


def rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:>11,.0f} rows/s ({seconds * 1000:8.1f} ms)"


# --- MariaDB housekeeping and the hand-written baseline -----------------------------------------


def _connect(dsn: str, database: bool = True) -> pymysql.connections.Connection:
    d = parse_dsn(dsn)
    return pymysql.connect(host=d.host, port=d.port, user=d.user or None, password=d.password,
                           database=d.database if database else None, charset="utf8mb4",
                           autocommit=True, connect_timeout=3)


def wait_for_purge(dsn: str, timeout: float = 60) -> None:
    conn = _connect(dsn, database=False)
    with conn.cursor() as cur:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            cur.execute("SHOW GLOBAL STATUS LIKE 'Innodb_history_list_length'")
            row = cur.fetchone()
            if row is None or int(row[1]) < 1000:
                break
            time.sleep(0.2)  # a bench's pause for the server's housekeeping, not a test's sync
    conn.close()


def executemany_write(dsn: str, frame: pl.DataFrame) -> float:
    """DELETE + pymysql executemany in one transaction: what one writes without the store."""
    conn = _connect(dsn)
    client = frame.item(0, "client_id")
    cols = [*frame.columns, "computed_at"]
    stamp = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    start = time.perf_counter()
    rows = [(*row, stamp) for row in frame.iter_rows()]
    with conn.cursor() as cur:
        conn.begin()
        cur.execute("DELETE FROM daily_features WHERE client_id = %s", (client,))
        cur.executemany(f"INSERT INTO daily_features ({', '.join(cols)}) "
                        f"VALUES ({', '.join(['%s'] * len(cols))})", rows)
        conn.commit()
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def pymysql_fetchall(dsn: str, client: str) -> float:
    """SELECT + fetchall + polars frame: the plain pymysql read."""
    conn = _connect(dsn)
    start = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM daily_features WHERE client_id = %s", (client,))
        rows = cur.fetchall()
        names = [d[0] for d in cur.description or ()]
    pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


# --- the cases ---------------------------------------------------------------------------------


async def warm_up(store: Store) -> None:
    """Connections opened, feature columns added, caches filled: not what a case measures."""
    await store.replace("daily_features", "warm-up", wide("warm-up", 1000))
    await store.read("daily_features", "warm-up")
    await store.replace("sales", "warm-up", sales("warm-up", 1000))
    await store.digest("sales", "warm-up")


async def store_cases(store: Store, n: int, repeat: int, settle: Callable[[], Awaitable[None]]
                      ) -> dict[str, float]:
    """Median seconds per case for one store (one path)."""
    out: dict[str, list[float]] = {}

    def add(case: str, seconds: float) -> None:
        out.setdefault(case, []).append(seconds)

    days = n // PRODUCTS
    for r in range(repeat):
        client = f"bench-{uuid.uuid4().hex[:8]}"
        await settle()
        add("write", await timed(store.replace("daily_features", client, wide(client, n))))
        await settle()
        add("replace", await timed(store.replace("daily_features", client,
                                                 wide(client, n, seed=r + 1))))
        await settle()
        add("read", await timed(store.read("daily_features", client)))
        last = START + dt.timedelta(days=days - 1)
        day = wide(client, PRODUCTS, seed=r + 2, first_day=days - 1)
        add("day", await timed(store.replace("daily_features", client, day, since=last)))
        add("read 60d", await timed(store.read("daily_features", client,
                                               since=last - dt.timedelta(days=59))))
        await store.replace("sales", client, sales(client, n))
        add("digest", await timed(store.digest("sales", client)))
        for table in ("daily_features", "sales"):  # keep the tables at one client's size
            await store.replace(table, client, empty_frame(table_spec(table)))
    return {case: statistics.median(v) for case, v in out.items()}


def report(name: str, n: int, t: dict[str, float]) -> None:
    days = n // PRODUCTS
    rows = {"write": n, "replace": n, "read": n, "day": PRODUCTS,
            "read 60d": min(60, days) * PRODUCTS, "digest": n}
    for case, seconds in t.items():
        print(f"  {name:<22} {n:>9,}  {case:<9} {rate(rows[case], seconds)}")


_WRITES, _READS = "LOAD DATA vs INSERT VALUES", "connectorx vs pymysql"
_COMPARED = {"write": _WRITES, "replace": _WRITES, "day": _WRITES, "read": _READS,
             "read 60d": _READS}


async def bench_mysql(server_dsn: str, sizes: list[int], repeat: int, baseline: bool) -> None:
    try:
        admin = _connect(server_dsn, database=False)
    except pymysql.err.MySQLError as exc:
        print(f"mysql: not reachable ({exc.args[-1]}); skipped")
        return
    database = f"sm_bench_{uuid.uuid4().hex[:8]}"
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{database}`")
        cur.execute("SELECT VERSION()")
        print(f"mysql: {(cur.fetchone() or ('?',))[0]}, database {database}")
    dsn = server_dsn.rsplit("/", 1)[0] + f"/{database}"
    paths = {"load_data+connectorx": "", "values+pymysql": "?write=values&read=pymysql"}
    stores = {name: open_store(dsn + query) for name, query in paths.items()}

    async def settle() -> None:
        await asyncio.to_thread(wait_for_purge, dsn)

    try:
        await stores["load_data+connectorx"].create_tables()
        for store in stores.values():
            await warm_up(store)
        for n in sizes:
            results: dict[str, list[dict[str, float]]] = {name: [] for name in stores}
            for _ in range(repeat):  # interleaved: path by path, one round at a time
                for name, store in stores.items():
                    results[name].append(await store_cases(store, n, 1, settle))
            medians = {name: {c: statistics.median(r[c] for r in runs) for c in runs[0]}
                       for name, runs in results.items()}
            for name, t in medians.items():
                report(f"mysql {name}", n, t)
            fast, slow = medians["load_data+connectorx"], medians["values+pymysql"]
            for case, what in _COMPARED.items():
                print(f"  mysql ratio {case:<9} {slow[case] / fast[case]:5.2f}x  ({what})")
            if baseline:
                hand_w, hand_r = [], []
                for _ in range(repeat):
                    client = f"hand-{uuid.uuid4().hex[:8]}"
                    await settle()
                    hand_w.append(await asyncio.to_thread(executemany_write, dsn, wide(client, n)))
                    hand_r.append(await asyncio.to_thread(pymysql_fetchall, dsn, client))
                w, r = statistics.median(hand_w), statistics.median(hand_r)
                print(f"  mysql by hand {n:>9,}  executemany {rate(n, w)}  fetchall {rate(n, r)}")
                print(f"  mysql ratio store/hand: write {w / fast['write']:5.2f}x, "
                      f"read {r / fast['read']:5.2f}x")
    finally:
        for store in stores.values():
            await store.close()
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        admin.close()


async def bench_chdb(dsn: str, sizes: list[int], repeat: int) -> None:
    import chdb

    print(f"chdb: {chdb.__version__} (engine {chdb.engine_version}) at {dsn}")
    store = open_store(dsn)
    try:
        await store.create_tables()
        await warm_up(store)

        async def settle() -> None:
            return None

        for n in sizes:
            report("chdb", n, await store_cases(store, n, repeat, settle))
    finally:
        await store.close()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000])
    ap.add_argument("--backends", nargs="+", choices=["chdb", "mysql"], default=["chdb", "mysql"])
    ap.add_argument("--mysql-dsn", default=DEFAULT_MYSQL)
    ap.add_argument("--chdb-dsn", default="chdb://")
    ap.add_argument("--repeat", type=int, default=3, help="runs per case (median reported)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the hand-written pymysql")
    args = ap.parse_args()
    assert table_spec("daily_features").extensible
    print(f"python {sys.version.split()[0]}, polars {pl.__version__}, pymysql "
          f"{version('PyMySQL')}, connectorx {version('connectorx')}, clickhouse-connect "
          f"{version('clickhouse-connect')}; {len(FEATURES)} feature columns, {PRODUCTS} products")
    for backend in args.backends:
        if backend == "chdb":
            await bench_chdb(args.chdb_dsn, args.rows, args.repeat)
        else:
            await bench_mysql(args.mysql_dsn, args.rows, args.repeat, not args.no_baseline)


if __name__ == "__main__":
    asyncio.run(main())
