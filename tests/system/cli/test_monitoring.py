"""streams, groups, lag, pending, tail (and --follow) on a real Redis."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Any, cast
from urllib.parse import urlparse

import pytest
import redis

from core.events import Event
from core.wire import encode
from tests.harness import REDIS62, Keys, add_events, behind
from tests.services import private_redis
from tests.system.cli.kit import (
    ROOT,
    child_env,
    one_line_error,
    point_at,
    run,
)


def test_streams(r: redis.Redis, keys: Keys) -> None:
    stream = keys("cli-streams")
    ids = behind(r, stream, "g", total=3, read=1)

    table = run("streams")
    assert table.code == 0 and table.err == ""
    assert table.out.splitlines()[0].split() == ["STREAM", "LENGTH", "GROUPS", "FIRST", "ID",
                                                 "LAST", "ID"]
    assert table.row(stream) == [stream, "3", "1", ids[0], ids[2]]

    as_json = run("streams", "--json")
    (mine,) = [s for s in as_json.json() if s["name"] == stream]
    assert mine == {"name": stream, "length": 3, "first_id": ids[0], "last_id": ids[2],
                    "groups": 1}


def test_groups(r: redis.Redis, keys: Keys) -> None:
    stream = keys("cli-groups")
    ids = behind(r, stream, "secretmagic-group", total=5, read=2)

    table = run("groups", stream)
    assert table.code == 0
    group_row, consumer_row = table.rows("secretmagic-group")  # the groups, then the consumers
    assert group_row == ["secretmagic-group", "1", "2", "3", ids[1], "2"]
    assert consumer_row[:3] == ["secretmagic-group", "c1", "2"]

    (group,) = run("groups", stream, "--json").json()["groups"]
    assert set(group) == {"name", "consumers", "pending", "last_delivered_id", "entries_read",
                          "lag", "lag_source", "lag_capped", "consumer_list"}
    assert (group["lag"], group["pending"], group["consumer_list"][0]["name"]) == (3, 2, "c1")
    assert set(group["consumer_list"][0]) == {"name", "pending", "idle_ms", "inactive_ms"}


def test_lag(r: redis.Redis, keys: Keys) -> None:
    stream = keys("cli-lag")
    started = time.monotonic()
    behind(r, stream, "g", total=6, read=2)

    table = run("lag")
    assert table.code == 0 and table.out.splitlines()[0].startswith("STREAM")
    assert table.row(stream)[:5] == [stream, "g", "4", "2", "1"]

    (mine,) = [g for g in run("lag", "--json").json() if g["stream"] == stream]
    passed = time.monotonic() - started
    assert set(mine) == {"stream", "group", "lag", "lag_source", "lag_capped", "pending",
                         "consumers", "last_delivered_id", "oldest_pending_s"}
    # The oldest pending entry was added after `started` (Redis' clock: +1 ms for rounding).
    assert 0 <= mine["oldest_pending_s"] <= passed + 0.001
    assert (mine["lag"], mine["lag_source"], mine["lag_capped"]) == (4, "xinfo", False)


def test_lag_on_redis_6_2(monkeypatch: pytest.MonkeyPatch) -> None:
    with private_redis(binary=REDIS62) as server:
        client = redis.Redis.from_url(server.url)
        behind(client, "sales-updates", "secretmagic-group", total=6, read=2)
        point_at(monkeypatch, server.url)
        (g,) = run("lag", "--json").json()
        assert (g["lag"], g["lag_source"], g["pending"]) == (4, "counted", 2)
        assert run("lag").row("sales-updates")[:4] == ["sales-updates", "secretmagic-group", "4",
                                                       "2"]
        client.close()


def test_pending(r: redis.Redis, keys: Keys) -> None:
    stream = keys("cli-pending")
    ids = behind(r, stream, "secretmagic-group", total=4, read=3)

    table = run("pending", stream)  # the default group
    assert table.code == 0
    assert table.out.splitlines()[0] == (
        f"{stream} / secretmagic-group: 3 pending ({ids[0]} .. {ids[2]})"
    )
    assert table.row(ids[0])[1::2] == ["c1", "1", "acme"]
    assert table.row(ids[0])[4:] == ["sales_updated", "acme", "-"]  # no failed delivery yet

    result = run("pending", stream, "secretmagic-group", "--count", "2", "--json").json()
    assert set(result) == {"summary", "entries"}
    assert set(result["summary"]) == {"stream", "group", "count", "min_id", "max_id",
                                      "consumers"}
    assert result["summary"]["consumers"] == {"c1": 3}
    assert [e["entry_id"] for e in result["entries"]] == ids[:2]
    assert set(result["entries"][0]) == {"entry_id", "consumer", "idle_ms", "deliveries",
                                         "event_type", "client_id", "last_error"}


def test_tail(r: redis.Redis, keys: Keys) -> None:
    stream = keys("cli-tail")
    add_events(r, stream, 3)
    last = cast(bytes, r.xadd(stream, {b"event_type": b"\xff\x1b[31m", b"x": b"1"})).decode()

    table = run("tail", stream, "--count", "2")
    assert table.code == 0
    first, second = table.out.splitlines()
    assert "sales_updated  client=acme" in first and '"n":2' in first
    assert second.startswith(f"{last}  [not an event: ")
    assert "\x1b" not in table.out  # control characters from the stream are escaped

    lines = [json.loads(line) for line in run("tail", stream, "--json").out.splitlines()]
    assert len(lines) == 4 and all(set(e) == {"id", "fields", "event", "error"} for e in lines)
    assert lines[0]["event"]["client_id"] == "acme" and lines[-1]["event"] is None


def test_tail_follow_prints_new_entries_and_stops_on_ctrl_c(
    r: redis.Redis, keys: Keys, redis_url: str
) -> None:
    stream = keys("cli-follow")
    (first,) = add_events(r, stream, 1)
    parsed = urlparse(redis_url)
    env = child_env(MESSENGER_HOST=parsed.hostname or "", MESSENGER_PORT=str(parsed.port))
    proc = subprocess.Popen([sys.executable, "-m", "app", "tail", stream, "--follow"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    stdout = cast(IO[str], proc.stdout)  # stdout=PIPE

    def pump() -> None:
        for x in stdout:
            lines.put(x)

    threading.Thread(target=pump, daemon=True).start()

    def next_line() -> str:
        return lines.get(timeout=30)

    try:
        assert next_line().startswith(first)
        fields: dict[Any, Any] = encode(Event(event_type="stock_updated", client_id="zeta"))
        new = cast(bytes, r.xadd(stream, fields))
        line = next_line()
        assert line.startswith(new.decode()) and "stock_updated  client=zeta" in line
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_unknown_stream_and_group(r: redis.Redis, keys: Keys) -> None:
    missing, stream = keys("nope"), keys("cli-err")
    add_events(r, stream, 1)
    for argv in (["groups", missing], ["pending", missing], ["tail", missing]):
        result = run(*argv)
        assert one_line_error(result) == f"secretmagic: no such stream: {missing}"
        assert result.code == 1 and result.out == ""
    assert one_line_error(run("pending", stream, "nogroup")) == (
        f"secretmagic: no such group: nogroup on stream {stream}"
    )
