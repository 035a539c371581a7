"""Settling the entries of one read or claim: what can be settled before a handler runs, which
runs to start, and applying each decision of the policy to Redis, counted and logged.

    admit (policy)             deliveries already past max → DLQ
    decode once (core.wire)    MalformedEvent → DLQ
    route (handlers.routing)   no handler for its event_type on this stream → DLQ
    claim (ledger.claim)       event_id handled before → ack as a duplicate; another copy of it
                               in flight (on any consumer) → later, not counted; else this
                               copy holds the event_id
    plan                       one run per (event_type, client_id) for ordinary handlers
                               (coalesced); one run per event_type for batch handlers

Redis refusing writes for a while (out of memory under `noeviction`, a read-only replica, a
cluster slot not served) is an outage like an unreachable store: a claim, a record of a failure
or a DLQ copy it refuses leaves the entries pending and unacked, their stream waits (one log
line), the deliveries it costs are not counted (kept here while Redis cannot record them) and
nothing is dead-lettered for it; secretmagic_delivery_refused_total{stream,reason} counts them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from app.delivery import policy as p
from app.delivery.ledger import Entry, Fields, Ledger
from app.observability.metrics import DELIVERY_REFUSED, EVENTS
from app.publishing.outbox import MEANING, outage_reason
from core import logs, wire
from core.errors import FatalError, MalformedEvent, RetryableError, Unavailable
from handlers.routing import Route, Routes

Run = tuple[Route, list[Entry]]  # a handler call and the entries it settles
Key = tuple[str, str]  # (stream, entry id)


class RedisRefused(Unavailable):
    """Redis refused a write for now (out of memory, read-only, …): waited out, not counted."""

    def __init__(self, reason: str, error: BaseException) -> None:
        super().__init__(f"{MEANING[reason]} ({p.describe(error)})")
        self.reason = reason


def refusal(exc: BaseException) -> RedisRefused | None:
    """`exc` as the outage it is when it is Redis refusing a write for a while (unreachable
    Redis is the consumer's to wait out), else None."""
    if isinstance(exc, RedisRefused):
        return exc
    reason = outage_reason(exc)
    return None if reason in (None, "unreachable") else RedisRefused(reason, exc)


class Settler:
    """The policy's decisions for one consumer: before a run, and after it."""

    def __init__(self, ledger: Ledger, routes: Routes, log: logs.Log,
                 policy: Callable[[], p.Policy]) -> None:
        self.ledger, self.routes, self.log = ledger, routes, log
        self.policy = policy  # read live: hot reload
        self.waiting: dict[str, str] = {}  # stream -> the outage (Unavailable) it waits out
        self.retrying: set[Key] = set()  # settled without an ack: claim them again
        # Deliveries not to count that Redis refused to record (HINCRBY under OOM); dropped
        # once the entry is acked or dead-lettered.
        self.uncounted: dict[Key, int] = {}

    async def prepare(self, stream: str, found: list[tuple[str, Fields, int]]) -> list[Run]:
        policy = self.policy()
        attempts = await self.ledger.attempts(stream, [(i, n) for i, _, n in found])
        routed: list[tuple[Entry, Route]] = []
        for (entry_id, fields, _), attempt in zip(found, attempts, strict=True):
            if extra := self.uncounted.get((stream, entry_id)):
                attempt = dataclasses.replace(attempt, uncounted=attempt.uncounted + extra)
            entry = Entry(stream, entry_id, fields, attempt)
            if (exhausted := p.admit(attempt, policy)) is not None:
                await self.apply([entry], exhausted)
                continue
            try:
                entry.event = wire.decode(fields)
            except MalformedEvent as exc:
                EVENTS.labels(stream, "malformed").inc()
                await self.apply([entry], p.DeadLetter(exc))
                continue
            route = self.routes.route(stream, entry.event.event_type)
            if route is None:
                await self.apply([entry], p.DeadLetter(FatalError(
                    f"no handler for event_type {entry.event.event_type!r} on stream {stream!r}")))
                continue
            routed.append((entry, route))
        try:
            claims = await self.ledger.claim([e for e, _ in routed])
        except Exception as exc:
            if (refused := refusal(exc)) is None:
                raise
            self.refused([e for e, _ in routed], refused, uncounted=True)
            return []
        fresh = []
        for (entry, route), taken in zip(routed, claims, strict=True):
            if taken is None:
                fresh.append((entry, route))
            else:
                await self.apply([entry], p.decide(entry.attempt, taken, policy), cause=taken)
        return plan(fresh, policy.coalesce)

    async def apply(self, entries: list[Entry], decision: p.Decision, *,
                     cause: object = None) -> None:
        """Apply one decision to Redis for `entries` (of one stream), count it and log it."""
        keys = {(e.stream, e.entry_id) for e in entries}
        self.retrying |= keys  # until Redis has the ack: one that failed must be claimed again
        try:
            await self._apply(entries, decision, cause)
        except Exception as exc:
            if (refused := refusal(exc)) is None:
                raise
            # Not applied: the entries stay pending. A delivery that was not to count (an
            # outage, a copy in flight) is kept here uncounted; a counted failure stays counted;
            # a dead letter is tried again (its XADD comes before its XACK).
            self.refused(entries, refused, uncounted=isinstance(decision, p.Wait | p.Later))
            return
        if isinstance(decision, p.Ack | p.DeadLetter):
            self.retrying -= keys
            for key in keys:
                self.uncounted.pop(key, None)

    def refused(self, entries: list[Entry], error: RedisRefused, *, uncounted: bool) -> None:
        """Redis refused to record what was decided for `entries`: they stay pending and are
        retried (claimed again), their stream waits, counted in the metric."""
        stream = entries[0].stream
        DELIVERY_REFUSED.labels(stream, error.reason).inc(len(entries))
        for e in entries:
            key = (e.stream, e.entry_id)
            self.retrying.add(key)
            if uncounted:
                self.uncounted[key] = self.uncounted.get(key, 0) + 1
        self.wait(stream, f"Redis refused the delivery policy's writes: {error}")

    async def _apply(self, entries: list[Entry], decision: p.Decision, cause: object) -> None:
        stream = entries[0].stream
        match decision:
            case p.Ack(outcome="handled"):
                await self.ledger.done(entries)
            case p.Ack(outcome="superseded"):
                await self.ledger.done(entries)
                EVENTS.labels(stream, "superseded").inc(len(entries))
                for e in entries:
                    self.log.info("superseded: the store holds results of a newer event; "
                                  "nothing published", **e.context(error=str(cause)))
            case p.Ack(outcome="duplicate"):
                await self.ledger.skip(entries)
                EVENTS.labels(stream, "duplicate").inc(len(entries))
                handled_as = cause.handled_as if isinstance(cause, p.Duplicate) else None
                for e in entries:
                    self.log.info("duplicate event_id skipped", **e.context(handled_as=handled_as))
            case p.Later(delay_ms=delay, reason=reason):
                await self.ledger.failed(entries, reason, counted=False)
                EVENTS.labels(stream, "deferred").inc(len(entries))
                for e in entries:
                    self.log.info("%s; will try again in ~%.1f s", reason, delay / 1e3,
                                  **e.context())
            case p.Retry(delay_ms=delay, reason=reason):
                await self.ledger.release(entries)
                await self.ledger.failed(entries, reason, counted=True)
                EVENTS.labels(stream, "retried").inc(len(entries))
                for e in entries:
                    self.log.warning("handler failed; will retry in ~%.1f s", delay / 1e3,
                                     exc_info=not isinstance(cause, RetryableError),
                                     **e.context(error=reason))
            case p.Wait(delay_ms=delay, reason=reason):
                await self.ledger.release(entries)
                await self.ledger.failed(entries, reason, counted=False)
                EVENTS.labels(stream, "retried").inc(len(entries))
                self.wait(stream, reason)
                for e in entries:
                    self.log.warning("handler failed; will retry in ~%.1f s (an outage: not "
                                     "counted towards max_deliveries)", delay / 1e3,
                                     **e.context(error=reason))
            case p.DeadLetter(error=error):
                await self.ledger.release(entries)
                await self.ledger.dead_letter(entries, error)
                EVENTS.labels(stream, "dead_lettered").inc(len(entries))
                for e in entries:
                    self.log.error("event dead-lettered", **e.context(
                        dlq=self.ledger.dlq, error=p.describe(error)))

    def wait(self, stream: str, reason: str) -> None:
        if stream not in self.waiting:
            self.waiting[stream] = reason
            self.log.error("reading %s paused: what it depends on is unavailable; its pending "
                           "entries are retried at most every %.0f s and never dead-lettered "
                           "for this", stream, self.policy().backoff.max_ms / 1e3, stream=stream,
                           error=reason)

    def resume(self, stream: str, why: str) -> None:
        if self.waiting.pop(stream, None):
            self.log.warning("%s: %s; reading new entries resumes", stream, why, stream=stream)


def plan(routed: list[tuple[Entry, Route]], coalesce: bool) -> list[Run]:
    """One run per batch route; one per (event_type, client_id) for the others (coalesced:
    the latest entry leads, the earlier ones ride along), or one per entry."""
    batches: dict[Route, list[Entry]] = {}
    single: list[tuple[Entry, Route]] = []
    for entry, route in routed:
        if route.batch:
            batches.setdefault(route, []).append(entry)
        else:
            single.append((entry, route))
    runs: list[Run] = [(route, entries) for route, entries in batches.items()]
    if not coalesce:
        return runs + [(route, [entry]) for entry, route in single]
    for (lead, route), riders in p.coalesce(
            single, key=lambda item: (item[1].event_type, item[0].event.client_id)):  # type: ignore[union-attr]
        lead.riders = [entry for entry, _ in riders]
        runs.append((route, [lead]))
    return runs


def members(run: Run) -> list[Entry]:
    """Every entry a run settles: its leads and their riders."""
    return [m for lead in run[1] for m in (lead, *lead.riders)]
