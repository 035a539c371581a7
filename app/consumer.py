"""The delivery policy: one consumer group read and reclaimed for every handler (SPEC §3).

For each configured stream, a read loop:

    XGROUP CREATE stream group <group_start_id> MKSTREAM     once, and again after NOGROUP
    XREADGROUP GROUP group me COUNT batch_size BLOCK block_ms STREAMS stream >
    → handle the batch (below), then read again

and one claim loop for all streams, every claim_interval_ms:

    XPENDING stream group IDLE <min backoff> <cursor> + 100   (up to 10 pages, see below)
    → for each entry not in flight here, idle long enough for its next attempt:
         own entries:    backoff(deliveries)          (a retry after a failure)
         others' entries: max(claim_idle_ms, backoff) (a dead or stuck instance's work)
    XCLAIM … → handle the batch like new entries
    the walk resumes after the last page on the next tick and starts over after a short page, so
    a dead instance's entries behind many that are not due yet (long backoffs) are still reached
    every minute (or half the timeout): XGROUP DELCONSUMER for consumers idle past
    consumer_idle_timeout_s with nothing pending

Handling a batch:
    undecodable entry                        → DLQ + XACK (MalformedEvent names the field)
    event_id seen within dedup_window_s      → XACK (duplicate)
    same (event_type, client_id) in a batch  → one handler call for all of them (coalesce)
    handler ok                               → XACK + remember event_id
    FatalError / no handler for event_type   → DLQ + XACK
    other error, deliveries < max            → no ACK: pending, retried after backoff
    other error, deliveries = max            → DLQ (MaxDeliveriesExceeded, last error) + XACK
    Unavailable (the store is down)          → no ACK, and not counted towards max: the stream
                                               reads no new entries and retries its pending ones
                                               at the capped backoff until one succeeds

Redis down: loops wait and retry (logged once per outage). NOGROUP or "UNBLOCKED the stream key no
longer exists" (restart without persistence, FLUSHALL, DEL): the group is recreated with a
warning. A wrong password is not an outage: it stops the application with a clear error.
Stop: no new reads; in-flight handlers get `timeout` seconds to finish and be acked; what is
still running then is cancelled and stays pending for another instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from faststream.exceptions import SubscriberNotFound
from redis import exceptions as rx
from redis.asyncio import Redis

from app import dlq, events
from app.config import Config, LiveConfig, Subscriber
from app.errors import (
    FatalError,
    MalformedEvent,
    MaxDeliveriesExceeded,
    RetryableError,
    Unavailable,
)
from app.events import Event
from app.metrics import CLAIMS, EVENTS, GROUP_RECREATED, HANDLE_SECONDS, RECONNECTS

log = logging.getLogger("secretmagic")

Fields = Mapping[bytes, bytes]
Handler = Callable[[dict[str, Any]], Awaitable[Any]]
CLEANUP_EVERY_S = 60.0
CLAIM_PAGE = 100  # pending entries per XPENDING call
CLAIM_PAGES = 10  # XPENDING calls per stream per claim tick, at most


@dataclass
class Delivery:
    """One stream entry handed to this consumer, with what the policy knows of it."""

    stream: str
    entry_id: str
    fields: Fields
    deliveries: int
    event: Event | None = None
    riders: list[Delivery] = field(default_factory=list)  # coalesced into this one

    @property
    def all(self) -> list[Delivery]:
        return [self, *self.riders]

    def context(self, **extra: Any) -> dict[str, Any]:
        ctx: dict[str, Any] = {"stream": self.stream, "entry_id": self.entry_id,
                               "deliveries": self.deliveries}
        if self.event:
            ctx |= {"event_id": str(self.event.event_id), "event_type": self.event.event_type,
                    "client_id": self.event.client_id}
        if self.riders:
            ctx["coalesced"] = len(self.riders)
        return ctx | extra


def backoff_ms(policy: Subscriber, deliveries: int, rand: Callable[[], float] = random.random
               ) -> float:
    """Delay before attempt `deliveries + 1`: base * factor^(deliveries-1), capped, ± jitter."""
    b = policy.backoff
    delay = min(b.base_ms * b.factor ** max(deliveries - 1, 0), b.max_ms)
    return delay * (1 + b.jitter * (2 * rand() - 1))


class StreamConsumer:
    """Reads and reclaims one consumer group's streams and applies the policy for each handler."""

    def __init__(self, client: Redis, live: LiveConfig, consumer: str,
                 handlers: Mapping[str, Handler], *, redis_label: str,
                 on_fatal: Callable[[str], None]) -> None:
        self.client = client
        self.live = live
        self.consumer = consumer
        self.handlers = handlers
        self.redis_label = redis_label  # host:port for messages, never the password
        self.on_fatal = on_fatal
        self.group = live.current.messenger.subscriber.consumer_group
        self.inflight: set[tuple[str, str]] = set()
        self.redis_ok: bool | None = None
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._work: dict[str, set[asyncio.Task[None]]] = {}  # handler runs per stream
        self._slots: dict[str, _Slots] = {}
        self._acks = _Batcher(self._ack_together)
        self._claimer: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._groups_ready: set[str] = set()
        self._errors: dict[str, str] = {}  # stream -> the error last logged for it
        self._last_cleanup = time.monotonic()
        self._claim_from: dict[str, str] = {}  # stream -> where the walk of its pending list is
        self.waiting: dict[str, str] = {}  # stream -> the outage (Unavailable) it waits out
        live.subscribe(self._on_config)

    # --- lifecycle -------------------------------------------------------------------------------

    @property
    def policy(self) -> Subscriber:
        return self.live.current.messenger.subscriber

    @property
    def running(self) -> bool:
        return bool(self._readers) and not self._stopping.is_set()

    def streams(self) -> list[str]:
        return sorted(self._readers)

    async def start(self) -> None:
        self._stopping.clear()
        await self._apply(self.live.current)

    async def stop(self, timeout: float) -> None:
        """Stop reading; give in-flight handlers `timeout` s; cancel the rest (stays pending)."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        loops = [*self._readers.values(), *([self._claimer] if self._claimer else [])]
        if loops:  # they return within one block_ms / claim interval
            await asyncio.wait(loops, timeout=timeout)
        work = {t for tasks in self._work.values() for t in tasks}
        if work:
            _, unfinished = await asyncio.wait(work, timeout=max(deadline - time.monotonic(), 0))
            if unfinished:
                log.warning("stop timeout: %d handler run(s) cancelled; their entries stay "
                            "pending for another instance", len(unfinished), extra=self._ctx())
        for task in [*loops, *work]:
            task.cancel()
        await asyncio.gather(*loops, *work, return_exceptions=True)
        self._readers.clear()
        self._claimer = None

    async def _on_config(self, old: Config, new: Config) -> None:
        if self._stopping.is_set():
            return
        await self._apply(new)  # then say so: once logged, the readers have stopped or started
        enabled = new.messenger.subscriber.enabled
        if enabled != old.messenger.subscriber.enabled:
            log.warning("subscriber.enabled is %s: consumption %s", str(enabled).lower(),
                        "resumes" if enabled else "pauses (in-flight work finishes and is acked)",
                        extra=self._ctx())

    async def _apply(self, config: Config) -> None:
        """Run exactly the read loops the configuration asks for (hot reload lands here)."""
        sub = config.messenger.subscriber
        wanted = set(sub.streams) if sub.enabled else set()
        for stream in sorted(wanted - self._readers.keys()):
            if stream not in self.handlers:
                log.error("stream %r is configured but no handler subscribes to it; not read",
                          stream, extra=self._ctx(stream=stream))
                continue
            # Create the group now when Redis answers, so entries added after start() are seen
            # even with group_start_id "$"; the loop retries it otherwise.
            await self._redis(stream, self.client.ping)
            log.info("consuming %s", stream, extra=self._ctx(stream=stream))
            self._work.setdefault(stream, set())
            self._slots.setdefault(stream, _Slots(lambda: self.policy.concurrency))
            self._readers[stream] = asyncio.create_task(self._read_loop(stream),
                                                        name=f"read:{stream}")
        for stream in sorted(self._readers.keys() - wanted):
            self.waiting.pop(stream, None)
            task = self._readers.pop(stream)
            await asyncio.wait([task])  # the loop sees it was removed and returns
            # Its handler runs go on to their ack; the watcher is not held up by a slow one.
            log.info("no longer consuming %s; in-flight entries finish first", stream,
                     extra=self._ctx(stream=stream))
        if self._readers and self._claimer is None:
            self._claimer = asyncio.create_task(self._claim_loop(), name="claim")
        elif not self._readers and self._claimer is not None:
            claimer, self._claimer = self._claimer, None
            await asyncio.wait([claimer])

    def _active(self, stream: str) -> bool:
        return not self._stopping.is_set() and stream in self._readers

    # --- the two loops ---------------------------------------------------------------------------

    async def _read_loop(self, stream: str) -> None:
        work = self._work[stream]
        while self._active(stream):
            policy = self.policy
            if len(work) >= policy.concurrency:  # enough queued: read more when one finishes
                await asyncio.wait(work, return_when=asyncio.FIRST_COMPLETED)
                continue
            if stream in self.waiting:  # new entries would fail the same way: leave them queued
                await self._pause(policy.block_ms / 1e3)
                continue
            reply = await self._redis(stream, lambda p=policy: self.client.xreadgroup(  # type: ignore[misc]
                self.group, self.consumer, {stream: ">"}, count=p.batch_size, block=p.block_ms))
            if not reply:
                continue
            for _, entries in reply:
                batch = [Delivery(stream, _text(eid), fields, 1) for eid, fields in entries]
                # An outage while acking leaves entries pending: they are claimed again later.
                await self._redis(stream, lambda b=batch: self._handle(stream, b))  # type: ignore[misc]

    async def _claim_loop(self) -> None:
        while self._readers and not self._stopping.is_set():
            await self._pause(self.policy.claim_interval_ms / 1e3)
            for stream in list(self._readers):
                if self._active(stream):
                    await self._redis(stream, lambda s=stream: self._claim(s))  # type: ignore[misc]
                if stream in self.waiting:
                    await self._redis(stream, lambda s=stream: self._mine_pending(s))  # type: ignore[misc]
            every = min(CLEANUP_EVERY_S, self.policy.consumer_idle_timeout_s / 2)
            if time.monotonic() - self._last_cleanup > every:
                self._last_cleanup = time.monotonic()
                for stream in list(self._readers):
                    await self._redis(stream, lambda s=stream: self._remove_idle_consumers(s))  # type: ignore[misc]

    async def _claim(self, stream: str) -> None:
        due = await self._due(stream)
        if not due:
            return
        # XCLAIM re-checks the idle time atomically: an entry another instance took meanwhile
        # has been reset and is left alone.
        claimed: list[tuple[bytes, Fields | None]] = await self.client.xclaim(  # type: ignore[assignment]
            stream, self.group, self.consumer, message_ids=list(due),
            min_idle_time=int(min(wait for _, wait in due.values())))
        batch = []
        for eid, fields in claimed:
            entry_id = _text(eid)
            if fields is None:  # trimmed (MAXLEN) or deleted before anyone handled it
                await self.client.xack(stream, self.group, entry_id)
                log.warning("pending entry no longer in the stream (trimmed?); acked",
                            extra=self._ctx(stream=stream, entry_id=entry_id))
                continue
            batch.append(Delivery(stream, entry_id, fields, due[entry_id][0] + 1))
        if batch:
            CLAIMS.labels(stream).inc(len(batch))
            log.info("claimed %d pending entr%s", len(batch), "y" if len(batch) == 1 else "ies",
                     extra=self._ctx(stream=stream, entry_ids=[d.entry_id for d in batch]))
            await self._handle(stream, batch)

    async def _mine_pending(self, stream: str) -> None:
        """A stream waiting out an outage resumes also when none of its entries is pending here
        any more (another instance retried them, or they were trimmed)."""
        if not await self.client.xpending_range(stream, self.group, min="-", max="+", count=1,
                                                consumername=self.consumer):
            self._resume(stream, "nothing of this instance is pending there any more")

    async def _due(self, stream: str) -> dict[str, tuple[int, float]]:
        """Pending entries ready for another attempt: entry id -> (deliveries so far, idle needed).

        Walks the pending list from where the last tick stopped, a page at a time, until it finds
        some or has read CLAIM_PAGES pages; a short page means the end, and the next walk starts
        over from the oldest entry.
        """
        policy = self.policy
        floor = int(min(policy.backoff.base_ms * (1 - policy.backoff.jitter), policy.claim_idle_ms))
        due: dict[str, tuple[int, float]] = {}
        for _ in range(CLAIM_PAGES):
            pending: list[dict[str, Any]] = await self.client.xpending_range(
                stream, self.group, min=self._claim_from.get(stream, "-"), max="+",
                count=CLAIM_PAGE, idle=floor)
            for p in pending:
                entry_id = _text(p["message_id"])
                if (stream, entry_id) in self.inflight:
                    continue  # ours and still running: not a retry, whatever its idle time
                wait = backoff_ms(policy, p["times_delivered"])
                if _text(p["consumer"]) != self.consumer:
                    wait = max(wait, policy.claim_idle_ms)
                if p["time_since_delivered"] >= wait:
                    due[entry_id] = (p["times_delivered"], wait)
            if len(pending) < CLAIM_PAGE:
                self._claim_from.pop(stream, None)
                break
            self._claim_from[stream] = "(" + _text(pending[-1]["message_id"])  # exclusive
            if due:
                break
        return due

    async def _remove_idle_consumers(self, stream: str) -> None:
        timeout_ms = self.policy.consumer_idle_timeout_s * 1000
        for c in await self.client.xinfo_consumers(stream, self.group):
            name = _text(c["name"])
            if name != self.consumer and c["pending"] == 0 and c["idle"] > timeout_ms:
                # Only with nothing pending: DELCONSUMER would drop a consumer's pending entries.
                await self.client.xgroup_delconsumer(stream, self.group, name)
                log.info("removed idle consumer %s", name, extra=self._ctx(stream=stream))

    # --- Redis calls with outage and NOGROUP handling --------------------------------------------

    async def _redis(self, stream: str, call: Callable[[], Awaitable[Any]]) -> Any:
        try:
            if stream not in self._groups_ready:
                await self._create_group(stream)
            result = await call()
        except rx.AuthenticationError as exc:
            self._fatal(f"Redis at {self.redis_label} refused the password: {exc}")
        except rx.ResponseError as exc:
            text = str(exc)
            if "NOGROUP" in text or "UNBLOCKED" in text:
                log.warning("consumer group %s of %s is gone (%s); recreating it", self.group,
                            stream, text.split("\n")[0], extra=self._ctx(stream=stream))
                GROUP_RECREATED.labels(stream).inc()
                self._groups_ready.discard(stream)
            elif "NOAUTH" in text or "WRONGPASS" in text:
                self._fatal(f"Redis at {self.redis_label} requires a valid password: {text}")
            else:
                await self._stuck(stream, exc)  # e.g. WRONGTYPE: the key is not a stream
        except (rx.ConnectionError, rx.TimeoutError, OSError) as exc:
            self._outage(exc)
            await self._pause(1.0)
        except Exception as exc:
            await self._stuck(stream, exc)  # a bug: the entries stay pending and are retried
        else:
            self._errors.pop(stream, None)
            if self.redis_ok is not True:
                if self.redis_ok is False:
                    RECONNECTS.inc()
                    log.info("Redis at %s is reachable again", self.redis_label,
                             extra=self._ctx())
                self.redis_ok = True
            return result
        return None

    async def _stuck(self, stream: str, exc: Exception) -> None:
        """Log what keeps a stream from progressing (once per distinct error), then wait."""
        text = f"{type(exc).__name__}: {exc}"
        if self._errors.get(stream) != text:
            self._errors[stream] = text
            log.error("consuming %s is stuck: %s; retrying every second", stream, text,
                      exc_info=not isinstance(exc, rx.ResponseError),
                      extra=self._ctx(stream=stream))
        await self._pause(1.0)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _outage(self, exc: BaseException) -> None:
        if self.redis_ok is not False:
            log.error("Redis at %s is unreachable; waiting for it (%s)", self.redis_label, exc,
                      extra=self._ctx())
        self.redis_ok = False

    def _fatal(self, message: str) -> None:
        log.critical(message, extra=self._ctx())
        self._stopping.set()
        self.on_fatal(message)

    async def _create_group(self, stream: str) -> None:
        try:
            await self.client.xgroup_create(stream, self.group, id=self.policy.group_start_id,
                                            mkstream=True)
            log.info("created consumer group %s on %s at %s", self.group, stream,
                     self.policy.group_start_id, extra=self._ctx(stream=stream))
        except rx.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups_ready.add(stream)

    # --- the policy ------------------------------------------------------------------------------

    async def _handle(self, stream: str, batch: list[Delivery]) -> None:
        """Settle what can be settled now (DLQ, duplicates); start a handler run for the rest.

        From here until its run ends an entry is in `inflight`: the claim loop never retries
        what this instance holds, however long it waits for a slot or runs.
        """
        keys = {(stream, d.entry_id) for d in batch}
        self.inflight |= keys
        try:
            runs = await self._settle(stream, batch)
        finally:
            self.inflight -= keys
        for d in runs:
            self.inflight.update((x.stream, x.entry_id) for x in d.all)
            task = asyncio.create_task(self._run(d), name=f"handle:{stream}:{d.entry_id}")
            self._work[stream].add(task)
            task.add_done_callback(self._work[stream].discard)

    async def _settle(self, stream: str, batch: list[Delivery]) -> list[Delivery]:
        policy = self.policy
        good: list[Delivery] = []
        for d in batch:
            if d.deliveries > policy.max_deliveries:
                error, outages = await self._failures(d)
                if d.deliveries - outages > policy.max_deliveries:
                    # The previous attempt never finished (a consumer died while handling it).
                    await self._dead_letter([d], MaxDeliveriesExceeded(
                        f"delivered {d.deliveries} times ({outages} of them during an outage;"
                        f" max_deliveries={policy.max_deliveries}); last error: "
                        f"{error or 'the last attempt did not finish'}"))
                    continue
            try:
                d.event = events.decode(d.fields)
            except MalformedEvent as exc:
                EVENTS.labels(stream, "malformed").inc()
                await self._dead_letter([d], exc)
                continue
            good.append(d)
        good = await self._skip_duplicates(good)
        return _coalesce(good) if policy.coalesce else good

    async def _run(self, d: Delivery) -> None:
        try:
            async with self._slots[d.stream]:
                await self._redis(d.stream, lambda: self._dispatch(d))
        finally:
            self.inflight.difference_update((x.stream, x.entry_id) for x in d.all)

    async def _dispatch(self, d: Delivery) -> None:
        log.debug("event received", extra=self._ctx(**d.context()))
        started = time.perf_counter()
        try:
            # A stream entry as FastStream's own reader passes it, plus the decoded event.
            await self.handlers[d.stream]({
                "type": "stream", "channel": d.stream, "message_ids": [d.entry_id.encode()],
                "data": dict(d.fields), "event": d.event})
        except (FatalError, SubscriberNotFound) as exc:
            error: BaseException = exc
            if isinstance(exc, SubscriberNotFound):
                assert d.event
                error = FatalError(f"no handler for event_type {d.event.event_type!r} "
                                   f"on stream {d.stream!r}")
            await self._dead_letter(d.all, error)
        except Exception as exc:
            await self._failed(d, exc)
        else:
            await self._ack(d, time.perf_counter() - started)

    async def _ack(self, d: Delivery, seconds: float) -> None:
        await self._acks.add(d.all)  # returns once this run's entries are acked in Redis
        self._resume(d.stream, "an event succeeded")
        HANDLE_SECONDS.labels(d.stream).observe(seconds)
        EVENTS.labels(d.stream, "handled").inc()
        if d.riders:
            EVENTS.labels(d.stream, "coalesced").inc(len(d.riders))
        log.info("event handled", extra=self._ctx(**d.context(duration_ms=round(seconds * 1e3, 1))))

    async def _ack_together(self, done: list[Delivery]) -> None:
        """One round trip for every run that finished in the same loop tick: XACK per stream,
        remember each event_id, forget recorded errors of retried entries."""
        policy = self.policy
        async with self.client.pipeline(transaction=False) as pipe:
            for stream in {d.stream for d in done}:
                pipe.xack(stream, self.group, *[d.entry_id for d in done if d.stream == stream])
            retried = [f for d in done if d.deliveries > 1 for f in _failure_fields(d)]
            if retried:
                pipe.hdel(self._errors_key, *retried)
            if policy.dedup_window_s:
                for d in done:
                    pipe.set(self._seen_key(d.event), d.entry_id, nx=True,
                             ex=policy.dedup_window_s)
            await pipe.execute()

    def _resume(self, stream: str, why: str) -> None:
        if self.waiting.pop(stream, None):
            log.warning("%s: %s; reading new entries resumes", stream, why,
                        extra=self._ctx(stream=stream))

    async def _failed(self, d: Delivery, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        outage = isinstance(exc, Unavailable)
        if outage and d.stream not in self.waiting:
            self.waiting[d.stream] = reason
            log.error("reading %s paused: what it depends on is unavailable; its pending entries "
                      "are retried at most every %.0f s and never dead-lettered for this",
                      d.stream, self.policy.backoff.max_ms / 1e3,
                      extra=self._ctx(stream=d.stream, error=reason))
        # Deliveries that failed in an outage are not the event's fault: they are counted apart
        # and do not use up max_deliveries.
        async with self.client.pipeline(transaction=False) as pipe:
            for x in d.all:
                error_field, outages_field = _failure_fields(x)
                pipe.hset(self._errors_key, error_field, reason)
                if outage:
                    pipe.hincrby(self._errors_key, outages_field, 1)
            pipe.hget(self._errors_key, _failure_fields(d)[1])
            outages = int((await pipe.execute())[-1] or 0)
        own = d.deliveries - outages
        if own >= self.policy.max_deliveries:
            await self._dead_letter(d.all, MaxDeliveriesExceeded(
                f"delivered {d.deliveries} times ({outages} of them during an outage;"
                f" max_deliveries={self.policy.max_deliveries}); last error: {reason}"))
            return
        EVENTS.labels(d.stream, "retried").inc(len(d.all))
        retry_in = backoff_ms(self.policy, d.deliveries, rand=lambda: 0.5)
        log.warning("handler failed; will retry in ~%.1f s", retry_in / 1e3,
                    extra=self._ctx(**d.context(error=reason)),
                    exc_info=not isinstance(exc, RetryableError))

    async def _dead_letter(self, deliveries: Iterable[Delivery], exc: BaseException) -> None:
        for d in deliveries:
            fields = dlq.dead_letter_fields(
                d.fields, error=exc, stream=d.stream, entry_id=d.entry_id, group=self.group,
                deliveries=d.deliveries, consumer=self.consumer)
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.xadd(dlq.dlq_stream(self.group), fields, maxlen=dlq.DLQ_MAXLEN)
                pipe.xack(d.stream, self.group, d.entry_id)
                pipe.hdel(self._errors_key, *_failure_fields(d))
                await pipe.execute()
            EVENTS.labels(d.stream, "dead_lettered").inc()
            log.error("event dead-lettered", extra=self._ctx(
                **d.context(dlq=dlq.dlq_stream(self.group)), error=f"{type(exc).__name__}: {exc}"))

    async def _skip_duplicates(self, batch: list[Delivery]) -> list[Delivery]:
        if not batch or not self.policy.dedup_window_s:
            return batch
        seen = await self.client.mget([self._seen_key(d.event) for d in batch if d.event])
        fresh = []
        for d, handled_as in zip(batch, seen, strict=True):
            if handled_as is None:
                fresh.append(d)
                continue
            await self.client.xack(d.stream, self.group, d.entry_id)
            EVENTS.labels(d.stream, "duplicate").inc()
            log.info("duplicate event_id skipped", extra=self._ctx(
                **d.context(handled_as=_text(handled_as))))
        return fresh

    async def _failures(self, d: Delivery) -> tuple[str | None, int]:
        """The entry's recorded last error, and how many of its deliveries failed in an outage."""
        error, outages = await self.client.hmget(self._errors_key, _failure_fields(d))
        return (_text(error) if error else None), int(outages or 0)

    @property
    def _errors_key(self) -> str:
        return dlq.errors_key(self.group)

    def _seen_key(self, event: Event | None) -> str:
        assert event
        return f"{self.group}:seen:{event.event_id}"

    def _ctx(self, **context: Any) -> dict[str, Any]:
        error = context.pop("error", None)
        return {"category": "messenger", "error": error,
                "context": {"group": self.group, "consumer": self.consumer, **context}}


