"""Consumption throughput: raw redis-py vs bare FastStream vs secretmagic's policy layer.

    .venv/bin/python bench/bench_consume.py [--events 20000] [--repeats 3] [--only NAME ...]
    .venv/bin/python bench/bench_consume.py --profile sm-batch100-c4   # cProfile of one contender

Every contender consumes the same N events (flat fields, as an integrator XADDs them; each for a
client of its own) from a fresh stream in a consumer group created at "0" on the same Redis
(127.0.0.1:6379 when reachable, else a private redis-server), in the same run, interleaved
(the order rotates each round; the CPU speed of this machine drifts ±30% over minutes).
Each handler does the same trivial work: decode the entry into an `Event` and count it. The
time runs from starting the consumer (connection already open) until all N are counted and
XPENDING is empty (consumed *and* acknowledged).

- raw:              XREADGROUP COUNT 100 + one XACK per batch (the floor; no framework).
- fs-single:        FastStream 0.7.8 `@broker.subscriber(stream=StreamSub(name, group, consumer,
                    max_records=100))`, one handler call and one XACK per entry.
- fs-single-log:    fs-single with FastStream's access log on (INFO, formatted, to /dev/null).
- fs-batch:         fs-single with `StreamSub(..., batch=True, max_records=100)`: one handler call
                    and one XACK per 100 entries.
                    These bare FastStream brokers have `log_level=logging.DEBUG`, which turns
                    its per-message access log off (fs-single-log shows what it costs).
- sm-*:             secretmagic: the app's `Broker` (flat wire format decoded once, the
                    RedisPrometheusMiddleware, access log off, as in app.main.create_app) fed by
                    `StreamConsumer` with its full policy: decode, duplicate check (MGET),
                    per-event ack pipeline (XACK + HDEL + SET NX for the dedup window), metrics,
                    logs (logger at WARNING), claim loop running. coalesce is off (each event is
                    handled, for a fair count). One handler call per entry, as in fs-single.
                    sm-single = batch_size 1, concurrency 1; sm-default = the production
                    defaults (batch_size 10, concurrency 4); sm-batch100-c4/c16 = batch_size 100.

Streams, groups and the dedup keys are uniquely named per run and deleted afterwards.
"""

import argparse
import asyncio
import contextlib
import cProfile
import functools
import logging
import os
import pstats
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the repo's top-level modules

import redis.asyncio as aioredis  # noqa: E402
from faststream._internal.utils.functions import to_async  # noqa: E402
from faststream.redis import RedisBroker, StreamSub  # noqa: E402
from faststream.redis.annotations import (  # noqa: E402
    RedisBatchStreamMessage,
    RedisStreamMessage,
)
from faststream.redis.prometheus import RedisPrometheusMiddleware  # noqa: E402

from app.broker import Broker  # noqa: E402
from app.delivery.consumer import StreamConsumer  # noqa: E402
from app.observability import metrics  # noqa: E402
from core import keys, wire  # noqa: E402
from core.events import Event  # noqa: E402
from handlers.routing import Routes  # noqa: E402
from settings import Config, LiveConfig  # noqa: E402
from tests import services  # noqa: E402
from tests.harness import StreamEntries, job  # noqa: E402

log = logging.getLogger("secretmagic")
# The bare FastStream brokers' logger: at stop FastStream 0.7.8 logs its read loop's closed
# connection ("Message fetch error") and supervisor callbacks; outside the timed region, noise here.
QUIET = logging.getLogger("bench.faststream")
QUIET.setLevel(logging.CRITICAL)
# fs-single-log: FastStream's access log on, formatted and written to /dev/null.
ACCESS = logging.getLogger("bench.faststream.access")
ACCESS.propagate = False
ACCESS.setLevel(logging.INFO)
ACCESS.addHandler(logging.StreamHandler(open(os.devnull, "w")))  # noqa: SIM115
ACCESS.handlers[0].setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
# One middleware for every secretmagic run (its metrics register once on the app's registry).
PROMETHEUS = RedisPrometheusMiddleware(registry=metrics.REGISTRY)


