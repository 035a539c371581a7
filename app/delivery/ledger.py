"""The delivery policy's record in Redis: applying decisions, and what later deliveries need.

    attempts(entries)      HMGET their last error and uncounted deliveries: the policy's Attempt
    claim(entries)         one script: for each event_id, take {group}:seen:<id> for this copy
                           (`<stream>/<entry id>`, for the dedup window) unless another copy
                           holds it: that copy was handled if its entry is acked, and is in
                           flight while it is pending (XPENDING, only for such conflicts)
    done(entries)          XACK per stream, HDEL their errors (one pipeline for every run that
                           finished in the same loop tick): an acked holder means "handled"
    release(entries)       one script: give back the claims of copies that did not succeed
    failed(entries, why)   HSET <group>:errors <stream>/<id> why  (+ HINCRBY …#uncounted)
    dead_letter(entries)   XADD <group>:dlq MAXLEN ~, then (once Redis took it) XACK and HDEL
                           its errors: in this order, so a crash between them can copy an
                           entry to the DLQ twice, never lose it (the keys live in different
                           slots of a cluster, so they cannot share a MULTI)

The key names are core.keys'; the DLQ entry is app.delivery.deadletter's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from app.delivery import deadletter
from app.delivery.policy import Attempt, Duplicate, InFlight, Outcome
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
    claimed: bool = False  # its event_id is held for this copy (ledger.claim)

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


# Take each seen key for this copy unless another copy holds it; the reply lists only the
# conflicts, as (index, holder) pairs. One call per batch: the keys share a slot.
_CLAIM = """
local out = {}
for i, key in ipairs(KEYS) do
  local mine = ARGV[i + 1]
  local held = redis.call('GET', key)
  if (not held) or held == mine then
    redis.call('SET', key, mine, 'EX', ARGV[1])
  else
    out[#out + 1] = i
    out[#out + 1] = held
  end
end
return out
"""
# Give back only what this copy holds.
_RELEASE = """
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i] then redis.call('DEL', key) end
end
return #KEYS
"""


class Ledger:
    """The Redis side of one consumer group's policy, for one consumer."""

    def __init__(self, client: Redis, group: str, consumer: str,
                 dedup_window_s: Callable[[], int]) -> None:
        self.client, self.group, self.consumer = client, group, consumer
        self.dedup_window_s = dedup_window_s  # read live: hot reload
        self.errors_key = keys.errors_key(group)
        self.dlq = keys.dlq_stream(group)
        self._acks = Batcher(self._done_together)
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)

    async def attempts(self, stream: str, found: Sequence[tuple[str, int]]) -> list[Attempt]:
        """The Attempt of each (entry id, delivery number); only redeliveries cost a read."""
        again = [entry_id for entry_id, n in found if n > 1]
        recorded: dict[str, tuple[str | None, int]] = {}
        if again:
            fields = [f for entry_id in again for f in keys.error_fields(stream, entry_id)]
            values = await self.client.hmget(self.errors_key, fields)
            for i, entry_id in enumerate(again):
                error, uncounted = values[2 * i], values[2 * i + 1]
                recorded[entry_id] = (text(error) if error else None, int(uncounted or 0))
        none: tuple[str | None, int] = (None, 0)
        return [Attempt(n, recorded.get(entry_id, none)[1], recorded.get(entry_id, none)[0])
                for entry_id, n in found]

    def _seen(self, entries: Sequence[Entry]) -> list[str]:
        return [keys.seen_key(self.group, e.event.event_id) for e in entries if e.event]

    async def claim(self, entries: Sequence[Entry]) -> list[Outcome | None]:
        """For each entry: None when this copy may be handled (its event_id is now held for it,
        for the dedup window), else Duplicate (another copy was handled) or InFlight (another
        copy is being handled)."""
        window = self.dedup_window_s()
        if not entries or not window:
            return [None] * len(entries)
        tokens = [keys.copy_of(e.stream, e.entry_id) for e in entries]
        found = await self._claim(keys=self._seen(entries), args=[window, *tokens])
        outcomes: list[Outcome | None] = [None] * len(entries)
        conflicts = {int(found[i]) - 1: text(found[i + 1]) for i in range(0, len(found), 2)}
        holders = {holder: keys.copy_at(holder) for holder in set(conflicts.values())}
        async with self.client.pipeline(transaction=False) as pipe:
            for stream, entry_id in holders.values():
                pipe.xpending_range(stream, self.group, min=entry_id, max=entry_id, count=1)
            pending = dict(zip(holders, await pipe.execute(), strict=True)) if holders else {}
        for i, entry in enumerate(entries):
            entry.claimed = i not in conflicts
            if not entry.claimed:
                holder = conflicts[i]
                outcomes[i] = InFlight(holder) if pending[holder] \
                    else Duplicate(holders[holder][1])
        return outcomes

    async def release(self, entries: Sequence[Entry]) -> None:
        """Give back the claims of copies that did not succeed: another copy may run now."""
        claimed = [e for e in entries if e.claimed]
        if claimed:
            await self._release(keys=self._seen(claimed),
                                args=[keys.copy_of(e.stream, e.entry_id) for e in claimed])
        for e in claimed:
            e.claimed = False

    async def done(self, entries: list[Entry]) -> None:
        """Ack `entries` (returns once Redis has them), batched with others of this tick."""
        await self._acks.add(entries)

    async def _done_together(self, done: list[Entry]) -> None:
        async with self.client.pipeline(transaction=False) as pipe:
            for stream in {e.stream for e in done}:
                pipe.xack(stream, self.group, *[e.entry_id for e in done if e.stream == stream])
            retried = [f for e in done if e.deliveries > 1
                       for f in keys.error_fields(e.stream, e.entry_id)]
            if retried:
                pipe.hdel(self.errors_key, *retried)
            await pipe.execute()

    async def skip(self, entries: list[Entry]) -> None:
        """Ack duplicates (of one stream): nothing else to record."""
        await self.client.xack(entries[0].stream, self.group, *[e.entry_id for e in entries])

    async def failed(self, entries: list[Entry], reason: str, *, counted: bool) -> None:
        """Record why their delivery failed (and, when it does not count, that it does not)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for e in entries:
                error_field, uncounted_field = keys.error_fields(e.stream, e.entry_id)
                pipe.hset(self.errors_key, error_field, reason)
                if not counted:
                    pipe.hincrby(self.errors_key, uncounted_field, 1)
            await pipe.execute()

    async def dead_letter(self, entries: Iterable[Entry], error: BaseException) -> None:
        for e in entries:
            fields = deadletter.dead_letter_fields(
                e.fields, error=error, stream=e.stream, entry_id=e.entry_id, group=self.group,
                deliveries=e.deliveries, consumer=self.consumer)
            # Not in the pipeline: the XACK must not run when the XADD was refused (out of
            # memory), or the entry is in neither place.
            await self.client.xadd(self.dlq, fields, maxlen=deadletter.DLQ_MAXLEN)
            async with self.client.pipeline(transaction=False) as pipe:
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
