"""End-to-end latency: a `sales_updated` XADD → the `features_updated` entry, through the real app.

    .venv/bin/python bench/bench_e2e.py [--rounds 3] [--products 100] [--days 1000]
                                        [--backends chdb mysql] [--redis-url URL]

For each store backend, three clients with products x days sales rows each (100 x 1000 = 100,000
by default, plus a weekly stock row per product), seeded through the app's own store layer, and
`faststream run app:app` (production defaults, logs at INFO) sent sequential `sales_updated`
events with a plain XADD, each waiting for its `features_updated` on `features-updates`:

    round 0   every client's first recompute (in full; the first pays for imports and warm-up)
    round k   the app stopped, one day appended to every client's sales (and client "full"'s
              input_digests cleared, so that it recomputes in full), the app started again:
              warm (incremental; warms the new process up), full (a full recompute that
              replaces the 100k wide rows there), append (one appended day, with data.date_from)

chDB's on-disk data belongs to one process at a time (SPEC §10), so the seeding and each round's
changes are made by a child process while the app is stopped (the same on MariaDB, for one
procedure). Per event: latency (XADD → entry seen by the bench's XREAD), the app's
`processing_time_ms` and its stages (check: the digests; read; compute; write), rows read and
written, and messaging = latency − processing (reading the group, decoding, duplicate check,
dispatch, publish, ack, the bench's XREAD wake-up). Compute-only in the same run, in the bench
process: features.compute on one client's data (full) and features.compute_since of one
appended day (best of 3 each), and the ratios end-to-end ÷ compute-only.
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


CLIENTS = {"warm": f"{CLIENT}-warm", "full": f"{CLIENT}-full", "append": CLIENT}


def seed(dsn: str, products: int, days: int, round_no: int, rounds: int) -> None:
    """Child-process mode. Round 0: the clients' sales up to the last `rounds` days and their
    stock; round k: the k-th of those days appended, the full client's digests cleared."""
    import asyncio

    from store import empty_frame, open_store, table_spec

    async def run() -> None:
        sales, stock = synthetic(products, days)
        dates = sales.get_column("date").unique().sort()
        until = dates[days - rounds + round_no - 1] if days - rounds + round_no >= 1 else None
        upto = sales.filter(pl.col("date") <= until) if until is not None else sales.head(0)
        store = open_store(dsn)
        try:
            started = time.perf_counter()
            await store.create_tables()
            for client in CLIENTS.values():
                mine = upto.with_columns(client_id=pl.lit(client))
                if round_no == 0:
                    await store.replace("sales", client, mine)
                    await store.replace("stock", client, stock.with_columns(
                        client_id=pl.lit(client)))
                else:  # the new day only
                    await store.replace("sales", client, mine.filter(pl.col("date") == until),
                                        since=until)
            if round_no:
                await store.replace("input_digests", CLIENTS["full"],
                                    empty_frame(table_spec("input_digests")))
            print(f"round {round_no}: sales to {until} written in "
                  f"{time.perf_counter() - started:.1f} s", flush=True)
        finally:
            await store.close()

    asyncio.run(run())


def compute_only(products: int, days: int) -> dict[str, float]:
    """Seconds, best of 3, in this process: features.compute of a client (full) and
    features.compute_since of its last day appended (from what the full compute before it
    stored)."""
    import datetime as dt

    from features import FeatureParams, compute, compute_since, plan_from

    params = FeatureParams()
    sales, stock = synthetic(products, days)
    last = sales.get_column("date").max()
    assert isinstance(last, dt.date)
    before = compute(sales.filter(pl.col("date") < last), stock, None, params)
    plan = plan_from(last, params)
    recent = sales.filter(pl.col("date") >= plan.read_since)
    stored = before.wide.filter(pl.col("date") >= plan.read_since)
    stored_profiles = before.profiles.with_columns(pl.col("qty_sum").cast(pl.String))
    runs = {"full": lambda: compute(sales, stock, None, params),
            "append": lambda: compute_since(plan, recent, stock, None, params, stored,
                                            stored_profiles)}
    best = dict.fromkeys(runs, math.inf)
    for _ in range(3):
        for name, fn in runs.items():
            started = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def one_event(r: redis.Redis, client: str, data: dict[str, Any],
              timeout: float = 300.0) -> dict[str, Any]:
    """XADD a sales_updated for `client`; wait for its features_updated; return the figures."""
    last = cast(Entries, r.xrevrange(OUT_STREAM, "+", "-", count=1))
    cursor = last[0][0] if last else b"0-0"
    fields = job(client, "sales_updated", integration_id="bench", table_name="sales", **data)
    started = time.perf_counter()
    in_id = cast(bytes, r.xadd(IN_STREAM, fields))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = cast(StreamEntries, r.xread({OUT_STREAM: cursor}, block=1000, count=100))
        seen = time.perf_counter()
        for _, entries in reply or ():
            for out_id, out in entries:
                cursor = out_id
                if out.get(b"client_id") == client.encode() and out.get(
                        b"event_type") == b"features_updated":
                    done = json.loads(out[b"data"])
                    latency = (seen - started) * 1e3
                    return {
                        "latency_ms": latency,
                        "processing_ms": float(done["processing_time_ms"]),
                        "messaging_ms": latency - done["processing_time_ms"],
                        "redis_span_ms": _ms(out_id) - _ms(in_id),
                        "stages": done.get("stages_ms", {}),
                        "read": sum(done.get("rows_read", {}).values()),
                        "rows": done.get("rows", 0) + done.get("profile_rows", 0),
                        "incremental": done.get("incremental"),
                    }
    raise TimeoutError(f"no features_updated for {client} within {timeout:.0f}s")


