"""Recovery on a real Redis in this process: a dead or closed consumer's entries claimed, idle
consumers removed, the group recreated after FLUSHALL, Redis unreachable at start or restarted,
competing consumers and groups, outputs published while Redis is down, a key of the wrong type."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import pytest
import redis.asyncio as aioredis

from app.publishing.outbox import Outbox
from core.events import Event
from tests import harness, services
from tests.harness import Entries, StreamEntries, job, unique, wait_until, worker
from tests.integration.delivery.kit import (
    GROUP,
    Recorder,
    config,
    equals,
    not_in,
    pending_count,
)


async def test_dead_consumers_entries_are_claimed_while_new_ones_are_read(
        r: aioredis.Redis, redis_url: str) -> None:
    stream, rec = unique("claim"), Recorder()
    await r.xgroup_create(stream, GROUP, id="0", mkstream=True)
    orphans = [job() for _ in range(5)]
    for fields in orphans:
        await r.xadd(stream, fields)
    await r.xreadgroup(GROUP, "dead-instance", {stream: ">"})  # handed out, never acked
    async with worker(rec.router(stream), redis_url, config([stream], claim_idle_ms=1500)):
        fresh = job()
        await r.xadd(stream, fresh)
        await rec.wait_handled(1)
        assert set(rec.handled) == {fresh["event_id"]}  # read at once, orphans still idle
        await rec.wait_handled(6)
        await wait_until(lambda: equals(pending_count(r, stream), 0), 5, "all acked")
    assert all(rec.attempts[f["event_id"]] == 1 for f in orphans)


async def test_claim_reaches_entries_behind_many_that_are_not_due(
        r: aioredis.Redis, redis_url: str) -> None:
    """250 of this instance's own retries, waiting out a long backoff, head the pending list; a
    dead instance's entries behind them are still claimed (the walk goes on past one page)."""
    stream, rec = unique("deep"), Recorder()
    await r.xgroup_create(stream, GROUP, id="0", mkstream=True)

    async def hand_out(jobs: list[dict[Any, Any]], consumer: str, idle: int,
                       retrycount: int | None = None) -> None:
        for fields in jobs:
            await r.xadd(stream, fields)
        reply = cast(StreamEntries, await r.xreadgroup(GROUP, consumer, {stream: ">"}))
        ids: list[Any] = [eid for eid, _ in reply[0][1]]
        await r.xclaim(stream, GROUP, consumer, 0, ids, idle=idle, retrycount=retrycount,
                       justid=True)

    waiting, orphans = [job() for _ in range(250)], [job() for _ in range(5)]
    # Failed here on a third delivery: the next is due after 60 s·2² of backoff.
    await hand_out(waiting, "worker-1", idle=1000, retrycount=3)
    await hand_out(orphans, "dead-instance", idle=3_600_000)
    backoff = {"base_ms": 60_000, "factor": 2.0, "max_ms": 600_000, "jitter": 0.0}
    async with worker(rec.router(stream), redis_url,
                      config([stream], claim_idle_ms=200, backoff=backoff), "worker-1"):
        await rec.wait_handled(5)
    still = await pending_count(r, stream)
    print(f"\n[deep pending] waiting={len(waiting)} orphans={len(orphans)} "
          f"claimed_and_handled={len(rec.handled)} still_pending={still}")
    assert set(rec.handled) == {f["event_id"] for f in orphans}
    assert still == len(waiting)  # still waiting out their backoff


async def test_idle_consumers_removed_but_never_one_with_pending(r: aioredis.Redis,
                                                                 redis_url: str) -> None:
    stream, rec = unique("idle"), Recorder()
    await r.xgroup_create(stream, GROUP, id="0", mkstream=True)
    await r.xreadgroup(GROUP, "gone-empty", {stream: ">"})  # registers, holds nothing
    await r.xadd(stream, job())
    await r.xreadgroup(GROUP, "gone-holding", {stream: ">"})  # holds one entry
    cfg = config([stream], consumer_idle_timeout_s=1, claim_idle_ms=600_000)

    async def names() -> set[str]:
        return {c["name"].decode() for c in await r.xinfo_consumers(stream, GROUP)}

    async with worker(rec.router(stream), redis_url, cfg):
        await wait_until(lambda: not_in("gone-empty", names()), 10, "gone-empty removed")
        assert "gone-holding" in await names()


async def test_group_recreated_after_flushall_and_stream_deletion() -> None:
    with services.private_redis() as server:
        r = aioredis.Redis.from_url(server.url)
        stream, rec = unique("flush"), Recorder()
        async with worker(rec.router(stream), server.url, config([stream])) as w:
            await r.xadd(stream, job())
            await rec.wait_handled(1)
            await r.flushall()  # NOGROUP for the next read
            await r.xadd(stream, job())
            await rec.wait_handled(2)
            await r.delete(stream)  # UNBLOCKED for a blocked read (Redis 7)
            await r.xadd(stream, job())
            await rec.wait_handled(3)
            assert w.running
        await r.aclose()


async def test_redis_unreachable_at_start_then_connects() -> None:
    server = services.PrivateRedis()
    stream, rec = unique("late-redis"), Recorder()
    try:
        async with worker(rec.router(stream), server.url, config([stream])) as w:
            await wait_until(lambda: w.redis_ok is False, 10, "outage noticed")
            server.start()
            r = aioredis.Redis.from_url(server.url)
            await r.xadd(stream, job())
            await rec.wait_handled(1)
            assert w.redis_ok is True
            await r.aclose()
    finally:
        server.close()