@dataclass
class Run:
    """One contender's run on its own stream and group."""

    url: str
    stream: str
    group: str
    events: int
    count: int = 0

    def __post_init__(self) -> None:
        self.done = asyncio.Event()

    def counted(self, n: int = 1) -> None:
        self.count += n
        if self.count >= self.events:
            self.done.set()


async def wait_acked(r: aioredis.Redis, run: Run, timeout: float = 120.0) -> None:
    """Until every entry is counted and acknowledged (XPENDING empty)."""
    await asyncio.wait_for(run.done.wait(), timeout)
    deadline = time.monotonic() + timeout
    while (await r.xpending(run.stream, run.group))["pending"]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{run.stream}: entries still pending after {timeout:.0f}s")
        await asyncio.sleep(0.001)


# --- the contenders: each returns the seconds from start to all consumed and acked ------------


async def raw(run: Run, r: aioredis.Redis) -> float:
    started = time.perf_counter()
    while run.count < run.events:
        reply = cast(StreamEntries, await r.xreadgroup(run.group, "raw-1", {run.stream: ">"},
                                                        count=100, block=1000))
        for _, entries in reply or ():
            for _, fields in entries:
                wire.decode(fields)
            run.counted(len(entries))
            await r.xack(run.stream, run.group, *[eid for eid, _ in entries])
    await wait_acked(r, run)
    return time.perf_counter() - started


async def fs_single(run: Run, r: aioredis.Redis, access_log: bool = False) -> float:
    """One handler call per entry; `access_log`: FastStream's per-message log on (INFO,
    formatted and written to /dev/null) instead of off (DEBUG)."""
    broker = RedisBroker(run.url, logger=ACCESS if access_log else QUIET,
                         log_level=logging.INFO if access_log else logging.DEBUG)

    @broker.subscriber(stream=StreamSub(run.stream, group=run.group, consumer="fs-1",
                                        max_records=100))
    async def handle(msg: RedisStreamMessage) -> None:
        wire.decode(msg.raw_message["data"])
        run.counted()

    return await _faststream(broker, run, r)


async def fs_batch(run: Run, r: aioredis.Redis) -> float:
    broker = RedisBroker(run.url, logger=QUIET, log_level=logging.DEBUG)

    @broker.subscriber(stream=StreamSub(run.stream, group=run.group, consumer="fs-1",
                                        batch=True, max_records=100))
    async def handle(msg: RedisBatchStreamMessage) -> None:
        for fields in msg.raw_message["data"]:
            wire.decode(fields)
        run.counted(len(msg.raw_message["data"]))

    return await _faststream(broker, run, r)


async def _faststream(broker: RedisBroker, run: Run, r: aioredis.Redis) -> float:
    await broker.connect()
    try:
        started = time.perf_counter()
        await broker.start()
        await wait_acked(r, run)
        return time.perf_counter() - started
    finally:
        await broker.stop()


def secretmagic(batch_size: int, concurrency: int, batch: bool = False
                ) -> Callable[[Run, aioredis.Redis], Awaitable[float]]:
    async def contender(run: Run, r: aioredis.Redis) -> float:
        routes = Routes()

        if batch:
            @routes.on(run.stream, "job", batch=True)
            async def handle_all(events: list[Event]) -> None:
                for _ in events:
                    run.counted()
        else:
            @routes.on(run.stream, "job")
            async def handle(event: Event) -> None:
                run.counted()

        broker = Broker(run.url, middlewares=(PROMETHEUS,), logger=log,
                        log_level=logging.DEBUG)  # as app.main.create_app builds it
        broker.include_router(routes)
        cfg = Config.model_validate({"messenger": {"subscriber": {
            "streams": [run.stream], "consumer_group": run.group, "batch_size": batch_size,
            "concurrency": concurrency, "coalesce": False}}})
        live = LiveConfig(None, cfg)
        broker.publishing.live = live
        await broker.connect()
        fatal: list[str] = []
        consumer = StreamConsumer(broker.client, live, "sm-1", routes,
                                  redis_label=run.url, on_fatal=fatal.append)
        try:
            started = time.perf_counter()
            await broker.start()
            await consumer.start()
            await wait_acked(r, run)
            seconds = time.perf_counter() - started
        finally:
            await consumer.stop(5)
            await broker.stop()
        if fatal:
            raise RuntimeError(f"consumer stopped: {fatal}")
        return seconds

    return contender


