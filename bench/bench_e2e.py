"""End-to-end latency: a `sales_updated` XADD → the `features_updated` entry, through the real app.

    .venv/bin/python bench/bench_e2e.py [--events 10] [--products 100] [--days 1000]
                                        [--backends chdb mysql] [--redis-url URL]

For each store backend, a client with products x days sales rows (100 x 1000 = 100,000 by
default, plus a weekly stock row per product) is seeded through the app's own store layer, then
`faststream run app:app` is started as a subprocess (production defaults from app.config, logs
at INFO) and sent sequential `sales_updated` events with a plain XADD; each waits for its
`features_updated` on `features-updates` before the next is sent. One warm-up event (the first
one pays for imports, polars and engine warm-up) is reported apart.

Backends:
- chdb:  embedded chDB in a fresh directory. Its on-disk data belongs to one process at a time
         (SPEC §10), so the data is seeded by a child process that exits before the app starts.
- mysql: MariaDB (the MySQL-protocol stand-in for StarRocks) at 127.0.0.1:3306 (or --mysql-dsn's
         server, or a private mariadbd), in a database of the bench's own, dropped afterwards.

Redis: a private redis-server by default, so that no other worker in `secretmagic-group` on a
shared Redis takes the bench's events (the app's streams have fixed names).

Per event: latency (XADD → entry seen by the bench's XREAD), the app's own `processing_time_ms`
(from the event's data: the store reads, the polars computation and the replace of the features),
and the messaging overhead = latency − processing_time (reading the group, decoding, duplicate
check, handler dispatch, publish with XADD, ack, and the bench's XREAD wake-up). Also shown: the
app's span on the Redis clock (features_updated entry id − sales_updated entry id, ms resolution),
and compute-only = `features.compute_features` on the same data in the bench process (best of 3),
so processing_time − compute ≈ the store reads and writes.
"""

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the repo's top-level modules

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import redis  # noqa: E402

from settings import Config  # noqa: E402
from tests import services  # noqa: E402
from tests.harness import (  # noqa: E402
    AppProcess,
    Entries,
    StreamEntries,
    job,
    messenger_env,
    write_config,
)

CLIENT = "bench-client"
START = date(2022, 1, 1)
IN_STREAM, OUT_STREAM = "sales-updates", "features-updates"