async def test_redis_restart_loses_nothing() -> None:
    """An append-only private Redis restarted mid-stream: every event sent is handled."""
    with services.private_redis("--appendonly", "yes", "--appendfsync", "always") as server:
        stream, rec = unique("restart"), Recorder()
        sent: list[str] = []
        r = aioredis.Redis.from_url(server.url)

        async def produce(n: int) -> None:
            for _ in range(n):
                fields = job()
                while True:  # the integrator retries until Redis takes the event
                    try:
                        await r.xadd(stream, fields)
                        break
                    except (ConnectionError, OSError, aioredis.ConnectionError):
                        await asyncio.sleep(0.05)
                sent.append(fields["event_id"])
                await asyncio.sleep(0.002)

        async with worker(rec.router(stream), server.url, config([stream])):
            producer = asyncio.create_task(produce(400))
            await rec.wait_handled(100)
            server.stop()
            server.start()
            await producer
            await rec.wait_handled(400, timeout=30)
        lost = set(sent) - set(rec.handled)
        print(f"sent={len(sent)} handled={len(rec.handled)} lost={len(lost)}")
        assert not lost
        await r.aclose()


async def test_competing_consumers_share_and_groups_each_get_everything(
        r: aioredis.Redis, redis_url: str) -> None:
    """Watermill's scenarios: competing consumers share without overlap; every group gets all."""
    stream = unique("share")
    a, b, other = Recorder(), Recorder(), Recorder()
    sent = [job(f"c{i}") for i in range(200)]
    async with worker(a.router(stream), redis_url, config([stream]), "a"), \
            worker(b.router(stream), redis_url, config([stream]), "b"), \
            worker(other.router(stream), redis_url, harness.config([stream], group=unique("a")),
                   "x"):
        for fields in sent:
            await r.xadd(stream, fields)
        await wait_until(lambda: len(a.handled) + len(b.handled) == 200, 20, "shared")
        await other.wait_handled(200)
    assert not set(a.handled) & set(b.handled)
    assert len(a.handled) > 0 and len(b.handled) > 0
    assert set(other.handled) == {f["event_id"] for f in sent}


async def test_work_of_a_closed_consumer_is_continued(r: aioredis.Redis, redis_url: str) -> None:
    """Watermill's 'continue after close': a stopped instance's unfinished work is claimed."""
    stream, slow, rest = unique("close"), Recorder(), Recorder()
    started = asyncio.Event()

    async def hang(event: Event, attempt: int) -> None:
        started.set()
        await asyncio.sleep(3600)

    fields = job()
    await r.xadd(stream, fields)
    async with worker(slow.router(stream, hang), redis_url, config([stream]), "slow") as w:
        await asyncio.wait_for(started.wait(), 10)
        await w.stop(0.1)  # cancelled mid-handler: the entry stays pending
    assert await pending_count(r, stream) == 1
    async with worker(rest.router(stream), redis_url, config([stream], claim_idle_ms=200), "rest"):
        await rest.wait_handled(1)
    assert await pending_count(r, stream) == 0


async def test_outputs_published_while_redis_is_down_arrive_when_it_returns(
        tmp_path: Any) -> None:
    """The handler finishes while Redis is down: its event waits in the outbox, arrives with
    its own event_id after the restart, and the input entry (its ack lost) is handled again."""
    with services.private_redis("--appendonly", "yes", "--appendfsync", "always") as server:
        stream, out, rec = unique("in"), unique("out"), Recorder()
        gate = asyncio.Event()

        async def slow_first(event: Event, attempt: int) -> None:
            if attempt == 1:
                await gate.wait()

        r = aioredis.Redis.from_url(server.url)
        fields = job()
        await r.xadd(stream, fields)
        with Outbox(tmp_path / "outbox.sqlite3") as box:
            async with worker(rec.router(stream, slow_first, publish_to=out), server.url,
                              config([stream]), outbox=box):
                await wait_until(lambda: rec.attempts[fields["event_id"]], 10, "started")
                server.stop()
                gate.set()  # the handler returns while Redis is down
                await wait_until(lambda: box.depth() == 1, 10, "output in the outbox")
                server.start()
                await r.aclose()
                r = aioredis.Redis.from_url(server.url)  # the old connection died with the server
                await wait_until(lambda: rec.attempts[fields["event_id"]] == 2, 20,
                                 "redelivered after the lost ack")
                await wait_until(lambda: equals(r.xlen(out), 2), 20, "both outputs in Redis")
                await wait_until(lambda: equals(pending_count(r, stream), 0), 10, "acked")
            assert box.depth() == 0
        outputs = [json.loads(f[b"data"])["job"]
                   for _, f in cast(Entries, await r.xrange(out))]
        lost = len({fields["event_id"]} - set(outputs))
        print(f"sent=1 handled={sum(rec.handled.values())} outputs={len(outputs)} lost={lost}")
        assert outputs == [fields["event_id"]] * 2  # at least once: the first via the outbox
        await r.aclose()


async def test_a_key_that_is_not_a_stream_is_reported_once_and_recovered(
        r: aioredis.Redis, redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    stream, rec = unique("wrongtype"), Recorder()
    await r.set(stream, "an integrator's mistake")
    async with worker(rec.router(stream), redis_url, config([stream])) as w:
        await wait_until(lambda: (any("is stuck" in m.getMessage()
                                            for m in caplog.records)), 10, "reported")
        await r.delete(stream)  # the operator fixes it
        fields = job()
        await r.xadd(stream, fields)
        await rec.wait_handled(1)
        assert w.running
    stuck = [m for m in caplog.records if "is stuck" in m.getMessage()]
    assert len(stuck) == 1 and "WRONGTYPE" in stuck[0].getMessage()