CONTENDERS: dict[str, Callable[[Run, aioredis.Redis], Awaitable[float]]] = {
    "raw": raw,
    "fs-single": fs_single,
    "fs-single-log": functools.partial(fs_single, access_log=True),
    "fs-batch": fs_batch,
    "sm-single": secretmagic(1, 1),
    "sm-default": secretmagic(10, 4),
    "sm-batch100-c4": secretmagic(100, 4),
    "sm-batch100-c16": secretmagic(100, 16),
    "sm-batch-handler": secretmagic(100, 4, batch=True),
}
WHAT = {
    "raw": "XREADGROUP COUNT 100 + XACK per batch",
    "fs-single": "StreamSub max_records=100, per entry",
    "fs-single-log": "fs-single with its access log on (INFO)",
    "fs-batch": "StreamSub batch=True max_records=100",
    "sm-single": "batch_size 1, concurrency 1",
    "sm-default": "batch_size 10, concurrency 4 (defaults)",
    "sm-batch100-c4": "batch_size 100, concurrency 4",
    "sm-batch100-c16": "batch_size 100, concurrency 16",
    "sm-batch-handler": "@routes.on(batch=True), batch_size 100, concurrency 4",
}


# --- running ---------------------------------------------------------------------------------


async def fill(r: aioredis.Redis, stream: str, group: str, n: int) -> None:
    for start in range(0, n, 1000):
        async with r.pipeline(transaction=False) as pipe:
            for _ in range(start, min(start + 1000, n)):
                pipe.xadd(stream, job(integration_id="bench", table_name="sales"))
            await pipe.execute()
    await r.xgroup_create(stream, group, id="0")


