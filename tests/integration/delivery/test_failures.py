"""The delivery policy when handlers fail, on a real Redis in this process: retries with backoff,
outages waited out (never dead-lettered), max_deliveries and fatal errors to the DLQ, a DLQ
replay."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC
from typing import cast

import redis as sync_redis
import redis.asyncio as aioredis
from dirty_equals import IsNow, IsStr

from app import ops
from core.errors import FatalError, RetryableError, Unavailable
from core.events import Event
from tests.harness import job, unique, wait_until, worker
from tests.integration.delivery.kit import (
    GROUP,
    Recorder,
    config,
    dlq_entries,
    equals,
    pending_count,
)


async def test_retryable_errors_back_off_then_succeed(r: aioredis.Redis, redis_url: str) -> None:
    stream, rec = unique("retry"), Recorder()
    seen_by_operator: list[ops.PendingEntry] = []

    async def flaky(event: Event, attempt: int) -> None:
        if attempt == 2:  # what `secretmagic pending` shows meanwhile: the entry, and why
            with sync_redis.Redis.from_url(redis_url) as sync_r:
                seen_by_operator.extend(
                    await asyncio.to_thread(ops.pending, sync_r, stream, GROUP))
        if attempt <= 3:
            raise RetryableError(f"store down (attempt {attempt})")

    fields = job()
    await r.xadd(stream, fields)
    async with worker(rec.router(stream, flaky), redis_url, config([stream])):
        await rec.wait_handled(1)
    times = rec.times[fields["event_id"]]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    print(f"attempts={len(times)} redelivery gaps (s): {[round(g, 2) for g in gaps]}")
    assert len(times) == 4 and rec.handled[fields["event_id"]] == 1
    (shown,) = seen_by_operator
    assert (shown.deliveries, shown.event_type, shown.client_id, shown.last_error) == (
        2, "job", fields["client_id"], "RetryableError: store down (attempt 1)")
    # backoff 100 ms * 2^(n-1), which Redis counts from each delivery: the handler starts a
    # scheduling delay after its delivery, so on a loaded machine it may see a gap a little short.
    for gap, backoff in zip(gaps, (0.1, 0.2, 0.4), strict=True):
        assert gap >= backoff - 0.03
    assert gaps[0] < gaps[2]  # they grow
    assert await dlq_entries(r) == [] and await pending_count(r, stream) == 0


async def test_an_outage_is_waited_out_never_dead_lettered(r: aioredis.Redis,
                                                           redis_url: str) -> None:
    """The store stays down far past the retry budget (max_deliveries=2): nothing is
    dead-lettered, the stream reads no new entries meanwhile, and everything is handled once
    the store is back; the outage did not use up the first event's max_deliveries (it still
    gets a second try after a failure of its own)."""
    stream, rec = unique("outage"), Recorder()
    store_up = asyncio.Event()

    failed_after_outage: list[int] = []

    async def store(event: Event, attempt: int) -> None:
        if not store_up.is_set():
            raise Unavailable("mysql store at 127.0.0.1:3306/test unavailable during read sales")
        if str(event.event_id) == first["event_id"] and not failed_after_outage:
            failed_after_outage.append(attempt)  # a failure of its own: one of its 2 deliveries
            raise RetryableError("a value the store could not parse yet")

    first = job()
    await r.xadd(stream, first)
    backoff = {"base_ms": 50, "factor": 2.0, "max_ms": 200, "jitter": 0.0}
    later = [job() for _ in range(5)]
    async with worker(rec.router(stream, store), redis_url,
                      config([stream], max_deliveries=2, backoff=backoff)) as w:
        key = first["event_id"]
        await wait_until(lambda: rec.attempts[key] >= 3, 10, "a delivery past max_deliveries")
        for fields in later:
            await r.xadd(stream, fields)
        tried = rec.attempts[key]
        await wait_until(lambda: rec.attempts[key] >= tried + 2, 10, "two more retries")
        # Meanwhile the read loop, had it been reading, would have had the later ones at once.
        assert [rec.attempts[f["event_id"]] for f in later] == [0] * len(later)
        assert w.waiting.keys() == {stream} and await dlq_entries(r) == []
        with sync_redis.Redis.from_url(redis_url) as sync_r:
            (shown,) = await asyncio.to_thread(ops.pending, sync_r, stream, GROUP)
        assert shown.last_error == ("Unavailable: mysql store at 127.0.0.1:3306/test "
                                    "unavailable during read sales")
        store_up.set()
        await rec.wait_handled(1 + len(later))
        await wait_until(lambda: equals(pending_count(r, stream), 0), 10, "all acked")
        assert w.waiting == {}
    sent = [first, *later]
    dead = await dlq_entries(r)
    lost = len({f["event_id"] for f in sent} - set(rec.handled)) - len(dead)
    print(f"\n[outage] sent={len(sent)} handled={len(rec.handled)} dead_lettered={len(dead)} "
          f"lost={lost} deliveries_of_the_first={rec.attempts[key]} (max_deliveries=2)")
    assert lost == 0 and dead == [] and rec.attempts[key] > 2
    assert failed_after_outage and rec.attempts[key] == failed_after_outage[0] + 1


async def test_a_waiting_stream_resumes_once_nothing_of_its_own_is_pending(
        r: aioredis.Redis, redis_url: str) -> None:
    """Its outage-struck entry was finished elsewhere (here: acked by hand, as another instance
    would): with nothing left to retry, reading resumes without a success of its own."""
    stream, rec = unique("resume"), Recorder()
    first = job()

    async def store(event: Event, attempt: int) -> None:
        if str(event.event_id) == first["event_id"]:
            raise Unavailable("clickhouse store at 127.0.0.1:8123/default unavailable")

    entry_id = cast(bytes, await r.xadd(stream, first)).decode()
    backoff = {"base_ms": 50, "factor": 2.0, "max_ms": 200, "jitter": 0.0}
    async with worker(rec.router(stream, store), redis_url,
                      config([stream], backoff=backoff)) as w:
        # Three attempts: by then the read loop has come back from its last blocked read
        # (block_ms 100) and stopped reading.
        await wait_until(lambda: rec.attempts[first["event_id"]] >= 3, 10, "three attempts")
        assert w.waiting.keys() == {stream}
        later = job()
        await r.xadd(stream, later)
        await r.xack(stream, GROUP, entry_id)  # another instance's work, done
        await rec.wait_handled(1)
        assert set(rec.handled) == {later["event_id"]}


async def test_max_deliveries_dead_letters_with_the_count(r: aioredis.Redis,
                                                          redis_url: str) -> None:
    stream, rec = unique("poison"), Recorder()

    async def always(event: Event, attempt: int) -> None:
        raise ValueError(f"bug on attempt {attempt}")

    fields = job()
    await r.xadd(stream, fields)
    async with worker(rec.router(stream, always), redis_url, config([stream], max_deliveries=3)):
        entries = await wait_until(lambda: dlq_entries(r), 20, "a DLQ entry")
        await wait_until(lambda: equals(pending_count(r, stream), 0), 5, "acked")
    assert rec.attempts[fields["event_id"]] == 3
    (entry,) = entries
    assert {k: entry[k] for k in fields} == fields  # original fields unchanged
    assert entry["dlq_deliveries"] == "3"
    assert entry["dlq_error_type"] == "MaxDeliveriesExceeded"
    assert "max_deliveries=3" in entry["dlq_error"] and "bug on attempt 3" in entry["dlq_error"]
    assert entry["dlq_stream"] == stream and entry["dlq_group"] == GROUP
    assert entry["dlq_consumer"] == "worker-1" and entry["dlq_entry_id"] == IsStr(regex=r"\d+-\d+")
    assert entry["dlq_time"].endswith("Z")
    assert entry["dlq_time"] == IsNow(iso_string=True, tz=UTC, delta=60)


async def test_fatal_error_dead_letters_at_once(r: aioredis.Redis, redis_url: str) -> None:
    stream, rec = unique("fatal"), Recorder()

    async def fatal(event: Event, attempt: int) -> None:
        raise FatalError("BOM cycle: A -> B -> A")

    fields = job()
    await r.xadd(stream, fields)
    async with worker(rec.router(stream, fatal), redis_url, config([stream])):
        (entry,) = await wait_until(lambda: dlq_entries(r), 10, "a DLQ entry")
    assert rec.attempts[fields["event_id"]] == 1
    assert entry["dlq_error_type"] == "FatalError" and entry["dlq_deliveries"] == "1"
    assert entry["dlq_error"] == "BOM cycle: A -> B -> A"
    assert await pending_count(r, stream) == 0


async def test_dlq_replay_delivers_again_to_a_working_handler(r: aioredis.Redis,
                                                              redis_url: str) -> None:
    stream, rec, broken = unique("replay"), Recorder(), {"yes": True}

    async def until_fixed(event: Event, attempt: int) -> None:
        if broken["yes"]:
            raise FatalError("store schema mismatch")

    fields = job()
    await r.xadd(stream, fields)
    async with worker(rec.router(stream, until_fixed), redis_url, config([stream])):
        (entry,) = await wait_until(lambda: dlq_entries(r), 10, "a DLQ entry")
        broken["yes"] = False  # the fix is deployed
        client = sync_redis.Redis.from_url(redis_url)
        result = await asyncio.to_thread(ops.dlq_replay, client, GROUP, ops.ALL)
        client.close()
        await rec.wait_handled(1)
    assert result.replayed and not result.failed
    assert rec.attempts[fields["event_id"]] == 2 and rec.handled[fields["event_id"]] == 1
    assert await dlq_entries(r) == [] and entry["dlq_error"] == "store schema mismatch"
