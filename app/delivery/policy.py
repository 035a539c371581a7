"""The delivery policy as pure functions: what to do with one delivery of a stream entry.

    decide(attempt, outcome, policy) -> Ack | Retry | Wait | DeadLetter

    outcome                                   decision
    handled                                   Ack("handled")
    a duplicate of an event already handled   Ack("duplicate")
    Superseded (a newer write won)            Ack("superseded"): its work is already done
    another copy of the event is in flight    Later(backoff): not counted towards max_deliveries;
                                              handled if that copy fails, acked if it succeeds
    FatalError (MalformedEvent, no handler…)  DeadLetter(the error)
    Unavailable (a dependency is down)        Wait: not counted towards max_deliveries; the
                                              stream reads no new entries until one succeeds
    any other error, own failures < max       Retry(after backoff_ms(deliveries))
    any other error, own failures = max       DeadLetter(MaxDeliveriesExceeded, the last error)

"Own failures" are the deliveries that were the event's own: not lost to an outage, not spent
waiting for another copy of it. Before an entry is handled,
`admit` dead-letters one whose own deliveries are already past `max_deliveries`: its earlier
attempts never answered (the consumer died while handling it). `coalesce` decides which events of
one read share a handler run. Nothing here does I/O: app.delivery.ledger applies the decisions
to Redis, app.delivery.consumer runs the loops.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from core.errors import FatalError, MaxDeliveriesExceeded, Superseded, Unavailable
from settings.config import Subscriber as Policy


@dataclass(frozen=True)
class Attempt:
    """What is known of one delivery of an entry."""

    deliveries: int  # this delivery's number: 1 for the first
    uncounted: int = 0  # earlier deliveries lost to an outage or to another copy in flight
    last_error: str | None = None  # why the previous delivery failed, if one did

    @property
    def own(self) -> int:
        """Deliveries so far, this one included, that were the event's own."""
        return self.deliveries - self.uncounted


# --- outcomes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Handled:
    """The handler returned."""


@dataclass(frozen=True)
class Duplicate:
    """The event_id was handled before, as entry `handled_as`."""

    handled_as: str


@dataclass(frozen=True)
class InFlight:
    """Another copy of the event (same event_id, another entry) is being handled."""

    holder: str


Outcome = Handled | Duplicate | InFlight | BaseException


# --- decisions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ack:
    """XACK; the entry is done."""

    outcome: Literal["handled", "duplicate", "superseded"]


@dataclass(frozen=True)
class Retry:
    """No ack: the entry stays pending and is claimed again after `delay_ms`."""

    delay_ms: float
    reason: str


@dataclass(frozen=True)
class Later:
    """No ack and not counted: another copy is in flight; try again after `delay_ms`."""

    delay_ms: float
    reason: str


@dataclass(frozen=True)
class Wait:
    """No ack and not counted: what the entry needs is unavailable; its stream pauses reading
    and its pending entries are retried at the capped backoff (`delay_ms`) until one succeeds."""

    delay_ms: float
    reason: str


@dataclass(frozen=True)
class DeadLetter:
    """Copy the entry to the group's DLQ with the reason, then XACK it."""

    error: FatalError


Decision = Ack | Retry | Later | Wait | DeadLetter


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def backoff_ms(policy: Policy, deliveries: int,
               rand: Callable[[], float] = random.random) -> float:
    """Delay before attempt `deliveries + 1`: base * factor^(deliveries-1), capped, ± jitter."""
    b = policy.backoff
    delay = min(b.base_ms * b.factor ** max(deliveries - 1, 0), b.max_ms)
    return delay * (1 + b.jitter * (2 * rand() - 1))


def _exhausted(attempt: Attempt, policy: Policy, last_error: str) -> DeadLetter:
    return DeadLetter(MaxDeliveriesExceeded(
        f"delivered {attempt.deliveries} times ({attempt.uncounted} of them not counted: an "
        f"outage or another copy in flight; max_deliveries={policy.max_deliveries}); "
        f"last error: {last_error}"))


def admit(attempt: Attempt, policy: Policy) -> DeadLetter | None:
    """Before handling: dead-letter an entry whose earlier deliveries used up max_deliveries."""
    if attempt.own - 1 >= policy.max_deliveries:
        return _exhausted(attempt, policy, attempt.last_error or "the last attempt did not finish")
    return None


def decide(attempt: Attempt, outcome: Outcome, policy: Policy) -> Decision:
    """The decision for one delivery's outcome (see the module doc)."""
    if isinstance(outcome, Handled):
        return Ack("handled")
    if isinstance(outcome, Duplicate):
        return Ack("duplicate")
    if isinstance(outcome, Superseded):
        return Ack("superseded")
    if isinstance(outcome, InFlight):
        return Later(backoff_ms(policy, attempt.deliveries, rand=lambda: 0.5),
                     f"another copy of the event is in flight ({outcome.holder})")
    if isinstance(outcome, FatalError):
        return DeadLetter(outcome)
    reason = describe(outcome)
    if isinstance(outcome, Unavailable):
        return Wait(policy.backoff.max_ms, reason)
    if attempt.own >= policy.max_deliveries:
        return _exhausted(attempt, policy, reason)
    # The midpoint of the jitter: what the log says; the claim loop draws its own.
    return Retry(backoff_ms(policy, attempt.deliveries, rand=lambda: 0.5), reason)


K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


def coalesce(items: Sequence[T], key: Callable[[T], K]) -> list[tuple[T, list[T]]]:
    """One run per key: (the latest item, the earlier ones it also serves), in order of the
    latest. Safe for notifications (seed: Event Notification Pattern): a handler recomputes a
    client's state from the store, so one run serves every waiting event of that client."""
    groups: dict[K, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    runs = [(group[-1], group[:-1]) for group in groups.values()]
    order = {id(item): i for i, item in enumerate(items)}
    return sorted(runs, key=lambda run: order[id(run[0])])
