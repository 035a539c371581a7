"""The delivery policy on a real Redis, in this process: ack, retry with backoff, DLQ, malformed
input, duplicates, coalescing, reclaim, idle consumers, NOGROUP/UNBLOCKED, restarts.

Every handler here is added in this file with one decorator (`Routes.on`) and gets the
whole policy from app.delivery: that is the extension contract of the README.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from datetime import UTC
from typing import Any, cast

import pytest
import redis as sync_redis
import redis.asyncio as aioredis
from dirty_equals import IsDatetime, IsNow, IsStr, IsUUID

from app import ops
from app.publishing.outbox import Outbox
from core.errors import FatalError, RetryableError, Unavailable
from core.events import Event
from core.keys import dlq_stream
from core.wire import MAX_ENTRY_BYTES
from handlers.routing import Routes
from settings import Config
from tests import harness, services
from tests.harness import Entries, StreamEntries, job, unique, wait_until, worker

GROUP = unique("test-group")  # not the real group: a developer's Redis keeps its DLQ


def config(streams: list[str], **policy: Any) -> Config:
    return harness.config(streams, **{"group": GROUP, **policy})


class Recorder:
    """A handler's memory: attempts and successes per event_id, and when each attempt began."""

    def __init__(self) -> None:
        self.attempts: Counter[str] = Counter()
        self.handled: Counter[str] = Counter()
        self.times: dict[str, list[float]] = {}
        self.calls: list[Event] = []

    def router(self, stream: str, behaviour: Any = None, event_type: str = "job",
               publish_to: str | None = None) -> Routes:
        router = Routes()

        async def handle(event: Event) -> Event:
            key = str(event.event_id)
            self.attempts[key] += 1
            self.times.setdefault(key, []).append(time.monotonic())
            self.calls.append(event)
            if behaviour:
                await behaviour(event, self.attempts[key])
            self.handled[key] += 1
            return Event(event_type="job_done", client_id=event.client_id, data={"job": key})

        subscribed = router.on(stream, event_type)(handle)
        if publish_to:
            router.output("job_done", publish_to)(subscribed)
        return router

    async def wait_handled(self, n: int, timeout: float = 20) -> None:
        async def done() -> int:
            return len(self.handled) >= n

        await wait_until(done, timeout, f"{n} events handled (have {len(self.handled)})")


async def dlq_entries(r: aioredis.Redis, group: str = GROUP) -> list[dict[str, str]]:
    entries = cast(Entries, await r.xrange(dlq_stream(group)))
    return [{k.decode(errors="replace"): v.decode(errors="replace") for k, v in f.items()}
            for _, f in entries]


async def pending_count(r: aioredis.Redis, stream: str, group: str = GROUP) -> int:
    return int((await r.xpending(stream, group))["pending"])


@pytest.fixture
async def r(redis_url: str) -> Any:
    client = aioredis.Redis.from_url(redis_url)
    await client.delete(dlq_stream(GROUP))
    yield client
    await client.aclose()


async def test_raw_xadd_is_handled_and_acked(r: aioredis.Redis, redis_url: str) -> None:
    stream, rec = unique("sales"), Recorder()
    fields = job("client-42", table_name="sales", integration_id="int-7")
    await r.xadd(stream, fields)
    async with worker(rec.router(stream), redis_url, config([stream])):
        await rec.wait_handled(1)
        await wait_until(lambda: _eq(pending_count(r, stream), 0), 5, "XPENDING empty")
    assert rec.calls[0].model_dump() == {
        "event_id": IsUUID(4), "event_type": "job", "client_id": "client-42",
        "timestamp": IsDatetime(iso_string=False),
        "data": {"table_name": "sales", "integration_id": "int-7"}}
    assert str(rec.calls[0].event_id) == fields["event_id"]
    assert await dlq_entries(r) == []


async def test_new_group_sees_entries_already_in_the_stream(r: aioredis.Redis,
                                                            redis_url: str) -> None:
    stream, rec = unique("early"), Recorder()
    for _ in range(3):
        await r.xadd(stream, job())
    async with worker(rec.router(stream), redis_url, config([stream])):
        await rec.wait_handled(3)


async def test_group_start_dollar_skips_old_entries(r: aioredis.Redis, redis_url: str) -> None:
    stream, rec = unique("late"), Recorder()
    old = job()
    await r.xadd(stream, old)
    async with worker(rec.router(stream), redis_url, config([stream], group_start_id="$")):
        new = job()
        await r.xadd(stream, new)
        await rec.wait_handled(1)
    assert set(rec.handled) == {new["event_id"]}


