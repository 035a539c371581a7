"""Streams, groups, consumers, lag (7.x and 6.2), pending, tail and follow."""

from __future__ import annotations

import math
import time

import pytest
import redis

from app import ops
from app.ops import overview as ops_overview
from core.keys import errors_key
from tests.harness import Keys, add_events, behind


def elapsed_ms(since: float) -> int:
    """Milliseconds since the monotonic time `since`, rounded up: an upper bound for idle times."""
    return math.ceil((time.monotonic() - since) * 1000)


def test_streams_lists_streams_with_length_ids_and_groups(r: redis.Redis, keys: Keys) -> None:
    stream, other, plain = keys("streams"), keys("streams"), keys("plain")
    ids = behind(r, stream, "g1", total=3, read=0)
    r.xgroup_create(stream, "g2", id="$")
    add_events(r, other, 1)
    r.set(plain, "not a stream")

    found = {s.name: s for s in ops.streams(r)}

    assert found[stream] == ops.StreamInfo(stream, 3, ids[0], ids[-1], 2)
    assert found[other].length == 1 and found[other].groups == 0
    assert plain not in found
    assert set(found[stream].as_dict()) == {"name", "length", "first_id", "last_id", "groups"}


def test_streams_reports_an_emptied_stream(r: redis.Redis, keys: Keys) -> None:
    stream = keys("empty")
    ids = add_events(r, stream, 2)
    r.xdel(stream, *ids)
    (info,) = ops.streams(r, match=stream)
    assert (info.length, info.first_id, info.last_id) == (0, None, None)


def test_groups_and_consumers(r: redis.Redis, keys: Keys) -> None:
    stream = keys("groups")
    started = time.monotonic()
    ids = behind(r, stream, "secretmagic-group", total=5, read=2)  # c1 reads now
    r.xgroup_create(stream, "trainer-group", id="$")

    by_name = {g.name: g for g in ops.groups(r, stream)}

    g = by_name["secretmagic-group"]
    assert (g.consumers, g.pending, g.last_delivered_id, g.lag) == (1, 2, ids[1], 3)
    assert g.entries_read == 2 and g.lag_source == "xinfo" and not g.lag_capped
    assert by_name["trainer-group"].lag == 0
    (c,) = ops.consumers(r, stream, "secretmagic-group")
    # c1's idle time is what passed since its read, by Redis' millisecond clock (+1 for rounding)
    assert (c.name, c.pending) == ("c1", 2)
    assert 0 <= c.idle_ms <= elapsed_ms(started) + 1


def test_groups_of_missing_stream_wrong_type_and_missing_group(r: redis.Redis, keys: Keys) -> None:
    missing, plain, stream = keys("missing"), keys("plain"), keys("nogroup")
    r.set(plain, "x")
    add_events(r, stream, 1)

    with pytest.raises(ops.NoSuchStream, match=f"no such stream: {missing}"):
        ops.groups(r, missing)
    with pytest.raises(ops.NotAStream, match="is a string, not a stream"):
        ops.groups(r, plain)
    with pytest.raises(ops.NoSuchGroup, match=f"no such group: nope on stream {stream}"):
        ops.consumers(r, stream, "nope")
    with pytest.raises(ops.NoSuchGroup):
        ops.pending(r, stream, "nope")
    with pytest.raises(ops.NoSuchGroup):
        ops.pending_summary(r, stream, "nope")
    assert ops.groups(r, stream) == []


def test_lag_lists_every_group_worst_first(r: redis.Redis, keys: Keys) -> None:
    a, b = keys("lag-a"), keys("lag-b")
    behind(r, a, "g", total=5, read=2)  # lag 3
    behind(r, b, "g", total=9, read=1)  # lag 8
    r.xgroup_create(b, "caught-up", id="$")

    ours = [g for g in ops.lag(r) if g.stream in (a, b)]

    assert [(g.stream, g.group, g.lag, g.pending) for g in ours] == [
        (b, "g", 8, 1), (a, "g", 3, 2), (b, "caught-up", 0, 0)
    ]
    lags = [g.lag for g in ops.lag(r)]
    assert lags == sorted(lags, reverse=True)


@pytest.mark.parametrize("server", ["7.x", "6.2"])
def test_lag_is_the_same_on_redis_7_and_6_2(
    server: str, r: redis.Redis, keys: Keys, request: pytest.FixtureRequest
) -> None:
    client: redis.Redis = r if server == "7.x" else request.getfixturevalue("r62")
    stream = keys("lag")
    behind(client, stream, "g", total=7, read=3)
    client.xgroup_create(stream, "at-zero", id="0")  # never read: every entry is lag
    client.xgroup_create(stream, "at-end", id="$")

    by_name = {g.name: g for g in ops.groups(client, stream)}

    assert {n: g.lag for n, g in by_name.items()} == {"g": 4, "at-zero": 7, "at-end": 0}
    raw_lag = client.xinfo_groups(stream)[0].get("lag")
    if server == "6.2":
        assert raw_lag is None  # no lag field before 7.0: it was counted
        assert {g.lag_source for g in by_name.values()} == {"counted"}
        assert by_name["g"].entries_read is None
    else:
        assert raw_lag is not None and by_name["g"].lag_source == "xinfo"
    assert {(g.stream, g.group, g.lag) for g in ops.lag(client) if g.stream == stream} == {
        (stream, "g", 4), (stream, "at-zero", 7), (stream, "at-end", 0)
    }