def synthetic(products: int, days: int, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(sales, stock) of CLIENT: every product sells every day; stock weekly per product."""
    rng = np.random.default_rng(seed)
    product = np.repeat(np.arange(products), days)
    day = np.tile(np.arange(days), products)
    base = rng.uniform(1, 50, products)[product]
    qty = rng.poisson(base * (1 + 0.3 * np.sin(2 * np.pi * day / 7))).astype(np.float64)
    dates = pl.date_range(START, START + timedelta(days=days - 1), eager=True)
    pid = pl.Series(product).cast(pl.Utf8).str.zfill(5)
    sales = pl.DataFrame({"client_id": CLIENT, "product_id": "p" + pid, "date": dates.gather(day),
                          "qty": qty, "amount": qty * 9.99})
    weekly = day % 7 == 0
    stock = pl.DataFrame({"client_id": CLIENT, "product_id": "p" + pid.filter(weekly),
                          "date": dates.gather(day[weekly]),
                          "on_hand": rng.uniform(0, 500, int(weekly.sum())).round()})
    return sales, stock


def seed(dsn: str, products: int, days: int) -> None:
    """Child-process mode: write the client's data through the app's store, then exit."""
    import asyncio

    from store import open_store

    async def run() -> None:
        sales, stock = synthetic(products, days)
        store = open_store(dsn)
        try:
            started = time.perf_counter()
            await store.create_tables()
            await store.replace("sales", CLIENT, sales)
            await store.replace("stock", CLIENT, stock)
            print(f"seeded {sales.height:,} sales + {stock.height:,} stock rows in "
                  f"{time.perf_counter() - started:.1f} s", flush=True)
        finally:
            await store.close()

    asyncio.run(run())


def compute_only(products: int, days: int) -> float:
    """Seconds for features.compute_features on the same data in this process (best of 3)."""
    from features import FeatureParams, compute_features

    sales, stock = synthetic(products, days)
    best = math.inf
    for _ in range(3):
        started = time.perf_counter()
        compute_features(sales, stock, None, FeatureParams())
        best = min(best, time.perf_counter() - started)
    return best


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def one_event(r: redis.Redis, timeout: float = 300.0) -> dict[str, Any]:
    """XADD a sales_updated; wait for its features_updated; return the figures."""
    last = cast(Entries, r.xrevrange(OUT_STREAM, "+", "-", count=1))
    cursor = last[0][0] if last else b"0-0"
    fields = job(CLIENT, "sales_updated", integration_id="bench", table_name="sales")
    started = time.perf_counter()
    in_id = cast(bytes, r.xadd(IN_STREAM, fields))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = cast(StreamEntries, r.xread({OUT_STREAM: cursor}, block=1000, count=100))
        seen = time.perf_counter()
        for _, entries in reply or ():
            for out_id, out in entries:
                cursor = out_id
                if out.get(b"client_id") == CLIENT.encode() and out.get(
                        b"event_type") == b"features_updated":
                    data = json.loads(out[b"data"])
                    latency = (seen - started) * 1e3
                    return {
                        "latency_ms": latency,
                        "processing_ms": float(data["processing_time_ms"]),
                        "overhead_ms": latency - data["processing_time_ms"],
                        "redis_span_ms": _ms(out_id) - _ms(in_id),
                        "features": data["features_count"],
                        "rows": data.get("rows", 0),
                    }
    raise TimeoutError(f"no features_updated for {CLIENT} within {timeout:.0f}s")


def _ms(entry_id: bytes) -> int:
    return int(entry_id.split(b"-")[0])


def run_backend(name: str, dsn: str, redis_url: str, args: argparse.Namespace,
                workdir: Path) -> dict[str, Any]:
    print(f"\n== {name}: STORE_DSN={dsn}", flush=True)
    subprocess.run([sys.executable, __file__, "--seed", dsn, "--products", str(args.products),
                    "--days", str(args.days)], check=True, cwd=ROOT)
    r = redis.Redis.from_url(redis_url)
    r.delete(IN_STREAM, OUT_STREAM)
    config = write_config(workdir / f"{name}.yaml", Config())  # the production defaults
    app = AppProcess("app:app", {**messenger_env(redis_url), "STORE_DSN": dsn,
                                 "SECRETMAGIC_CONFIG": str(config), "LOGS_LEVEL": "INFO"},
                     workdir, f"bench-e2e-{name}")
    try:
        started = time.perf_counter()
        app.start()
        app.wait_output(f"consuming {IN_STREAM}", timeout=120)
        services.wait_for(lambda: any(g["name"] == b"secretmagic-group"
                                      for g in r.xinfo_groups(IN_STREAM)), 30, "the group")
        print(f"app ready in {time.perf_counter() - started:.1f} s", flush=True)
        warm = one_event(r)
        print(f"  warm-up  latency {warm['latency_ms']:8.1f} ms  processing "
              f"{warm['processing_ms']:6.0f} ms  ({warm['features']} features, "
              f"{warm['rows']:,} rows)", flush=True)
        results = []
        for i in range(args.events):
            res = one_event(r)
            results.append(res)
            print(f"  event {i + 1:>2} latency {res['latency_ms']:8.1f} ms  processing "
                  f"{res['processing_ms']:6.0f} ms  overhead {res['overhead_ms']:6.1f} ms  "
                  f"redis span {res['redis_span_ms']:6d} ms", flush=True)
    except BaseException:
        print(f"  the app's log (tail):\n{app.output[-3000:]}", file=sys.stderr)
        raise
    finally:
        app.stop()
        r.close()
    code = app.proc.returncode if app.proc else None
    if code != 0:
        print(f"  note: the app exited with {code}; its log:\n{app.output[-2000:]}")
    return {"name": name, "warm": warm, "results": results, "exit": code}


def summary(runs: list[dict[str, Any]], compute_s: float, args: argparse.Namespace) -> None:
    rows = args.products * args.days
    print(f"\nend-to-end, {rows:,} sales rows ({args.products} products x {args.days} days), "
          f"{args.events} sequential events per backend, ms:")
    print(f"{'backend':<8} {'p50':>8} {'p95':>8} {'proc p50':>9} {'overhead p50':>13} "
          f"{'overhead p95':>13} {'redis span p50':>15} {'store I/O p50':>14} {'warm-up':>8}")
    for run in runs:
        res = run["results"]
        lat = [x["latency_ms"] for x in res]
        proc = [x["processing_ms"] for x in res]
        over = [x["overhead_ms"] for x in res]
        span = [x["redis_span_ms"] for x in res]
        print(f"{run['name']:<8} {statistics.median(lat):8.0f} {nearest_rank(lat, 0.95):8.0f} "
              f"{statistics.median(proc):9.0f} {statistics.median(over):13.1f} "
              f"{nearest_rank(over, 0.95):13.1f} {statistics.median(span):15.0f} "
              f"{statistics.median(proc) - compute_s * 1e3:14.0f} "
              f"{run['warm']['latency_ms']:8.0f}")
    print(f"compute only (features.compute_features in this process, best of 3): "
          f"{compute_s * 1e3:.0f} ms; store I/O = processing − compute; "
          f"load average at the end {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--products", type=int, default=100)
    parser.add_argument("--days", type=int, default=1000)
    parser.add_argument("--backends", nargs="+", choices=["chdb", "mysql"],
                        default=["chdb", "mysql"])
    parser.add_argument("--redis-url", help="default: a private redis-server")
    parser.add_argument("--mysql-dsn", help="a server DSN; the bench uses a database of its own")
    parser.add_argument("--seed", help=argparse.SUPPRESS)  # child-process mode
    args = parser.parse_args()
    if args.seed:
        seed(args.seed, args.products, args.days)
        return

    workdir = Path(tempfile.mkdtemp(prefix="sm-bench-e2e-"))
    private_redis = None
    if args.redis_url:
        redis_url = args.redis_url
    else:
        private_redis = services.PrivateRedis().start()
        redis_url = private_redis.url
    mysql_server = None
    mysql_dsn = None  # the bench's own database, dropped at the end
    runs = []
    try:
        print(f"Redis at {redis_url}{' (private redis-server)' if private_redis else ''}; "
              f"workdir {workdir}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
        compute_s = compute_only(args.products, args.days)
        for backend in args.backends:
            if backend == "chdb":
                dsn = f"chdb://{workdir / 'chdb'}"
            else:
                server, mysql_server = (args.mysql_dsn, None) if args.mysql_dsn else \
                    services.find_mysql()
                dsn = mysql_dsn = _create_database(server, f"sm_bench_{uuid.uuid4().hex[:8]}")
            runs.append(run_backend(backend, dsn, redis_url, args, workdir))
        summary(runs, compute_s, args)
    finally:
        if mysql_dsn:
            _drop_database(mysql_dsn)
        if mysql_server:
            mysql_server.close()
        if private_redis:
            private_redis.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _sql(dsn: str, statement: str) -> None:
    """Run one statement on the server of a mysql:// DSN (no database selected)."""
    import pymysql

    from store import parse_dsn

    d = parse_dsn(dsn)
    conn = pymysql.connect(host=d.host, port=d.port, user=d.user or "root", password=d.password,
                           autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def _create_database(server_dsn: str, database: str) -> str:
    """`server_dsn` pointed at a new database `database` (created)."""
    _sql(server_dsn, f"CREATE DATABASE IF NOT EXISTS `{database}`")
    head, _, _ = server_dsn.partition("?")[0].rpartition("/")
    return f"{head}/{database}"


def _drop_database(dsn: str) -> None:
    from store import parse_dsn

    _sql(dsn, f"DROP DATABASE IF EXISTS `{parse_dsn(dsn).database}`")


if __name__ == "__main__":
    main()
