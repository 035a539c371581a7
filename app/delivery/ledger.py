"""The delivery policy's record in Redis: applying decisions, and what later deliveries need.

    done(entries)          XACK per stream, SET <group>:seen:<event_id> NX EX, HDEL their errors
                           (one pipeline for every run that finished in the same loop tick)
    failed(entry, reason)  HSET <group>:errors <stream>/<id> reason  (+ HINCRBY …#outages)
    dead_letter(entry, e)  MULTI: XADD <group>:dlq MAXLEN ~, XACK, HDEL its errors
    seen(events)           MGET the seen keys: which event_ids were handled already
    attempts(entries)      HMGET their last error and outage count: the policy's Attempt

The key names are core.keys'; the DLQ entry is app.delivery.deadletter's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from app.delivery import deadletter
from app.delivery.policy import Attempt
from core import keys
from core.events import Event
from core.wire import text

Fields = dict[bytes, bytes]


@dataclass
class Entry:
    """One stream entry handed to this consumer, with what the policy knows of it."""

    stream: str
    entry_id: str
    fields: Fields
    attempt: Attempt
    event: Event | None = None
    riders: list[Entry] = field(default_factory=list)  # coalesced into this one's run

    @property
    def deliveries(self) -> int:
        return self.attempt.deliveries

    def context(self, **extra: Any) -> dict[str, Any]:
        ctx: dict[str, Any] = {"stream": self.stream, "entry_id": self.entry_id,
                               "deliveries": self.deliveries}
        if self.event:
            ctx |= {"event_id": str(self.event.event_id), "event_type": self.event.event_type,
                    "client_id": self.event.client_id}
        if self.riders:
            ctx["coalesced"] = len(self.riders)
        return ctx | extra


class Ledger:
    """The Redis side of one consumer group's policy, for one consumer."""

    def __init__(self, client: Redis, group: str, consumer: str,
                 dedup_window_s: Callable[[], int]) -> None:
        self.client, self.group, self.consumer = client, group, consumer
        self.dedup_window_s = dedup_window_s  # read live: hot reload
        self.errors_key = keys.errors_key(group)
        self.dlq = keys.dlq_stream(group)
        self._acks = Batcher(self._done_together)

    async def attempts(self, stream: str, found: Sequence[tuple[str, int]]) -> list[Attempt]:
        """The Attempt of each (entry id, delivery number); only redeliveries cost a read."""
        again = [entry_id for entry_id, n in found if n > 1]
        recorded: dict[str, tuple[str | None, int]] = {}
        if again:
            fields = [f for entry_id in again for f in keys.error_fields(stream, entry_id)]
            values = await self.client.hmget(self.errors_key, fields)
            for i, entry_id in enumerate(again):
                error, outages = values[2 * i], values[2 * i + 1]
                recorded[entry_id] = (text(error) if error else None, int(outages or 0))
        none: tuple[str | None, int] = (None, 0)
        return [Attempt(n, recorded.get(entry_id, none)[1], recorded.get(entry_id, none)[0])
                for entry_id, n in found]

    async def seen(self, events: Sequence[Event]) -> list[str | None]:
        """For each event, the entry id it was handled as within the dedup window, or None."""
        if not events or not self.dedup_window_s():
            return [None] * len(events)
        found = await self.client.mget([keys.seen_key(self.group, e.event_id) for e in events])
        return [text(v) if v is not None else None for v in found]

    async def done(self, entries: list[Entry]) -> None:
        """Ack `entries` (returns once Redis has them), batched with others of this tick."""
        await self._acks.add(entries)

    async def _done_together(self, done: list[Entry]) -> None:
        window = self.dedup_window_s()
        async with self.client.pipeline(transaction=False) as pipe:
            for stream in {e.stream for e in done}:
                pipe.xack(stream, self.group, *[e.entry_id for e in done if e.stream == stream])
            retried = [f for e in done if e.deliveries > 1
                       for f in keys.error_fields(e.stream, e.entry_id)]
            if retried:
                pipe.hdel(self.errors_key, *retried)
            if window:
                for e in done:
                    if e.event is not None:
                        pipe.set(keys.seen_key(self.group, e.event.event_id), e.entry_id,
                                 nx=True, ex=window)
            await pipe.execute()

    async def skip(self, entries: list[Entry]) -> None:
        """Ack duplicates (of one stream): nothing else to record."""
        await self.client.xack(entries[0].stream, self.group, *[e.entry_id for e in entries])

    async def failed(self, entries: list[Entry], reason: str, *, outage: bool) -> None:
        """Record why their delivery failed (and, in an outage, count it apart)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for e in entries:
                error_field, outages_field = keys.error_fields(e.stream, e.entry_id)
                pipe.hset(self.errors_key, error_field, reason)
                if outage:
                    pipe.hincrby(self.errors_key, outages_field, 1)
            await pipe.execute()

    async def dead_letter(self, entries: Iterable[Entry], error: BaseException) -> None:
        for e in entries:
            fields = deadletter.dead_letter_fields(
                e.fields, error=error, stream=e.stream, entry_id=e.entry_id, group=self.group,
                deliveries=e.deliveries, consumer=self.consumer)
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.xadd(self.dlq, fields, maxlen=deadletter.DLQ_MAXLEN)
                pipe.xack(e.stream, self.group, e.entry_id)
                pipe.hdel(self.errors_key, *keys.error_fields(e.stream, e.entry_id))
                await pipe.execute()


class Batcher:
    """Collects the items added during one event-loop tick and hands them to `flush` together;
    each `add` returns when its batch is flushed (or raises what the flush raised)."""

    def __init__(self, flush: Callable[[list[Entry]], Coroutine[Any, Any, None]]) -> None:
        self.flush = flush
        self._waiting: list[tuple[list[Entry], asyncio.Future[None]]] = []
        self._flushing: set[asyncio.Task[None]] = set()

    async def add(self, items: list[Entry]) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((items, future))
        if len(self._waiting) == 1:
            asyncio.get_running_loop().call_soon(self._start)
        await future

    def _start(self) -> None:
        batch, self._waiting = self._waiting, []
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(
            self.flush([item for items, _ in batch for item in items]))
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

        def settle(done: asyncio.Future[None]) -> None:
            for _, future in batch:
                if future.done():
                    continue
                if done.cancelled():
                    future.cancel()
                elif (error := done.exception()) is not None:
                    future.set_exception(error)
                else:
                    future.set_result(None)

        task.add_done_callback(settle)