def _ms(entry_id: bytes) -> int:
    return int(entry_id.split(b"-")[0])


def _show(label: str, res: dict[str, Any]) -> None:
    stages = " ".join(f"{k} {v}" for k, v in res["stages"].items())
    print(f"  {label:<8} latency {res['latency_ms']:7.1f} ms  processing "
          f"{res['processing_ms']:5.0f} ms ({stages})  messaging {res['messaging_ms']:5.1f} ms  "
          f"read {res['read']:,} written {res['rows']:,} rows", flush=True)


def run_backend(name: str, dsn: str, redis_url: str, args: argparse.Namespace,
                workdir: Path) -> dict[str, Any]:
    print(f"\n== {name}: STORE_DSN={dsn}", flush=True)
    r = redis.Redis.from_url(redis_url)
    r.delete(IN_STREAM, OUT_STREAM)
    config = write_config(workdir / f"{name}.yaml", Config())  # the production defaults
    results: dict[str, list[dict[str, Any]]] = {"full": [], "append": []}
    first: dict[str, Any] = {}
    for round_no in range(args.rounds + 1):
        subprocess.run([sys.executable, __file__, "--seed", dsn, "--products",
                        str(args.products), "--days", str(args.days), "--round", str(round_no),
                        "--rounds", str(args.rounds)], check=True, cwd=ROOT)
        app = AppProcess("app:app", {**messenger_env(redis_url), "STORE_DSN": dsn,
                                     "SECRETMAGIC_CONFIG": str(config), "LOGS_LEVEL": "INFO"},
                         workdir, f"bench-e2e-{name}-{round_no}")
        try:
            app.start()
            app.wait_output(f"consuming {IN_STREAM}", timeout=120)
            services.wait_for(lambda: any(g["name"] == b"secretmagic-group"
                                          for g in r.xinfo_groups(IN_STREAM)), 30, "the group")
            day = (START + timedelta(days=args.days - args.rounds + round_no - 1)).isoformat()
            for role in ("warm", "full", "append"):
                hint = {"date_from": day} if round_no and role == "append" else {}
                res = one_event(r, CLIENTS[role], hint)
                _show(f"{role} {round_no}", res)
                if round_no == 0 and role == "append":
                    first = res
                elif round_no and role != "warm":
                    results[role].append(res)
        except BaseException:
            print(f"  the app's log (tail):\n{app.output[-3000:]}", file=sys.stderr)
            raise
        finally:
            app.stop()
    r.close()
    return {"name": name, "first": first, **results}


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(x[key] for x in runs)


def _stage(runs: list[dict[str, Any]], stage: str) -> float:
    return statistics.median(x["stages"].get(stage, 0) for x in runs)


def summary(runs: list[dict[str, Any]], compute: dict[str, float], args: argparse.Namespace
            ) -> None:
    rows = args.products * args.days
    print(f"\nend-to-end, {rows:,} sales rows per client ({args.products} products x "
          f"{args.days} days), medians of {args.rounds} rounds, ms:")
    print(f"{'backend':<8} {'event':<7} {'latency':>8} {'process':>8} {'check':>6} {'read':>6} "
          f"{'compute':>8} {'write':>6} {'messaging':>10} {'rows read':>10} {'written':>8} "
          f"{'e2e/compute':>12}")
    for run in runs:
        for event in ("full", "append"):
            res = run[event]
            latency = _median(res, "latency_ms")
            print(f"{run['name']:<8} {event:<7} {latency:8.0f} {_median(res, 'processing_ms'):8.0f}"
                  f" {_stage(res, 'check'):6.0f} {_stage(res, 'read'):6.0f} "
                  f"{_stage(res, 'compute'):8.0f} {_stage(res, 'write'):6.0f} "
                  f"{_median(res, 'messaging_ms'):10.1f} {_median(res, 'read'):10,.0f} "
                  f"{_median(res, 'rows'):8,.0f} {latency / (compute[event] * 1e3):11.1f}x")
        print(f"{run['name']:<8} {'first':<7} {run['first']['latency_ms']:8.0f} (the client's "
              "first recompute, in full, by a new process)")
    print(f"compute only (this process, best of 3): full {compute['full'] * 1e3:.0f} ms, "
          f"one appended day {compute['append'] * 1e3:.1f} ms; load average at the end "
          f"{os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--products", type=int, default=100)
    parser.add_argument("--days", type=int, default=1000)
    parser.add_argument("--backends", nargs="+", choices=["chdb", "mysql"],
                        default=["chdb", "mysql"])
    parser.add_argument("--redis-url", help="default: a private redis-server")
    parser.add_argument("--mysql-dsn", help="a server DSN; the bench uses a database of its own")
    parser.add_argument("--seed", help=argparse.SUPPRESS)  # child-process mode
    parser.add_argument("--round", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed:
        seed(args.seed, args.products, args.days, args.round, args.rounds)
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
        compute = compute_only(args.products, args.days)
        for backend in args.backends:
            if backend == "chdb":
                dsn = f"chdb://{workdir / 'chdb'}"
            else:
                server, mysql_server = (args.mysql_dsn, None) if args.mysql_dsn else \
                    services.find_mysql()
                dsn = mysql_dsn = _create_database(server, f"sm_bench_{uuid.uuid4().hex[:8]}")
            runs.append(run_backend(backend, dsn, redis_url, args, workdir))
        summary(runs, compute, args)
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