async def cleanup(r: aioredis.Redis, run: Run) -> int:
    """Delete what the run left in Redis; return the DLQ length (must be 0)."""
    dead = await r.xlen(keys.dlq_stream(run.group))
    await r.delete(run.stream, keys.dlq_stream(run.group), f"{run.group}:errors")
    batch: list[bytes] = []
    async for key in r.scan_iter(match=keys.seen_pattern(run.group), count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            await r.unlink(*batch)
            batch.clear()
    if batch:
        await r.unlink(*batch)
    return int(dead)


async def once(name: str, url: str, r: aioredis.Redis, n: int) -> float:
    tag = uuid.uuid4().hex[:8]
    run = Run(url, f"bench-consume-{name}-{tag}", f"bench-group-{tag}", n)
    await fill(r, run.stream, run.group, n)
    try:
        seconds = await CONTENDERS[name](run, r)
    finally:
        dead = await cleanup(r, run)
    if run.count != n or dead:
        raise RuntimeError(f"{name}: counted {run.count} of {n}, {dead} dead-lettered")
    return seconds


def table(results: dict[str, list[float]], n: int) -> None:
    best = {name: n / min(times) for name, times in results.items()}
    median = {name: n / statistics.median(times) for name, times in results.items()}
    ref_raw, ref_fs = best.get("raw"), best.get("fs-single")
    print(f"\n{'contender':<16} {'what':<40} {'best ev/s':>10} {'median':>9} "
          f"{'vs raw':>7} {'vs fs-single':>12}")
    for name in results:
        vs_raw = f"{best[name] / ref_raw:.2f}" if ref_raw else "-"
        vs_fs = f"{best[name] / ref_fs:.2f}" if ref_fs else "-"
        print(f"{name:<16} {WHAT[name]:<40} {best[name]:>10,.0f} {median[name]:>9,.0f} "
              f"{vs_raw:>7} {vs_fs:>12}")
    print("\nper-event cost (best, µs) and the policy's overhead:")
    for name in results:
        line = f"  {name:<16} {1e6 / best[name]:7.1f} µs/event"
        if name.startswith("sm-") and ref_raw:
            line += f"   +{1e6 / best[name] - 1e6 / ref_raw:6.1f} µs vs raw"
        if name.startswith("sm-") and ref_fs:
            line += f"   {1e6 / best[name] - 1e6 / ref_fs:+6.1f} µs vs fs-single"
        print(line)


async def micro(repeats: int = 20_000) -> None:
    """What parts of the per-event work cost in this process (µs per call, best of 3)."""
    fields = {k.encode(): v.encode() for k, v in job(integration_id="bench",
                                                     table_name="sales").items()}
    event = wire.decode(fields)
    body = event.model_dump_json().encode()

    def timed(fn: Callable[[], object]) -> float:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(repeats):
                fn()
            best = min(best, time.perf_counter() - start)
        return best / repeats * 1e6

    handled = metrics.EVENTS.labels("bench-micro", "handled")
    parts: dict[str, Callable[[], object]] = {
        "wire.decode(fields)": lambda: wire.decode(fields),
        "Event.model_dump_json()": event.model_dump_json,
        "Event.model_validate_json(body)": lambda: Event.model_validate_json(body),
        "EVENTS.labels(...).inc()": lambda: metrics.EVENTS.labels("bench-micro", "handled").inc(),
        "counter.inc() (labels cached)": handled.inc,
        "log.info(...) at WARNING": lambda: log.info("event handled", extra={"context": {}}),
    }
    print(f"\nper-call costs in this process (best of 3 x {repeats} calls):")
    for what, fn in parts.items():
        print(f"  {what:<38} {timed(fn):6.2f} µs")

    # FastStream runs a sync filter (handlers.routing.Routes.on's `wants`) on a worker thread.
    sync_filter = to_async(lambda message: True)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats // 10):
            await sync_filter(None)
        best = min(best, time.perf_counter() - start)
    what = "a sync filter, as FastStream calls it"
    print(f"  {what:<38} {best / (repeats // 10) * 1e6:6.2f} µs  (to_async: a worker-thread hop)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="+", choices=list(CONTENDERS), default=list(CONTENDERS))
    parser.add_argument("--profile", choices=list(CONTENDERS), help="cProfile one run of this")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    log.setLevel(logging.WARNING)

    url, private = services.find_redis()
    r = aioredis.Redis.from_url(url)
    try:
        info = await r.info("server")
        print(f"Redis {info['redis_version']} at {url}"
              f"{' (private redis-server)' if private else ''}; {args.events:,} events per run;"
              f" {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            seconds = await once(args.profile, url, r, args.events)
            profiler.disable()
            print(f"{args.profile}: {args.events / seconds:,.0f} ev/s under cProfile")
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
            if os.environ.get("PROFILE_DUMP"):
                profiler.dump_stats(os.environ["PROFILE_DUMP"])
            return
        print(f"{len(args.only)} contenders, {args.repeats} interleaved rounds (order rotates)")
        results: dict[str, list[float]] = {name: [] for name in args.only}
        for round_ in range(args.repeats):
            order = args.only[round_ % len(args.only):] + args.only[:round_ % len(args.only)]
            line = []
            for name in order:
                seconds = await once(name, url, r, args.events)
                results[name].append(seconds)
                line.append(f"{name} {args.events / seconds:,.0f}")
            print(f"  round {round_ + 1}: " + ", ".join(line), flush=True)
        table(results, args.events)
        await micro()
        print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    finally:
        await r.aclose()
        if private:
            private.close()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
