"""One client's events never race (issue 13): a copy of an event whose first copy is still being
handled waits for it (acked as a duplicate once it succeeds, handled if it failed), on one
consumer or across several; on a real Redis, through the production consumer."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from core.errors import RetryableError
from core.events import Event
from core.keys import dlq_stream, seen_key
from handlers.routing import Routes
from tests.harness import (
    AppProcess,
    app_processes,
    config,
    daily,
    job,
    messenger_env,
    store_read,
    store_write,
    unique,
    wait_until,
    worker,
    write_config,
)
from tests.services import private_redis, wait_for

GROUP = unique("test-races-group")


class Slow:
    """A handler that takes `work_s` per attempt and fails the first `fail` of them."""

    def __init__(self, work_s: float, fail: int = 0) -> None:
        self.work_s, self.fail = work_s, fail
        self.attempts: list[str] = []
        self.handled: list[str] = []
        self.running = 0
        self.peak = 0  # copies of the event handled at the same time, at most

    def routes(self, stream: str) -> Routes:
        routes = Routes()

        @routes.on(stream, "job")
        async def handle(event: Event) -> None:
            self.attempts.append(str(event.event_id))
            self.running += 1
            self.peak = max(self.peak, self.running)
            try:
                await asyncio.sleep(self.work_s)  # simulated work: the window a copy lands in
                if len(self.attempts) <= self.fail:
                    raise RetryableError(f"attempt {len(self.attempts)} failed on purpose")
            finally:
                self.running -= 1
            self.handled.append(str(event.event_id))

        return routes


async def pending(r: aioredis.Redis, stream: str) -> int:
    return int((await r.xpending(stream, GROUP))["pending"])


async def copies_settled(r: aioredis.Redis, stream: str) -> bool:
    return await pending(r, stream) == 0


@pytest.mark.parametrize("consumers", [1, 2])
async def test_a_copy_arriving_while_the_first_runs_is_acked_once_it_succeeds(
        ar: aioredis.Redis, redis_url: str, consumers: int) -> None:
    stream, slow = unique("twice"), Slow(work_s=0.4)
    cfg = config([stream], group=GROUP, batch_size=1, concurrency=2)
    fields = job()
    async with contextlib.AsyncExitStack() as stack:
        for i in range(consumers):
            await stack.enter_async_context(
                worker(slow.routes(stream), redis_url, cfg, consumer=f"w{i}"))
        await ar.xadd(stream, fields)
        await ar.xadd(stream, fields)  # the same event again, about a millisecond later
        await wait_until(lambda: copies_settled(ar, stream), 20, "both copies acked")
    sent, handled, dead = 2, len(slow.handled), await ar.xlen(dlq_stream(GROUP))
    duplicates = sent - handled - dead
    print(f"consumers={consumers} sent={sent} handled={handled} duplicate={duplicates} "
          f"dead_lettered={dead} lost={sent - handled - duplicates - dead}")
    assert slow.attempts == [fields["event_id"]]  # never handled twice, never at once
    assert (handled, duplicates, dead) == (1, 1, 0)
    assert slow.peak == 1
    assert await ar.get(seen_key(GROUP, fields["event_id"])) is not None  # remembered as done


async def test_a_copy_waiting_for_a_failed_first_copy_is_handled(ar: aioredis.Redis,
                                                                 redis_url: str) -> None:
    stream, slow = unique("retry-copy"), Slow(work_s=0.3, fail=1)
    cfg = config([stream], group=GROUP, batch_size=1, concurrency=2)
    fields = job()
    async with worker(slow.routes(stream), redis_url, cfg):
        await ar.xadd(stream, fields)
        await ar.xadd(stream, fields)
        await wait_until(lambda: copies_settled(ar, stream), 20, "both copies acked")
    assert slow.attempts == [fields["event_id"]] * 2  # the failure, then one success
    assert slow.handled == [fields["event_id"]]
    assert slow.peak == 1
    assert await ar.xlen(dlq_stream(GROUP)) == 0


async def test_waiting_for_another_copy_is_not_counted_towards_max_deliveries(
        ar: aioredis.Redis, redis_url: str) -> None:
    # The first copy runs for longer than max_deliveries backoffs of the second one.
    stream, slow = unique("long-copy"), Slow(work_s=1.5)
    cfg = config([stream], group=GROUP, batch_size=1, concurrency=2, max_deliveries=2,
                 backoff={"base_ms": 100, "factor": 1.0, "max_ms": 100, "jitter": 0.0})
    fields = job()
    async with worker(slow.routes(stream), redis_url, cfg):
        await ar.xadd(stream, fields)
        await ar.xadd(stream, fields)
        await wait_until(lambda: copies_settled(ar, stream), 20, "both copies acked")
    assert slow.handled == [fields["event_id"]]
    assert await ar.xlen(dlq_stream(GROUP)) == 0  # waited ~10 deliveries, none counted


# --- the lost update (issue 13): a paused instance must not overwrite newer features ----------


def test_a_paused_instance_does_not_overwrite_newer_features(mysql_database: str,
                                                             tmp_path: Path) -> None:
    """Instance A reads client C's data, then freezes (SIGSTOP) before writing; the integrator
    writes newer data and sends another sales_updated, which B handles; when A resumes, its write
    from the older data is refused (Superseded) and the store keeps B's features."""
    client = unique("client-paused")
    os.mkfifo(tmp_path / "go")
    asyncio.run(store_write(mysql_database, "sales", client, daily(10, 1.0)))  # the older data
    with private_redis() as server:  # the production streams, on a Redis of the test's own
        env = {**messenger_env(server.url), "STORE_DSN": mysql_database,
               "PAUSE_CLIENT": client, "PAUSE_DIR": str(tmp_path)}
        r = redis.Redis.from_url(server.url)
        # A runs one handler at a time (so the newer event goes to B, not to a frozen A), and
        # neither takes over the other's entries during the test.
        one_at_a_time = {"messenger": {"subscriber": {"concurrency": 1, "claim_idle_ms": 600_000}}}
        patient = {"messenger": {"subscriber": {"claim_idle_ms": 600_000}}}
        a = AppProcess("tests.apps.paused:app", {**env, "SECRETMAGIC_CONFIG": str(
            write_config(tmp_path / "a.yaml", one_at_a_time))}, tmp_path, "paused-a")
        b = AppProcess("app:app", {**env, "SECRETMAGIC_CONFIG": str(
            write_config(tmp_path / "b.yaml", patient))}, tmp_path, "prompt-b")
        with app_processes(a):
            r.xadd("sales-updates", job(client, event_type="sales_updated"))
            wait_for(lambda: (tmp_path / "reading").exists(), 60, "A to read the older data")
            a.signal(signal.SIGSTOP)  # frozen between its read and its write
            with app_processes(b):
                b.wait_output("consuming sales-updates")
                asyncio.run(store_write(mysql_database, "sales", client, daily(20, 5.0)))  # newer
                r.xadd("sales-updates", job(client, event_type="sales_updated"))
                wait_for(lambda: r.xlen("features-updates") == 1, 60, "B's features_updated")
                newer = asyncio.run(store_read(mysql_database, "daily_features", client))
                a.signal(signal.SIGCONT)
                (tmp_path / "go").write_text("go")
                a.wait_output("superseded: the store holds results of a newer event")
                wait_for(lambda: r.xpending("sales-updates", "secretmagic-group")["pending"]
                         == 0, 60, "A's stale run settled")
        after = asyncio.run(store_read(mysql_database, "daily_features", client))
        published = r.xlen("features-updates")
    print(f"sent=2 handled=1 superseded=1 published={published} lost=0")
    assert published == 1  # A published nothing for its stale run
    assert after.sort(after.columns).equals(newer.sort(newer.columns))  # A changed nothing
    lags = after.get_column("lag_1").drop_nulls()
    assert lags.len() == 19 and set(lags.to_list()) == {5.0}  # newer data