class _Batcher:
    """Collects the items added during one event-loop tick and hands them to `flush` together;
    each `add` returns when its batch is flushed (or raises what the flush raised)."""

    def __init__(self, flush: Callable[[list[Delivery]], Coroutine[Any, Any, None]]) -> None:
        self.flush = flush
        self._waiting: list[tuple[list[Delivery], asyncio.Future[None]]] = []
        self._flushing: set[asyncio.Task[None]] = set()

    async def add(self, items: list[Delivery]) -> None:
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
                elif done.exception():
                    future.set_exception(done.exception())  # type: ignore[arg-type]
                else:
                    future.set_result(None)

        task.add_done_callback(settle)


class _Slots:
    """At most `limit()` handler runs at once; the limit is read live (hot reload)."""

    def __init__(self, limit: Callable[[], int]) -> None:
        self.limit = limit
        self.running = 0
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.running < self.limit())
            self.running += 1
            if self.running < self.limit():
                self._changed.notify(1)  # room for more (the limit was raised): pass it on

    async def __aexit__(self, *exc: object) -> None:
        async with self._changed:
            self.running -= 1
            self._changed.notify(1)  # one slot freed: wake one waiter, not all


def _coalesce(batch: list[Delivery]) -> list[Delivery]:
    """One delivery per (event_type, client_id); the latest carries the earlier ones as riders.

    Safe because events are notifications (seed: Event Notification Pattern): every handler
    recomputes a client's state from the store, so one run serves every event of that client.
    """
    latest: dict[tuple[str, str], Delivery] = {}
    for d in batch:
        assert d.event
        key = (d.event.event_type, d.event.client_id)
        if key in latest:
            d.riders = [*latest[key].all]
            latest[key].riders = []
        latest[key] = d
    return list(latest.values())


def _failure_fields(d: Delivery) -> tuple[str, str]:
    """Its fields in the group's errors hash (dlq.errors_key): the last error, the outage count."""
    return f"{d.stream}/{d.entry_id}", f"{d.stream}/{d.entry_id}#outages"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
