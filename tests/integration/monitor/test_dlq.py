"""The DLQ: list, show, replay (bytes kept), purge; failures leave the entry."""

from __future__ import annotations

from typing import Any, cast

import pytest
import redis

from app import ops
from app.delivery import deadletter
from app.ops import ALL
from core.keys import dlq_stream
from tests.harness import Entries, Keys, dead_letter, unique
from tests.services import private_redis


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
