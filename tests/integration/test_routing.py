"""The routing table on the production path (app.delivery's consumer on a real Redis): several
event types on one stream, batch handlers with the policy per entry, and what the worker says at
start about streams it reads and handlers it does not run.
"""

from __future__ import annotations

import logging
from typing import cast

import pytest
import redis.asyncio as aioredis

from core.errors import FatalError, RetryableError
from core.events import Event
from core.keys import dlq_stream
from handlers.routing import Routes
from tests.harness import Entries, config, job, unique, wait_until, worker

GROUP = unique("test-routing-group")


async def dead_letters(r: aioredis.Redis, stream: str) -> list[dict[str, str]]:
    """The group's dead letters from `stream` (the group's DLQ is shared by this module)."""
    entries = cast(Entries, await r.xrange(dlq_stream(GROUP)))
    found = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]
    return [f for f in found if f["dlq_stream"] == stream]


async def test_each_event_type_of_a_stream_reaches_its_own_handler(ar: aioredis.Redis,
                                                                   redis_url: str) -> None:
    stream = unique("mixed")
    got: dict[str, list[str]] = {"placed": [], "cancelled": []}
    routes = Routes()

    @routes.on(stream, "order_placed")
    async def placed(event: Event) -> None:
        got["placed"].append(str(event.event_id))

    @routes.on(stream, "order_cancelled")
    async def cancelled(event: Event) -> None:
        got["cancelled"].append(str(event.event_id))

    sent = {kind: [job(event_type=f"order_{kind}") for _ in range(3)]
            for kind in ("placed", "cancelled")}
    stray = job(event_type="order_refunded")
    for a, b in zip(sent["placed"], sent["cancelled"], strict=True):
        await ar.xadd(stream, a)
        await ar.xadd(stream, b)
    await ar.xadd(stream, stray)
    async with worker(routes, redis_url, config([stream], group=GROUP)):
        await wait_until(lambda: len(got["placed"]) + len(got["cancelled"]) == 6, 15,
                         "six events handled")
        (dead,) = await wait_until(lambda: dead_letters(ar, stream), 10,
                                   "the stray event dead-lettered")
    for kind in got:
        assert got[kind] == [f["event_id"] for f in sent[kind]]
    assert dead["event_id"] == stray["event_id"]
    assert dead["dlq_error"] == f"no handler for event_type 'order_refunded' on stream {stream!r}"
    assert len(routes.subscribers) == 1  # one FastStream subscriber for the stream


async def test_a_batch_handler_gets_every_entry_of_a_read_and_the_policy_per_entry(
        ar: aioredis.Redis, redis_url: str) -> None:
    stream = unique("batch")
    calls: list[list[str]] = []
    single: list[str] = []
    routes = Routes()

    @routes.on(stream, "audit_logged", batch=True)
    async def audit(events: list[Event]) -> None:
        calls.append([str(e.event_id) for e in events])
        if len(calls) == 1:
            raise RetryableError("audit store busy")  # every entry of the batch is retried
        if any(e.data.get("poison") for e in events):
            raise FatalError("a poisoned audit record")

    @routes.on(stream, "job")  # an ordinary handler on the same stream
    async def one(event: Event) -> None:
        single.append(str(event.event_id))

    batch = [job(event_type="audit_logged", n=i) for i in range(5)]
    plain = job()
    for fields in [*batch[:3], plain, *batch[3:]]:
        await ar.xadd(stream, fields)
    async with worker(routes, redis_url, config([stream], group=GROUP, batch_size=50)):
        await wait_until(lambda: len(calls) >= 2, 15, "the batch handled after its retry")
        assert single == [plain["event_id"]]
        ids = [f["event_id"] for f in batch]
        assert calls[0] == ids  # one call with all five, in stream order
        assert sorted(calls[1]) == sorted(ids)  # redelivered together by the claim loop
        await wait_until(lambda: _no_pending(ar, stream), 10, "every entry acked")
        poisoned = job(event_type="audit_logged", poison=True)
        await ar.xadd(stream, poisoned)
        (dead,) = await wait_until(lambda: dead_letters(ar, stream), 10,
                                   "the poisoned batch in the DLQ")
    assert calls[-1] == [poisoned["event_id"]]
    assert dead["event_id"] == poisoned["event_id"]
    assert dead["dlq_error"] == "a poisoned audit record"


async def _no_pending(r: aioredis.Redis, stream: str) -> bool:
    return int((await r.xpending(stream, GROUP))["pending"]) == 0


async def test_start_says_what_it_reads_and_what_never_runs(redis_url: str,
                                                            caplog: pytest.LogCaptureFixture
                                                            ) -> None:
    read, unread, orphan = unique("read"), unique("unread"), unique("orphan")
    routes = Routes()

    @routes.on(read, "job")
    async def handled(event: Event) -> None: ...

    @routes.on(unread, "job")
    async def forgotten(event: Event) -> None: ...

    caplog.set_level(logging.INFO, logger="secretmagic")
    async with worker(routes, redis_url, config([read, orphan], group=GROUP)) as consumer:
        assert consumer.streams() == [read]
    messages = [rec.getMessage() for rec in caplog.records if rec.name == "secretmagic"]
    assert f"consuming {read}: job -> handled" in messages
    assert (f"handler forgotten for job on {unread} never runs: {unread} is not in "
            "messenger.subscriber.streams") in messages
    assert f"stream {orphan!r} is configured but no handler subscribes to it; not read" in messages
    levels = {rec.getMessage(): rec.levelname for rec in caplog.records}
    assert levels[f"stream {orphan!r} is configured but no handler subscribes to it; not read"] \
        == "ERROR"


async def test_without_subscriber_streams_every_handlers_stream_is_read(redis_url: str) -> None:
    a, b = unique("all-a"), unique("all-b")
    routes = Routes()

    @routes.on(a, "job")
    async def on_a(event: Event) -> None: ...

    @routes.on(b, "job")
    async def on_b(event: Event) -> None: ...

    cfg = config([a], group=GROUP)
    cfg = cfg.model_copy(update={"messenger": cfg.messenger.model_copy(update={
        "subscriber": cfg.messenger.subscriber.model_copy(update={"streams": None})})})
    async with worker(routes, redis_url, cfg) as consumer:
        assert consumer.streams() == sorted([a, b])


def test_a_second_handler_for_one_event_type_on_one_stream_is_refused() -> None:
    routes = Routes()

    @routes.on("s", "job")
    async def first(event: Event) -> None: ...

    with pytest.raises(ValueError, match="'job' on 's' already has a handler: first"):
        @routes.on("s", "job")
        async def second(event: Event) -> None: ...