def test_lag_counted_when_redis_7_reports_nil_after_xdel(r: redis.Redis, keys: Keys) -> None:
    stream = keys("xdel")
    ids = behind(r, stream, "g", total=6, read=2)
    r.xdel(stream, ids[4])  # a tombstone after last-delivered-id: Redis 7 cannot tell the lag

    assert r.xinfo_groups(stream)[0]["lag"] is None
    (g,) = ops.groups(r, stream)
    assert (g.lag, g.lag_source, g.lag_capped) == (3, "counted", False)


def test_lag_counting_is_capped(r62: redis.Redis, keys: Keys) -> None:
    stream = keys("cap")
    behind(r62, stream, "g", total=30, read=1)

    assert ops.count_after(r62, stream, "0-0", cap=10) == (10, True)
    assert ops.count_after(r62, stream, "0-0", cap=30) == (30, False)
    assert ops.count_after(r62, stream, "0-0", cap=1000) == (30, False)
    (g,) = ops.groups(r62, stream, cap=12)
    assert (g.lag, g.lag_capped) == (12, True)
    (g,) = ops.groups(r62, stream)
    assert (g.lag, g.lag_capped) == (29, False)


def test_lag_counting_pages_through_more_than_one_page(
    r62: redis.Redis, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ops_overview, "PAGE", 4)
    stream = keys("pages")
    behind(r62, stream, "g", total=23, read=2)
    (g,) = ops.groups(r62, stream)
    assert (g.lag, g.lag_source) == (21, "counted")


def test_pending_lists_entries_with_idle_deliveries_and_why(r: redis.Redis, keys: Keys) -> None:
    stream = keys("pending")
    started = time.monotonic()
    ids = behind(r, stream, "secretmagic-group", total=4, read=3)
    # A second delivery, to c2, that Redis is told happened 90 s ago (XCLAIM IDLE).
    r.xclaim(stream, "secretmagic-group", "c2", 0, [ids[0]], idle=90_000)
    failed = f"{stream}/{ids[0]}"  # the first delivery failed, as the worker records it
    r.hset(errors_key("secretmagic-group"), failed, "RetryableError: store down")
    r.xdel(stream, ids[2])  # and one was trimmed away while pending
    try:
        entries = ops.pending(r, stream)  # the default group is secretmagic-group
        summary = ops.pending_summary(r, stream)
    finally:
        r.hdel(errors_key("secretmagic-group"), failed)

    assert [(p.entry_id, p.consumer, p.deliveries) for p in entries] == [
        (ids[0], "c2", 2), (ids[1], "c1", 1), (ids[2], "c1", 1)
    ]
    assert [(p.event_type, p.client_id, p.last_error) for p in entries] == [
        ("sales_updated", "acme", "RetryableError: store down"),
        ("sales_updated", "acme", None),
        (None, None, None),
    ]
    # Idle since each entry's last delivery: 90 s for the claimed one, what passed for the others
    # (by Redis' millisecond clock: +1 for rounding).
    passed = elapsed_ms(started) + 1
    assert 90_000 <= entries[0].idle_ms <= 90_000 + passed
    assert all(0 <= p.idle_ms <= passed for p in entries[1:])
    assert (summary.count, summary.min_id, summary.max_id) == (3, ids[0], ids[2])
    assert summary.consumers == {"c1": 2, "c2": 1}
    assert len(ops.pending(r, stream, count=2)) == 2


def test_pending_summary_of_an_idle_group(r: redis.Redis, keys: Keys) -> None:
    stream = keys("idle")
    behind(r, stream, "g", total=2, read=0)
    assert ops.pending_summary(r, stream, "g") == ops.PendingSummary(
        stream, "g", 0, None, None, {}
    )
    assert ops.pending(r, stream, "g") == []


def test_tail_decodes_events_and_shows_other_entries_raw(r: redis.Redis, keys: Keys) -> None:
    stream = keys("tail")
    add_events(r, stream, 3)
    r.xadd(stream, {"hello": "world"})
    r.xadd(stream, {b"event_type": b"\xff\xfe", b"client_id": b"acme"})

    entries = ops.tail(r, stream, 3)

    assert len(entries) == 3
    event, plain, garbage = entries
    assert event.event is not None and event.error is None
    assert event.event["event_type"] == "sales_updated" and event.event["data"]["n"] == 2
    assert plain.event is None and "missing field" in (plain.error or "")
    assert plain.fields == {"hello": "world"}
    assert garbage.event is None and "not UTF-8" in (garbage.error or "")
    assert garbage.fields["event_type"] == "\\xff\\xfe"
    assert entries == sorted(entries, key=lambda e: [int(p) for p in e.id.split("-")])
    assert set(event.as_dict()) == {"id", "fields", "event", "error"}


def test_tail_of_missing_stream(r: redis.Redis, keys: Keys) -> None:
    with pytest.raises(ops.NoSuchStream):
        ops.tail(r, keys("none"), 5)


def test_follow_yields_new_entries_and_empty_batches_on_timeout(
    r: redis.Redis, keys: Keys
) -> None:
    stream = keys("follow")
    add_events(r, stream, 2)
    start = ops.last_id(r, stream)
    batches = ops.follow(r, stream, start, block_ms=50)

    assert next(batches) == []  # nothing new: the block timed out
    new = add_events(r, stream, 2, client="beta")
    got: list[ops.Entry] = []
    for batch in batches:
        got += batch
        if len(got) >= 2:
            break
    assert [e.id for e in got] == new
    assert all(e.event and e.event["client_id"] == "beta" for e in got)
