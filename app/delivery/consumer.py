"""The consumer group, read and reclaimed for every route of the handlers (SPEC §3).

For each stream to read, a read loop:

    XGROUP CREATE stream group <group_start_id> MKSTREAM     once, and again after NOGROUP
    XREADGROUP GROUP group me COUNT batch_size BLOCK block_ms STREAMS stream >
    → handle the entries (below), then read again

and one claim loop for all streams, every claim_interval_ms (app.delivery.claims): a dead or
stuck consumer's entries and this consumer's own failed ones, once their backoff has passed.

Handling the entries of one read or claim: app.delivery.settle prepares them (admit, decode once,
route, claim each event_id, plan the runs); each run waits for one of `concurrency` slots of its
stream, the route's FastStream subscriber runs the handler (middlewares, DI, publishers), and
its outcome goes through policy.decide, entry by entry, back to settle, which applies it.

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
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis import exceptions as rx
from redis.asyncio import Redis

from app.delivery import policy as p
from app.delivery.claims import Claims
from app.delivery.ledger import Fields, Ledger
from app.delivery.settle import Run, Settler, members, refusal
from app.delivery.slots import Slots
from app.observability.metrics import CLAIMS, EVENTS, GROUP_RECREATED, HANDLE_SECONDS, RECONNECTS
from core import logs, wire
from handlers.routing import EVENTS_KEY, WRITE_VERSION_KEY, Routes
from settings import Config, LiveConfig

CLEANUP_EVERY_S = 60.0


class StreamConsumer:
    """Reads and reclaims one consumer group's streams and applies the policy for each route."""

    def __init__(self, client: Redis, live: LiveConfig, consumer: str, routes: Routes, *,
                 redis_label: str, on_fatal: Callable[[str], None]) -> None:
        self.client = client
        self.live = live
        self.consumer = consumer
        self.routes = routes
        self.redis_label = redis_label  # host:port for messages, never the password
        self.on_fatal = on_fatal
        self.group = live.current.messenger.subscriber.consumer_group
        self.log = logs.get("messenger", group=self.group, consumer=consumer)
        self.ledger = Ledger(client, self.group, consumer, lambda: self.policy.dedup_window_s)
        self.settler = Settler(self.ledger, routes, self.log, lambda: self.policy)
        self.claims = Claims(client, self.group, consumer)
        self.inflight: set[tuple[str, str]] = set()  # (stream, entry id) held by this consumer
        self.redis_ok: bool | None = None
        self._unreachable: set[str] = set()  # streams whose last Redis call failed to connect
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._work: dict[str, set[asyncio.Task[None]]] = {}  # handler runs per stream
        self._slots: dict[str, Slots] = {}
        self._claimer: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._groups_ready: set[str] = set()
        self._errors: dict[str, str] = {}  # stream -> the error last logged for it
        self._last_cleanup = time.monotonic()
        live.subscribe(self._on_config)

    # --- lifecycle -------------------------------------------------------------------------------

    @property
    def policy(self) -> p.Policy:
        return self.live.current.messenger.subscriber

    @property
    def waiting(self) -> dict[str, str]:
        """stream -> the outage (Unavailable) its reading waits out."""
        return self.settler.waiting

    @property
    def running(self) -> bool:
        return bool(self._readers) and not self._stopping.is_set()

    def streams(self) -> list[str]:
        return sorted(self._readers)

    async def start(self) -> None:
        self._stopping.clear()
        self._report_unread(self.live.current)
        await self._run_readers(self.live.current)

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
                self.log.warning("stop timeout: %d handler run(s) cancelled; their entries stay "
                                 "pending for another instance", len(unfinished))
        for task in [*loops, *work]:
            task.cancel()
        await asyncio.gather(*loops, *work, return_exceptions=True)
        self._readers.clear()
        self._claimer = None

    async def _on_config(self, old: Config, new: Config) -> None:
        if self._stopping.is_set():
            return
        if new.messenger.subscriber.streams != old.messenger.subscriber.streams:
            self._report_unread(new)
        await self._run_readers(new)  # then say so: once logged, the readers have (re)started
        enabled = new.messenger.subscriber.enabled
        if enabled != old.messenger.subscriber.enabled:
            self.log.warning("subscriber.enabled is %s: consumption %s", str(enabled).lower(),
                             "resumes" if enabled
                             else "pauses (in-flight work finishes and is acked)")

    def _wanted(self, config: Config) -> list[str]:
        sub = config.messenger.subscriber
        return list(sub.streams if sub.streams is not None else self.routes.streams())

    def _report_unread(self, config: Config) -> None:
        """A handler whose stream the configuration does not read never runs: say so loudly."""
        unread = sorted(set(self.routes.streams()) - set(self._wanted(config)))
        for route in (r for r in self.routes.table() if r.stream in unread):
            self.log.warning("handler %s for %s on %s never runs: %s is not in "
                             "messenger.subscriber.streams", route.handler, route.event_type,
                             route.stream, route.stream, stream=route.stream)

    async def _run_readers(self, config: Config) -> None:
        """Run exactly the read loops the configuration asks for (hot reload lands here)."""
        wanted = set(self._wanted(config)) if config.messenger.subscriber.enabled else set()
        for stream in sorted(wanted - self._readers.keys()):
            handled = [r for r in self.routes.table() if r.stream == stream]
            if not handled:
                self.log.error("stream %r is configured but no handler subscribes to it; "
                               "not read", stream, stream=stream)
                continue
            # Create the group now when Redis answers, so entries added after start() are seen
            # even with group_start_id "$"; the loop retries it otherwise.
            await self._redis(stream, self.client.ping)
            self.log.info("consuming %s: %s", stream, ", ".join(
                f"{r.event_type} -> {r.handler}{' (batch)' if r.batch else ''}" for r in handled),
                stream=stream)
            self._work.setdefault(stream, set())
            self._slots.setdefault(stream, Slots(lambda: self.policy.concurrency))
            self._readers[stream] = asyncio.create_task(self._read_loop(stream),
                                                        name=f"read:{stream}")
        for stream in sorted(self._readers.keys() - wanted):
            self.waiting.pop(stream, None)
            self._unreachable.discard(stream)  # what it waited for no longer matters
            task = self._readers.pop(stream)
            await asyncio.wait([task])  # the loop sees it was removed and returns
            # Its handler runs go on to their ack; the watcher is not held up by a slow one.
            self.log.info("no longer consuming %s; in-flight entries finish first", stream,
                          stream=stream)
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
            reply = await self._redis(stream, lambda q=policy: self.client.xreadgroup(  # type: ignore[misc]
                self.group, self.consumer, {stream: ">"}, count=q.batch_size, block=q.block_ms))
            for _, entries in reply or ():
                found = [(wire.text(eid), fields, 1) for eid, fields in entries]
                # An outage while acking leaves entries pending: they are claimed again later.
                await self._redis(stream, lambda f=found: self._handle(stream, f))  # type: ignore[misc]

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
                    await self._redis(stream, lambda s=stream: self._cleanup(s))  # type: ignore[misc]

    async def _claim(self, stream: str) -> None:
        due = await self.claims.due(stream, self.policy, self.inflight, self.settler.retrying)
        if not due:
            return
        found: list[tuple[str, Fields, int]] = []
        for entry_id, fields in await self.claims.claim(stream, due):
            if fields is None:  # trimmed (MAXLEN) or deleted before anyone handled it
                await self.client.xack(stream, self.group, entry_id)
                self.settler.retrying.discard((stream, entry_id))
                self.log.warning("pending entry no longer in the stream (trimmed?); acked",
                                 stream=stream, entry_id=entry_id)
                continue
            found.append((entry_id, fields, due[entry_id][0] + 1))
        if found:
            CLAIMS.labels(stream).inc(len(found))
            self.log.info("claimed %d pending entr%s", len(found),
                          "y" if len(found) == 1 else "ies", stream=stream,
                          entry_ids=[entry_id for entry_id, _, _ in found])
            await self._handle(stream, found)

    async def _mine_pending(self, stream: str) -> None:
        """A stream waiting out an outage resumes also when none of its entries is pending here
        any more (another instance retried them, or they were trimmed)."""
        if not await self.claims.has_own_pending(stream):
            self.settler.resume(stream, "nothing of this instance is pending there any more")

    async def _cleanup(self, stream: str) -> None:
        for name in await self.claims.remove_idle_consumers(
                stream, self.policy.consumer_idle_timeout_s):
            self.log.info("removed idle consumer %s", name, stream=stream)

    # --- the policy ------------------------------------------------------------------------------

    async def _handle(self, stream: str, found: list[tuple[str, Fields, int]]) -> None:
        """Settle what can be settled now (DLQ, duplicates); start a handler run for the rest.

        From here until its run ends an entry is in `inflight`: the claim loop never retries
        what this instance holds, however long it waits for a slot or runs.
        """
        held = {(stream, entry_id) for entry_id, _, _ in found}
        self.inflight |= held
        try:
            runs = await self.settler.prepare(stream, found)
        except Exception:
            # Not all settled (Redis failed mid-way): those left pending are this process's
            # to claim again (settle.Settler.retrying), as if settled without an ack.
            self.settler.retrying |= held
            raise
        finally:
            self.inflight -= held
        for run in runs:
            self.inflight.update((e.stream, e.entry_id) for e in members(run))
            task = asyncio.create_task(self._run(run), name=f"handle:{stream}:{run[1][0].entry_id}")
            self._work[stream].add(task)
            task.add_done_callback(self._work[stream].discard)

    async def _run(self, run: Run) -> None:
        route, _ = run
        try:
            async with self._slots[route.stream]:
                await self._redis(route.stream, lambda: self._dispatch(run))
        finally:
            self.inflight.difference_update((e.stream, e.entry_id) for e in members(run))

    async def _dispatch(self, run: Run) -> None:
        """Run the handler through its route's FastStream subscriber (middlewares, DI,
        publishers); settle every entry the run serves by the policy's decision for it."""
        route, leads = run
        if self.log.enabled(logging.DEBUG):
            for e in leads:
                self.log.debug("event received", **e.context())
        started = time.perf_counter()
        try:
            await route.subscriber.process_message({
                "type": "bstream" if route.batch else "stream", "channel": route.stream,
                "message_ids": [e.entry_id.encode() for e in leads],
                "data": [e.fields for e in leads] if route.batch else leads[0].fields,
                EVENTS_KEY: [e.event for e in leads],
                # The store refuses results older than what it holds (core.errors.Superseded).
                WRITE_VERSION_KEY: max(wire.position(m.entry_id) for m in members(run))})
        except Exception as exc:
            outcome = refusal(exc) or exc  # Redis refusing the handler's writes: an outage
            for e in members(run):
                await self.settler.apply([e], p.decide(e.attempt, outcome, self.policy),
                                         cause=outcome)
            return
        seconds = time.perf_counter() - started
        await self.settler.apply(members(run), p.Ack("handled"))
        self.settler.resume(route.stream, "an event succeeded")
        HANDLE_SECONDS.labels(route.stream).observe(seconds)
        EVENTS.labels(route.stream, "handled").inc(len(leads))
        if riders := sum(len(e.riders) for e in leads):
            EVENTS.labels(route.stream, "coalesced").inc(riders)
        if self.log.enabled(logging.INFO):
            for e in leads:
                self.log.info("event handled", **e.context(duration_ms=round(seconds * 1e3, 1)))

    # --- Redis calls with outage and NOGROUP handling --------------------------------------------

    async def _redis(self, stream: str, call: Callable[[], Awaitable[Any]]) -> Any:
        try:
            if stream not in self._groups_ready:
                await self._create_group(stream)
            result = await call()
        except rx.AuthenticationError as exc:
            self._fatal(f"Redis at {self.redis_label} refused the password: {exc}")
        except rx.NoPermissionError as exc:  # before ResponseError: a subclass of it
            self._fatal(f"Redis at {self.redis_label}: the user lacks a permission the worker "
                        f"needs (docs/redis-acl.md): {exc}")
        except rx.ResponseError as exc:
            message = str(exc)
            if "NOGROUP" in message or "UNBLOCKED" in message:
                self.log.warning("consumer group %s of %s is gone (%s); recreating it",
                                 self.group, stream, message.split("\n")[0], stream=stream)
                GROUP_RECREATED.labels(stream).inc()
                self._groups_ready.discard(stream)
            elif "NOAUTH" in message or "WRONGPASS" in message:
                self._fatal(f"Redis at {self.redis_label} requires a valid password: {message}")
            else:
                await self._stuck(stream, exc)  # e.g. WRONGTYPE: the key is not a stream
        except (rx.ConnectionError, rx.TimeoutError, OSError) as exc:
            self.claims.replies_lost()  # an XREADGROUP's entries may have been lost with it
            self._outage(stream, exc)
            await self._pause(1.0)
        except Exception as exc:
            await self._stuck(stream, exc)  # a bug: the entries stay pending and are retried
        else:
            self._errors.pop(stream, None)
            self._unreachable.discard(stream)
            if self.redis_ok is not True and not self._unreachable:
                if self.redis_ok is False:
                    RECONNECTS.inc()
                    self.log.info("Redis at %s is reachable again", self.redis_label)
                self.redis_ok = True
            return result
        return None

    async def _stuck(self, stream: str, exc: Exception) -> None:
        """Log what keeps a stream from progressing (once per distinct error), then wait."""
        message = p.describe(exc)
        if self._errors.get(stream) != message:
            self._errors[stream] = message
            self.log.error("consuming %s is stuck: %s; retrying every second", stream, message,
                           exc_info=not isinstance(exc, rx.ResponseError), stream=stream)
        await self._pause(1.0)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _outage(self, stream: str, exc: BaseException) -> None:
        """One line per outage, not per failed call: Redis is reachable again once every stream
        that failed has succeeded (in a cluster, the streams of the live masters go on
        succeeding while a failed master's are waiting for its replica)."""
        if self.redis_ok is not False:
            self.log.error("Redis at %s is unreachable; waiting for it (%s)", self.redis_label,
                           exc)
        self._unreachable.add(stream)
        self.redis_ok = False

    def _fatal(self, message: str) -> None:
        self.log.critical(message)
        self._stopping.set()
        self.on_fatal(message)

    async def _create_group(self, stream: str) -> None:
        try:
            await self.client.xgroup_create(stream, self.group, id=self.policy.group_start_id,
                                            mkstream=True)
            self.log.info("created consumer group %s on %s at %s", self.group, stream,
                          self.policy.group_start_id, stream=stream)
        except rx.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups_ready.add(stream)