async def test_published_events_are_flat_readable_and_trimmed(r: aioredis.Redis,
                                                              redis_url: str) -> None:
    stream, out, default, rec = unique("in"), unique("out"), unique("default"), Recorder()
    await r.xgroup_create(out, "trainer-group", id="0", mkstream=True)
    cfg = config([stream]).model_copy(deep=True)
    cfg = cfg.model_validate({**cfg.model_dump(), "messenger": {
        **cfg.model_dump()["messenger"], "publisher": {"max_length": 50,
                                                       "streams": {"job_done": out}}}})
    sent = [job(f"client-{i}") for i in range(300)]
    for fields in sent:
        await r.xadd(stream, fields)
    async with worker(rec.router(stream, publish_to=default), redis_url, cfg):
        await rec.wait_handled(300)
    # What a non-FastStream downstream sees: plain fields, data as JSON text.
    (_, latest), = cast(Entries, await r.xrevrange(out, count=1))
    fields = {k.decode(): v.decode() for k, v in latest.items()}
    assert fields == {"event_id": IsUUID(4), "event_type": "job_done",
                      "client_id": IsStr(regex=r"client-\d+"), "timestamp": IsStr(regex=r".*Z$"),
                      "data": IsStr()}
    assert json.loads(fields["data"])["job"] in {f["event_id"] for f in sent}
    # MAXLEN ~ 50: Redis trims whole macro-nodes, so the length stays near, not at, 50.
    assert 50 <= await r.xlen(out) <= 150
    # trainer-group, another consumer group, receives every output event still in the stream.
    got = cast(StreamEntries,
               await r.xreadgroup("trainer-group", "trainer-1", {out: ">"}, count=1000))
    assert len(got[0][1]) == await r.xlen(out)
    assert not await r.exists(default)  # publisher.streams routed job_done elsewhere


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
        await wait_until(lambda: _eq(pending_count(r, stream), 0), 10, "all acked")
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
        await wait_until(lambda: _eq(pending_count(r, stream), 0), 5, "acked")
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


MALFORMED: dict[str, tuple[dict[Any, Any], str]] = {
    "no event_type": ({"event_id": "x", "client_id": "c", "data": "{}"},
                      "missing field(s): event_type"),
    "data not JSON": ({"event_type": "job", "client_id": "c", "data": "{oops"},
                      "field 'data' is not JSON"),
    "data not an object": ({"event_type": "job", "client_id": "c", "data": "[1, 2]"},
                           "field 'data' must be a JSON object, got list"),
    "garbage bytes": ({b"event_type": b"\xff\xfe\x00", b"client_id": b"c"}, "is not UTF-8"),
    "over the size limit": ({"event_type": "job", "client_id": "c",
                             "data": json.dumps({"blob": "x" * MAX_ENTRY_BYTES})},
                            f"over the {MAX_ENTRY_BYTES}-byte limit"),
    "bad event_id": ({"event_type": "job", "client_id": "c", "event_id": "not-a-uuid"},
                     "field 'event_id'"),
    "unknown event type": ({"event_type": "refund_issued", "client_id": "c", "data": "{}"},
                           "no handler for event_type 'refund_issued'"),
}


async def test_malformed_entries_go_to_the_dlq_and_neighbours_are_handled(
        r: aioredis.Redis, redis_url: str) -> None:
    stream, rec = unique("dirty"), Recorder()
    good = [job() for _ in range(len(MALFORMED) + 1)]
    for i, (fields, _) in enumerate(MALFORMED.values()):
        await r.xadd(stream, good[i])
        await r.xadd(stream, fields)
    await r.xadd(stream, good[-1])
    async with worker(rec.router(stream), redis_url, config([stream])):
        await rec.wait_handled(len(good))
        entries = await wait_until(
            lambda: _at_least(dlq_entries(r), len(MALFORMED)), 10, "every malformed entry in DLQ")
        await wait_until(lambda: _eq(pending_count(r, stream), 0), 5, "all acked")
    sent, handled, dead = len(good) + len(MALFORMED), len(rec.handled), len(entries)
    print(f"sent={sent} handled={handled} dead_lettered={dead} lost={sent - handled - dead}")
    assert sent - handled - dead == 0
    for (kind, (_, reason)), entry in zip(MALFORMED.items(), entries, strict=True):
        assert reason in entry["dlq_error"], kind
        assert entry["dlq_error_type"] in {"MalformedEvent", "FatalError"}, kind


async def test_duplicate_event_ids_are_skipped(r: aioredis.Redis, redis_url: str) -> None:
    stream, rec = unique("dup"), Recorder()
    fields = job()
    async with worker(rec.router(stream), redis_url, config([stream])):
        await r.xadd(stream, fields)
        await rec.wait_handled(1)
        await r.xadd(stream, fields)  # the integrator sends it again
        marker = job()
        await r.xadd(stream, marker)
        await rec.wait_handled(2)
        await wait_until(lambda: _eq(pending_count(r, stream), 0), 5, "all acked")
    assert rec.attempts[fields["event_id"]] == 1


async def test_events_of_one_client_waiting_together_are_coalesced(r: aioredis.Redis,
                                                                   redis_url: str) -> None:
    stream, rec = unique("coalesce"), Recorder()
    for client in ["a"] * 5 + ["b"] * 3:
        await r.xadd(stream, job(client))
    async with worker(rec.router(stream), redis_url, config([stream], batch_size=100)):
        await wait_until(lambda: _eq(pending_count(r, stream), 0), 10, "all 8 acked")
    assert sorted(e.client_id for e in rec.calls) == ["a", "b"]  # one recompute per client
    assert await dlq_entries(r) == []


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
        await wait_until(lambda: _eq(pending_count(r, stream), 0), 5, "all acked")
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
        await wait_until(lambda: _not_in("gone-empty", names()), 10, "gone-empty removed")
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


async def _eq(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def _at_least(entries: Any, n: int) -> Any:
    got = await entries
    return got if len(got) >= n else None


async def _not_in(item: str, names: Any) -> bool:
    return item not in await names


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
                await wait_until(lambda: _eq(r.xlen(out), 2), 20, "both outputs in Redis")
                await wait_until(lambda: _eq(pending_count(r, stream), 0), 10, "acked")
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
