"""Publishing through the outbox: `publish()` XADDs while Redis answers and queues in the outbox
(app.publishing.outbox) while it does not; `OutboxDrainer` sends the queue, in order, once Redis
answers again.

From the moment something waits in the outbox for a stream, every later event for that stream
queues behind it, so each stream receives its events in the order they were published, direct or
through the outbox. Depth and the age of the oldest entry are logged when queueing starts and
ends, and exported as metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as rexc

from app.observability.metrics import OUTBOX_QUEUED
from app.publishing.outbox import MEANING, Outbox, Route, describe, outage_reason
from core import logs

log = logs.get("messenger")


async def publish(
    client: aioredis.Redis,
    outbox: Outbox | None,
    stream: str,
    fields: dict[str, str],
    maxlen: int | None,
    *,
    strict: bool = False,
) -> Route:
    """XADD `fields` to `stream` (MAXLEN ~ maxlen), or queue it in the outbox; say which.

    - Something already queued for `stream` → queued behind it ("outbox"), Redis up or not, so the
      stream keeps publication order.
    - Otherwise XADD ("direct"). On an outage the event is queued ("outbox"), unless `strict` or
      there is no outbox: then the error is raised.
    - AuthenticationError (wrong password) and other non-outage errors are always raised.
    - A full outbox raises OutboxFull, a disk that refuses the row OutboxUnavailable (both
      core.errors.Unavailable: the input is not acked, its stream waits).
    """
    if outbox is not None and outbox.has(stream):
        outbox.put(stream, fields, maxlen)
        OUTBOX_QUEUED.labels("behind").inc()
        return "outbox"
    try:
        payload: dict[Any, Any] = dict(fields)
        await client.xadd(stream, payload, maxlen=maxlen, approximate=maxlen is not None)
    except Exception as exc:
        reason = outage_reason(exc)
        if outbox is None or strict or reason is None:
            raise
        outbox.note(exc)
        outbox.put(stream, fields, maxlen)
        OUTBOX_QUEUED.labels(reason).inc()
        return "outbox"
    return "direct"


class OutboxDrainer:
    """Background task: sends the outbox to Redis whenever it answers.

    Wakes when something is put, or every `interval` seconds; after a failed attempt it backs off
    from `min_backoff` to `max_backoff` seconds. Logs (category "messenger") when events start to
    queue and when the outbox has drained, with depth and the oldest entry's age, and every
    `report_every` seconds while they wait.
    """

    def __init__(
        self,
        outbox: Outbox,
        *,
        interval: float = 1.0,
        batch: int = 500,
        min_backoff: float = 0.1,
        max_backoff: float = 2.0,
        report_every: float = 60.0,
    ) -> None:
        self.outbox = outbox
        self.interval = interval
        self.batch = batch
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.report_every = report_every
        self.sent = 0  # total sent by this drainer
        self._client: aioredis.Redis | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        self._queueing_since: float | None = None
        self._queued_sent = 0
        self._last_report = 0.0
        self._auth_reported = False

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, client: aioredis.Redis) -> None:
        if self.running:
            raise RuntimeError("OutboxDrainer already started")
        self._client = client
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.outbox.on_put = self._wake.set
        if self.outbox.depth():
            self._wake.set()  # left over from an earlier run: send it now
        self._task = asyncio.create_task(self._run(), name="secretmagic-outbox-drainer")

    async def stop(self, timeout: float = 5.0) -> int:
        """Stop the task, try a last drain within `timeout` seconds; return (and log) what is left.

        Called from the app's shutdown with its shutdown timeout.
        """
        deadline = asyncio.get_running_loop().time() + timeout
        if self._task is not None:
            assert self._stopping is not None and self._wake is not None
            self._stopping.set()
            self._wake.set()
            done, _ = await asyncio.wait({self._task}, timeout=timeout)
            if not done:  # a drain hung on a dead socket: its batch may be sent again later
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        self.outbox.on_put = None
        remaining_time = deadline - asyncio.get_running_loop().time()
        if self.outbox.depth() and self._client is not None and remaining_time > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining_time):
                    await self._drain_once()
        remaining = self.outbox.depth()
        context = self._context()
        if remaining:
            log.warning(
                "outbox: %d event(s) remain in %s at shutdown; the next start on this path sends "
                "them", remaining, self.outbox.path, **context
            )
        else:
            if self._queueing_since is not None:
                self._log_drained()
            log.info("outbox empty at shutdown", **context)
        return remaining

    # --- internals -------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._wake is not None and self._stopping is not None
        delay = self.min_backoff
        while not self._stopping.is_set():
            if not self.outbox.depth():
                self.outbox.tidy()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.interval)
                continue
            if self._queueing_since is None:
                self._queueing_since = time.monotonic()
                self._queued_sent = 0
                self._last_report = time.monotonic()
                reason = (f"{MEANING[self.outbox.last_reason or 'unreachable']} "
                          f"({self.outbox.last_error})" if self.outbox.last_error
                          else "left from an earlier run")
                log.warning(
                    "outbox: events queue in %s: %d waiting, the oldest for %.1fs; %s",
                    self.outbox.path, self.outbox.depth(), self.outbox.oldest_age() or 0.0,
                    reason, **self._context())
            sent = await self._drain_once()
            if not self.outbox.depth():
                self._log_drained()
                delay = self.min_backoff
                continue
            if sent:
                delay = self.min_backoff
                continue
            if time.monotonic() - self._last_report >= self.report_every:
                self._last_report = time.monotonic()
                log.warning(
                    "outbox: %d event(s) still waiting in %s, the oldest for %.0fs (%s)",
                    self.outbox.depth(), self.outbox.path, self.outbox.oldest_age() or 0.0,
                    self.outbox.last_error or "unknown error", **self._context()
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            delay = min(delay * 2, self.max_backoff)

    async def _drain_once(self) -> int:
        """One drain attempt; never raises (an unexpected error is logged)."""
        assert self._client is not None
        try:
            sent = await self.outbox.drain(self._client, self.batch)
        except (rexc.AuthenticationError, rexc.AuthorizationError) as exc:
            self.outbox.note(exc)
            if not self._auth_reported:
                self._auth_reported = True
                log.error(
                    "outbox cannot be sent: Redis refused the credentials (%s); check "
                    "MESSENGER_PASSWORD. %d event(s) stay queued in %s",
                    exc, self.outbox.depth(), self.outbox.path, **self._context()
                )
            return 0
        except Exception as exc:
            self.outbox.last_error, self.outbox.last_reason = describe(exc), None
            log.exception("outbox drain failed (entries stay queued)", **self._context())
            return 0
        self._auth_reported = False
        self.sent += sent
        self._queued_sent += sent
        return sent

    def _log_drained(self) -> None:
        waited = time.monotonic() - self._queueing_since if self._queueing_since else 0.0
        log.info(
            "outbox drained: %d event(s) sent to Redis after %.1fs; %d waiting",
            self._queued_sent, waited, self.outbox.depth(),
            **self._context(), sent=self._queued_sent, queued_seconds=round(waited, 3),
        )
        self._queueing_since = None
        self._queued_sent = 0
        self.outbox.last_error = self.outbox.last_reason = None

    def _context(self) -> dict[str, Any]:
        age = self.outbox.oldest_age()
        return {
            "outbox": str(self.outbox.path),
            "depth": self.outbox.depth(),
            "oldest_age_s": None if age is None else round(age, 3),
            "streams": self.outbox.streams(),
        }
