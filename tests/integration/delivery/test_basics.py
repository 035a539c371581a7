"""The delivery policy on a real Redis, in this process: ack, group start, flat published events,
malformed input to the DLQ, duplicates, coalescing (failures: test_failures.py; reclaim,
restarts and outages of Redis: test_recovery.py).

Every handler here is added in this file with one decorator (`Routes.on`) and gets the
whole policy from app.delivery: that is the extension contract of the README.
"""

from __future__ import annotations

import json
from typing import Any, cast

import redis.asyncio as aioredis
from dirty_equals import IsDatetime, IsStr, IsUUID

from core.wire import MAX_ENTRY_BYTES
from tests.harness import Entries, StreamEntries, job, unique, wait_until, worker
from tests.integration.delivery.kit import (
    Recorder,
    at_least,
    config,
    dlq_entries,
    equals,
    pending_count,
)


async def test_raw_xadd_is_handled_and_acked(r: aioredis.Redis, redis_url: str) -> None:
    stream, rec = unique("sales"), Recorder()
    fields = job("client-42", table_name="sales", integration_id="int-7")
    await r.xadd(stream, fields)
    async with worker(rec.router(stream), redis_url, config([stream])):
        await rec.wait_handled(1)
        await wait_until(lambda: equals(pending_count(r, stream), 0), 5, "XPENDING empty")
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
            lambda: at_least(dlq_entries(r), len(MALFORMED)), 10, "every malformed entry in DLQ")
        await wait_until(lambda: equals(pending_count(r, stream), 0), 5, "all acked")
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
        await wait_until(lambda: equals(pending_count(r, stream), 0), 5, "all acked")
    assert rec.attempts[fields["event_id"]] == 1


async def test_events_of_one_client_waiting_together_are_coalesced(r: aioredis.Redis,
                                                                   redis_url: str) -> None:
    stream, rec = unique("coalesce"), Recorder()
    for client in ["a"] * 5 + ["b"] * 3:
        await r.xadd(stream, job(client))
    async with worker(rec.router(stream), redis_url, config([stream], batch_size=100)):
        await wait_until(lambda: equals(pending_count(r, stream), 0), 10, "all 8 acked")
    assert sorted(e.client_id for e in rec.calls) == ["a", "b"]  # one recompute per client
    assert await dlq_entries(r) == []
