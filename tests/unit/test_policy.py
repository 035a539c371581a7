"""The delivery policy's pure parts, without Redis: the decision table, the backoff, coalescing,
and the two asyncio helpers the consumer runs them with (the ack batcher and the handler slots).
"""

from __future__ import annotations

import asyncio

import pytest

from app.delivery import policy as p
from app.delivery.ledger import Batcher, Entry
from app.delivery.slots import Slots
from core.errors import (
    FatalError,
    MalformedEvent,
    MaxDeliveriesExceeded,
    RetryableError,
    Superseded,
    Unavailable,
)
from settings.config import Subscriber
from tests.harness import wait_until

POLICY = Subscriber.model_validate({
    "max_deliveries": 3, "backoff": {"base_ms": 100, "factor": 2.0, "max_ms": 1000, "jitter": 0}})


# --- decide: one row per case of the module's table -------------------------------------------

DECISIONS: list[tuple[str, p.Attempt, p.Outcome, p.Decision]] = [
    ("handled", p.Attempt(1), p.Handled(), p.Ack("handled")),
    ("handled after failures", p.Attempt(3, uncounted=1), p.Handled(), p.Ack("handled")),
    ("duplicate", p.Attempt(1), p.Duplicate("1-0"), p.Ack("duplicate")),
    ("retryable, first delivery", p.Attempt(1), RetryableError("busy"),
     p.Retry(100, "RetryableError: busy")),
    ("retryable, second delivery: the backoff doubles", p.Attempt(2), RetryableError("busy"),
     p.Retry(200, "RetryableError: busy")),
    ("an unexpected error is retryable too", p.Attempt(1), ZeroDivisionError("bug"),
     p.Retry(100, "ZeroDivisionError: bug")),
    ("outages do not count: 3rd delivery, 1 outage, own 2 < 3", p.Attempt(3, uncounted=1),
     RetryableError("busy"), p.Retry(400, "RetryableError: busy")),
    ("the backoff is capped", p.Attempt(3, uncounted=2), KeyError("k"),
     p.Retry(400, "KeyError: 'k'")),
    ("unavailable waits at the capped backoff", p.Attempt(1), Unavailable("store down"),
     p.Wait(1000, "Unavailable: store down")),
    ("unavailable never dead-letters, however many deliveries", p.Attempt(50, uncounted=49),
     Unavailable("store down"), p.Wait(1000, "Unavailable: store down")),
    ("superseded by a newer write: done", p.Attempt(1), Superseded("v9 > v7"),
     p.Ack("superseded")),
    ("another copy in flight: later, at the backoff", p.Attempt(2), p.InFlight("s/1-0"),
     p.Later(200, "another copy of the event is in flight (s/1-0)")),
    ("another copy in flight never dead-letters", p.Attempt(9, uncounted=8), p.InFlight("s/1-0"),
     p.Later(1000, "another copy of the event is in flight (s/1-0)")),
]


@pytest.mark.parametrize(("attempt", "outcome", "expected"),
                         [row[1:] for row in DECISIONS], ids=[row[0] for row in DECISIONS])
def test_decide(attempt: p.Attempt, outcome: p.Outcome, expected: p.Decision) -> None:
    assert p.decide(attempt, outcome, POLICY) == expected


@pytest.mark.parametrize("error", [FatalError("cycle"), MalformedEvent("no event_type")])
def test_fatal_errors_dead_letter_at_once(error: FatalError) -> None:
    decision = p.decide(p.Attempt(1), error, POLICY)
    assert decision == p.DeadLetter(error)


@pytest.mark.parametrize(("attempt", "dead"), [
    (p.Attempt(3), True),  # own 3 = max: this failure was the last allowed
    (p.Attempt(2), False),
    (p.Attempt(4, uncounted=1), True),
    (p.Attempt(4, uncounted=2), False),  # only 2 of its own
])
def test_the_last_allowed_failure_dead_letters_with_the_count(attempt: p.Attempt,
                                                              dead: bool) -> None:
    decision = p.decide(attempt, RetryableError("still busy"), POLICY)
    if not dead:
        assert isinstance(decision, p.Retry)
        return
    assert isinstance(decision, p.DeadLetter)
    assert isinstance(decision.error, MaxDeliveriesExceeded)
    assert str(decision.error) == (
        f"delivered {attempt.deliveries} times ({attempt.uncounted} of them not counted: an "
        "outage or another copy in flight; max_deliveries=3); last error: RetryableError: "
        "still busy")


