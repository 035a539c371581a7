"""The durable outbox (app.publishing): nothing secretmagic publishes is lost while Redis is down.

Every test runs its own redis-server (tests/services.PrivateRedis, append-only file on, so a
restart keeps what was written) and stops/starts it on the same port. No fixed sleeps: waits are
conditions with a deadline. The tests print their counts (`pytest -s` shows them).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import AuthenticationError, BusyLoadingError, ReadOnlyError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.publishing.drainer import OutboxDrainer, publish
from app.publishing.outbox import Outbox, OutboxFull, OutboxLocked, is_outage
from core.errors import RetryableError
from core.events import Event
from core.wire import encode
from tests.harness import ROOT, wait_until
from tests.services import PrivateRedis

STREAM = "features-updates"
OTHER = "bom-exploded"


def event_fields(n: int, event_type: str = "features_updated") -> dict[str, str]:
    return encode(Event(event_type=event_type, client_id=f"c{n % 7}", data={"n": n}))


def make_client(url: str) -> aioredis.Redis:
    """A client that gives up quickly on a dead server (the default retries for ~3 s)."""
    return aioredis.Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 2),
        socket_connect_timeout=1,
        socket_timeout=5,
    )


def stream_entries(url: str, stream: str) -> list[dict[str, str]]:
    """All entries of `stream` as str fields, oldest first (sync client: independent of the app)."""
    with redis.Redis.from_url(url, decode_responses=True) as r:
        return [fields for _id, fields in r.xrange(stream)]


def first_seen(ids: list[str]) -> list[str]:
    seen: set[str] = set()
    return [i for i in ids if not (i in seen or seen.add(i))]  # type: ignore[func-returns-value]


@pytest.fixture
def server() -> Iterator[PrivateRedis]:
    srv = PrivateRedis("--appendonly", "yes").start()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Outbox]:
    outbox = Outbox(tmp_path / "data" / "outbox.sqlite3")
    try:
        yield outbox
    finally:
        outbox.close()


@pytest.fixture
async def client(server: PrivateRedis) -> AsyncIterator[aioredis.Redis]:
    c = make_client(server.url)
    yield c
    await c.aclose()


# --- the scenarios -----------------------------------------------------------------------


async def test_1000_events_while_down_arrive_in_order_with_their_ids(
    server: PrivateRedis, box: Outbox, client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="secretmagic")
    server.stop()
    drainer = OutboxDrainer(box)
    drainer.start(client)
    sent: list[dict[str, str]] = []
    routes: Counter[str] = Counter()
    first_queued = time.time()
    for n in range(1000):
        fields = event_fields(n)
        routes[await publish(client, box, STREAM, fields, 10_000)] += 1
        sent.append(fields)
    assert routes == {"outbox": 1000}
    assert box.depth() == 1000 and box.streams() == [STREAM]
    oldest = box.oldest_age()  # the first entry's wait: no longer than since it was published
    assert oldest is not None and 0 <= oldest <= time.time() - first_queued
    assert await asyncio.to_thread(box.oldest_age) is not None  # a metrics scrape's thread

    await asyncio.to_thread(server.start)
    await wait_until(lambda: box.depth() == 0, 30, "the outbox to drain")
    remaining = await drainer.stop(5)

    arrived = stream_entries(server.url, STREAM)
    print(f"\n[1000 while down] sent={len(sent)} queued={routes['outbox']} "
          f"arrived={len(arrived)} remaining={remaining}")
    assert arrived == sent  # same order, same event_id, timestamp, data
    assert remaining == 0 and box.depth() == 0 and box.oldest_age() is None
    assert drainer.sent == 1000
    messages = [r for r in caplog.records if getattr(r, "category", None) == "messenger"]
    queueing = [r for r in messages if "events queue" in r.getMessage()]
    drained = [r for r in messages if "outbox drained" in r.getMessage()]
    assert queueing and queueing[0].context["depth"] > 0  # type: ignore[attr-defined]
    assert "ConnectionError" in queueing[0].getMessage()
    assert drained and drained[-1].context["sent"] == 1000  # type: ignore[attr-defined]


async def test_three_restarts_during_a_publish_loop_lose_nothing(
    server: PrivateRedis, box: Outbox, client: aioredis.Redis
) -> None:
    total, stops = 3000, (300, 1300, 2300)
    want_stop = [asyncio.Event() for _ in stops]
    stopped = [asyncio.Event() for _ in stops]
    want_start = [asyncio.Event() for _ in stops]
    started = [asyncio.Event() for _ in stops]

    async def restarter() -> None:
        for k in range(len(stops)):
            await want_stop[k].wait()
            # the middle outage is a SIGKILL, the others a clean shutdown
            await asyncio.to_thread(server.kill if k == 1 else server.stop)
            stopped[k].set()
            await want_start[k].wait()
            await asyncio.to_thread(server.start)
            started[k].set()

    drainer = OutboxDrainer(box)
    drainer.start(client)
    restarts = asyncio.create_task(restarter())
    sent: dict[str, list[str]] = {STREAM: [], OTHER: []}
    routes: Counter[str] = Counter()
    for n in range(total):
        for k, at in enumerate(stops):
            if n == at:  # stop while publishes are in flight
                want_stop[k].set()
            elif n == at + 150:  # from here on Redis is surely down
                await stopped[k].wait()
            elif n == at + 300:
                want_start[k].set()  # publishes go on while it starts and loads
            elif n == at + 450:
                await started[k].wait()
            elif n == at + 750:  # back to direct publishing before the next outage
                await wait_until(lambda: box.depth() == 0, 30, "the outbox to drain")
        stream = STREAM if n % 3 else OTHER
        fields = event_fields(n)
        routes[await publish(client, box, stream, fields, None)] += 1
        sent[stream].append(fields["event_id"])
        await asyncio.sleep(0)  # let the drainer and the restarter run, as handlers would
    await restarts
    await wait_until(lambda: box.depth() == 0, 30, "the outbox to drain")
    assert await drainer.stop(5) == 0

    n_sent = sum(len(ids) for ids in sent.values())
    n_arrived = n_unique = n_lost = n_duplicates = 0
    for stream, ids in sent.items():
        arrived = [f["event_id"] for f in stream_entries(server.url, stream)]
        unique = first_seen(arrived)
        n_arrived += len(arrived)
        n_unique += len(unique)
        n_duplicates += len(arrived) - len(unique)
        n_lost += len(set(ids) - set(arrived))
        assert unique == ids, f"{stream}: order or content differs"
    print(f"\n[3 restarts] sent={n_sent} arrived={n_arrived} unique={n_unique} "
          f"duplicates={n_duplicates} lost={n_lost} direct={routes['direct']} "
          f"via_outbox={routes['outbox']}")
    assert n_lost == 0 and n_unique == n_sent == total
    assert routes["direct"] > 0 and routes["outbox"] > 0
    # A duplicate needs an XADD in flight at the very moment Redis goes: at most one per outage.
    assert n_duplicates <= len(stops)


async def test_a_stream_with_queued_events_queues_new_ones_behind_them(
    server: PrivateRedis, box: Outbox, client: aioredis.Redis
) -> None:
    server.stop()
    queued = [event_fields(n) for n in range(5)]
    for fields in queued:
        assert await publish(client, box, STREAM, fields, None) == "outbox"
    await asyncio.to_thread(server.start)  # Redis is up, nothing drained yet

    later, other = event_fields(5), event_fields(6)
    assert await publish(client, box, STREAM, later, None) == "outbox"
    assert await publish(client, box, OTHER, other, None) == "direct"
    assert box.streams() == [STREAM] and box.has(STREAM) and not box.has(OTHER)
    assert stream_entries(server.url, STREAM) == []

    assert await box.drain(client) == 6
    assert stream_entries(server.url, STREAM) == [*queued, later]
    assert stream_entries(server.url, OTHER) == [other]
    assert await publish(client, box, STREAM, event_fields(7), None) == "direct"
    print(f"\n[order] queued={len(queued)} behind=1 other_stream_direct=1")


async def test_a_killed_process_outbox_is_sent_by_the_next_one(
    server: PrivateRedis, tmp_path: Path
) -> None:
    path, total = tmp_path / "outbox.sqlite3", 2000
    server.stop()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.outbox_publisher", str(path), server.url, STREAM, str(total),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    printed: list[str] = []
    done_at = 0
    try:
        async with asyncio.timeout(60):
            while True:
                line = (await proc.stdout.readline()).decode()
                if not line:
                    raise AssertionError(f"publisher exited: {(await proc.stderr.read())!r}")
                if line.startswith("sent "):
                    printed.append(line.split()[1])
                    assert line.split()[2] == "outbox"
                elif line.startswith("DONE"):
                    done_at = len(printed)
                if printed and len(printed) >= total + 300:  # well into the writes after DONE
                    break
    finally:
        proc.send_signal(signal.SIGKILL)  # in the middle of its writes
        rest = (await proc.stdout.read()).decode().splitlines(keepends=True)
        await proc.wait()
    # A line still being written when the kill came is torn; its publish() had not returned.
    whole = [line for line in rest if line.endswith("\n")]
    printed += [line.split()[1] for line in whole if line.startswith("sent ")]
    assert proc.returncode == -signal.SIGKILL

    await asyncio.to_thread(server.start)
    client = make_client(server.url)
    try:
        with Outbox(path) as reopened:  # what the next start of the app does
            found = reopened.depth()
            assert reopened.has(STREAM) and found >= len(printed) >= total
            drainer = OutboxDrainer(reopened)
            drainer.start(client)
            await wait_until(lambda: reopened.depth() == 0, 30, "the reopened outbox to drain")
            assert await drainer.stop(5) == 0
    finally:
        await client.aclose()
    arrived = [f["event_id"] for f in stream_entries(server.url, STREAM)]
    assert done_at == total
    print(f"\n[SIGKILL] printed_before_kill={len(printed)} found_on_reopen={found} "
          f"arrived={len(arrived)} lost={len(set(printed) - set(arrived))}")
    # Everything whose publish() returned arrives, in order; at most the one being written when
    # the kill came (committed, not yet printed) arrives in addition.
    assert arrived[: len(printed)] == printed
    assert len(arrived) == found and found - len(printed) <= 1


async def test_a_full_outbox_names_the_limit_and_keeps_what_it_has(
    server: PrivateRedis, tmp_path: Path, client: aioredis.Redis
) -> None:
    server.stop()
    path = tmp_path / "outbox.sqlite3"
    with Outbox(path, max_entries=50) as small:
        queued = [event_fields(n) for n in range(50)]
        for fields in queued:
            assert await publish(client, small, STREAM, fields, None) == "outbox"
        with pytest.raises(OutboxFull) as raised:
            await publish(client, small, STREAM, event_fields(50), None)
        message = str(raised.value)
        print(f"\n[full] depth={small.depth()} error={message}")
        assert "OUTBOX_MAX_ENTRIES=50" in message and str(path) in message
        assert "Redis" in message and "raise" in message
        assert isinstance(raised.value, RetryableError)  # the input event is retried, not acked
        assert small.depth() == 50

        await asyncio.to_thread(server.start)
        assert await small.drain(client) == 50
        assert stream_entries(server.url, STREAM) == queued
        assert await publish(client, small, STREAM, event_fields(51), None) == "direct"


async def test_a_wrong_password_is_raised_not_queued(box: Outbox) -> None:
    srv = PrivateRedis("--requirepass", "pw").start()
    try:
        for url in (srv.url.replace("redis://", "redis://:wrong@"), srv.url):  # wrong, none
            client = make_client(url)
            try:
                with pytest.raises(AuthenticationError):
                    await publish(client, box, STREAM, event_fields(0), None)
                assert box.depth() == 0
                # and an entry queued earlier is kept, not dropped, when the drain is refused
                box.put(OTHER, event_fields(1), None)
                with pytest.raises(AuthenticationError):
                    await box.drain(client)
                assert box.depth() == 1
            finally:
                await client.aclose()
            good = make_client(srv.url.replace("redis://", "redis://:pw@"))
            assert await box.drain(good) == 1
            await good.aclose()
        print("\n[wrong password] raised AuthenticationError, outbox depth=0")
    finally:
        srv.close()


async def test_strict_raises_on_an_outage_instead_of_queueing(
    server: PrivateRedis, box: Outbox, client: aioredis.Redis
) -> None:
    server.stop()
    with pytest.raises(RedisConnectionError):
        await publish(client, box, STREAM, event_fields(0), None, strict=True)
    with pytest.raises(RedisConnectionError):
        await publish(client, None, STREAM, event_fields(0), None)
    assert box.depth() == 0
    assert await publish(client, box, STREAM, event_fields(1), None) == "outbox"


async def test_maxlen_is_applied_when_draining(
    server: PrivateRedis, box: Outbox, client: aioredis.Redis
) -> None:
    server.stop()
    sent = [event_fields(n) for n in range(1000)]
    for fields in sent:
        await publish(client, box, STREAM, fields, 100)
    await asyncio.to_thread(server.start)
    assert await box.drain(client, batch=128) == 1000
    with redis.Redis.from_url(server.url) as r:
        length = r.xlen(STREAM)
    entries = stream_entries(server.url, STREAM)
    print(f"\n[maxlen] sent={len(sent)} maxlen=100 stream_length={length}")
    # MAXLEN ~ trims whole macro nodes (100 entries each by default): at least maxlen remain.
    assert 100 <= length < 300
    assert entries == sent[-length:]


# --- details -------------------------------------------------------------------------------------


async def test_stop_reports_what_remains_and_the_next_open_finds_it(
    server: PrivateRedis, tmp_path: Path, client: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="secretmagic")
    server.stop()
    path = tmp_path / "outbox.sqlite3"
    with Outbox(path) as first:
        drainer = OutboxDrainer(first)
        drainer.start(client)
        for n in range(10):
            await publish(client, first, STREAM, event_fields(n), None)
        assert await drainer.stop(0.5) == 10
        with pytest.raises(OutboxLocked, match="OUTBOX_PATH"):
            Outbox(path)
    assert any("10 event(s) remain" in r.getMessage() for r in caplog.records)
    with Outbox(path) as second:
        assert second.depth() == 10 and second.streams() == [STREAM]


async def test_a_stream_that_cannot_take_entries_does_not_block_the_others(
    server: PrivateRedis, box: Outbox, client: aioredis.Redis
) -> None:
    await client.set("broken", "not a stream")
    for n in range(3):
        box.put("broken", event_fields(n), None)
        box.put(STREAM, event_fields(10 + n), None)
    assert await box.drain(client) == 3
    assert box.streams() == ["broken"] and box.depth() == 3  # kept, in order, not lost
    await client.delete("broken")
    assert await box.drain(client) == 3 and box.depth() == 0


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (RedisConnectionError("Connection refused"), True),
        (RedisTimeoutError("Timeout reading from socket"), True),
        (BusyLoadingError("Redis is loading the dataset in memory"), True),
        (ReadOnlyError("READONLY You can't write against a read only replica."), True),
        (ResponseError("MASTERDOWN Link with MASTER is down"), True),
        (ResponseError("LOADING Redis is loading the dataset in memory"), True),
        (AuthenticationError("invalid username-password pair"), False),
        (ResponseError("WRONGTYPE Operation against a key holding the wrong kind"), False),
        (ValueError("bad"), False),
    ],
)
def test_what_counts_as_an_outage(error: Exception, outage: bool) -> None:
    assert is_outage(error) is outage