@pytest.mark.parametrize(("attempt", "admitted"), [
    (p.Attempt(1), True),
    (p.Attempt(3), True),  # the 3rd delivery may still run
    (p.Attempt(4), False),  # 3 attempts never answered: a consumer died while handling it
    (p.Attempt(5, uncounted=2), True),  # only 2 of its own before this one
    (p.Attempt(6, uncounted=2), False),
])
def test_admit_turns_away_entries_whose_deliveries_are_used_up(attempt: p.Attempt,
                                                              admitted: bool) -> None:
    verdict = p.admit(attempt, POLICY)
    assert (verdict is None) == admitted
    if verdict is not None:
        assert isinstance(verdict.error, MaxDeliveriesExceeded)
        assert "the last attempt did not finish" in str(verdict.error)


def test_admit_cites_the_last_recorded_error() -> None:
    verdict = p.admit(p.Attempt(4, last_error="RetryableError: busy"), POLICY)
    assert verdict is not None
    assert str(verdict.error).endswith("last error: RetryableError: busy")


# --- backoff ---------------------------------------------------------------------------------


def test_backoff_grows_by_the_factor_caps_and_jitters_both_ways() -> None:
    jittery = POLICY.model_copy(update={"backoff": POLICY.backoff.model_copy(
        update={"jitter": 0.1})})
    assert [p.backoff_ms(POLICY, n) for n in (1, 2, 3, 4, 5)] == [100, 200, 400, 800, 1000]
    assert p.backoff_ms(jittery, 2, rand=lambda: 0.0) == pytest.approx(180)
    assert p.backoff_ms(jittery, 2, rand=lambda: 1.0) == pytest.approx(220)
    assert p.backoff_ms(jittery, 2, rand=lambda: 0.5) == pytest.approx(200)
    assert p.backoff_ms(jittery, 9, rand=lambda: 1.0) == pytest.approx(1100)  # cap, then jitter


# --- coalesce --------------------------------------------------------------------------------


def test_coalesce_keeps_the_latest_of_each_key_in_order_with_the_earlier_ones_riding() -> None:
    items = [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("a", 5), ("b", 6)]
    runs = p.coalesce(items, key=lambda item: item[0])
    assert runs == [(("c", 4), []), (("a", 5), [("a", 1), ("a", 3)]), (("b", 6), [("b", 2)])]


def test_coalesce_of_distinct_keys_changes_nothing() -> None:
    items = list(range(5))
    assert p.coalesce(items, key=lambda item: item) == [(i, []) for i in items]


# --- the ack batcher and the slots -------------------------------------------------------------


def entry(entry_id: str) -> Entry:
    return Entry("s", entry_id, {}, p.Attempt(1))


async def test_batcher_flushes_what_one_tick_added_together_and_reports_errors() -> None:
    flushed: list[list[str]] = []
    fail = False

    async def flush(items: list[Entry]) -> None:
        flushed.append([e.entry_id for e in items])
        if fail:
            raise ConnectionError("redis went away")

    batcher = Batcher(flush)
    await asyncio.gather(*(batcher.add([entry(f"{i}-0")]) for i in range(3)))
    await batcher.add([entry("9-0")])
    assert flushed == [["0-0", "1-0", "2-0"], ["9-0"]]

    fail = True
    results = await asyncio.gather(batcher.add([entry("10-0")]), batcher.add([entry("11-0")]),
                                   return_exceptions=True)
    assert [type(r) for r in results] == [ConnectionError, ConnectionError]
    assert flushed[-1] == ["10-0", "11-0"]


async def test_slots_admit_at_most_the_live_limit() -> None:
    limit = 2
    slots = Slots(lambda: limit)
    inside: set[int] = set()
    gates = [asyncio.Event() for _ in range(5)]

    async def run(i: int) -> None:
        async with slots:
            inside.add(i)
            await gates[i].wait()
            inside.discard(i)

    tasks = [asyncio.create_task(run(i)) for i in range(5)]
    await wait_until(lambda: len(inside) == 2, 5, 'two inside')
    for _ in range(20):  # the other three stay out however long the loop runs
        await asyncio.sleep(0)
    assert len(inside) == 2 and slots.running == 2
    limit = 4  # a hot reload raises the limit; it applies as soon as a slot frees
    first = min(inside)
    gates[first].set()
    await wait_until(lambda: len(inside) == 4, 5, 'four inside')
    assert first not in inside
    for gate in gates:
        gate.set()
    await asyncio.gather(*tasks)
    assert slots.running == 0
