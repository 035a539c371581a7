"""Redis out of memory: a private redis-server with a small `maxmemory` and `noeviction`, filled
while a real worker handles events. Every write that needs memory (XADD, HSET, a script's SET) is
refused with OOM; reads, XACK, XCLAIM and deletes still work. The worker's bookkeeping
(tests.apps.recorder) lives on another Redis, so the counts do not depend on the full one.

An output refused with OOM goes to the outbox (not a retry of the handler): the handler returns,
its input is acked only once the output is committed there, and the outbox sends everything, in
order, when Redis takes writes again.

On the consumer's side the claim of an event_id (a script's SET), the record of a delivery that
does not count (HINCRBY) and a DLQ copy (XADD) are refused too: an outage (app.delivery.settle),
the entries stay pending, their deliveries uncounted, nothing dead-lettered.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from redis import exceptions as rexc

from app.publishing.outbox import outage_reason
from tests import services
from tests.apps.probes import (
    GROUP,
    TARGET,
    Counts,
    dead_letters,
    flowing,
    handled,
    metric,
    outputs,
    recorder_env,
)
from tests.harness import AppProcess, Entries, app_processes, job, unique

MAXMEMORY = "16mb"


@pytest.mark.parametrize(("error", "reason"), [
    # What redis-py raises: the reply's code is stripped from the message.
    (rexc.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
     "out_of_memory"),
    (rexc.ReadOnlyError("You can't write against a read only replica."), "read_only"),
    (rexc.MasterDownError("Link with MASTER is down and replica-serve-stale-data is set to 'no'."),
     "master_down"),
    (rexc.ClusterDownError("The cluster is down"), "cluster_down"),
    (rexc.TryAgainError("Multiple keys request during rehashing of slot"), "try_again"),
    (rexc.BusyLoadingError("Redis is loading the dataset in memory"), "loading"),
    (rexc.ConnectionError("Connection refused"), "unreachable"),
    (rexc.AuthenticationError("invalid username-password pair"), None),
    (rexc.ResponseError("WRONGTYPE Operation against a key holding the wrong kind"), None),
])
def test_why_redis_did_not_take_an_event(error: Exception, reason: str | None) -> None:
    assert outage_reason(error) == reason


def fill(r: redis.Redis, prefix: str) -> int:
    """Fill Redis until it refuses even a small write, then set maxmemory 1 MiB below what it
    uses, so that the worker's own acks and deletes cannot bring it back under; the keys set."""
    keys = itertools.count()
    for size in (65536, 1024, 16):  # a large value is refused while its own bytes still count
        while True:
            try:
                r.set(f"{prefix}:{next(keys)}", b"x" * size)
            except rexc.OutOfMemoryError:
                break
    r.config_set("maxmemory", int(r.info("memory")["used_memory"]) - (1 << 20))
    return next(keys) - 3  # the three refused


def free(r: redis.Redis, prefix: str) -> None:
    r.config_set("maxmemory", MAXMEMORY)
    doomed = list(r.scan_iter(f"{prefix}:*", count=1000))
    if doomed:
        r.delete(*doomed)


def acked(r: redis.Redis, stream: str) -> set[str]:
    """The event ids of the entries the group has acked: delivered, and not pending."""
    last = next(g for g in r.xinfo_groups(stream) if g["name"] == GROUP.encode())
    pending = {p["message_id"] for p in r.xpending_range(stream, GROUP, "-", "+", 10_000)}
    return {fields[b"event_id"].decode()
            for entry_id, fields in cast(Entries, r.xrange(stream, "-", last["last-delivered-id"]))
            if entry_id not in pending}


def most_delivered(r: redis.Redis, stream: str) -> int:
    """The highest delivery count among the group's pending entries."""
    pending = cast(list[dict[str, Any]], r.xpending_range(stream, GROUP, "-", "+", 10_000))
    return max((int(p["times_delivered"]) for p in pending), default=0)


def outbox_jobs(path: Path) -> set[str]:
    """The jobs whose outputs wait in a stopped worker's outbox file."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT fields FROM outbox").fetchall()
    return {json.loads(json.loads(fields)["data"])["job"] for (fields,) in rows}


def in_order(found: list[dict[str, Any]]) -> bool:
    """Each process's outputs appear in the order it published them (its seq)."""
    last: dict[int, int] = {}
    for data in found:
        if data["seq"] <= last.get(data["pid"], 0):
            return False
        last[data["pid"]] = data["seq"]
    return True


def test_redis_out_of_memory_keeps_outputs_in_the_outbox_and_drains_them_in_order(
        redis_url: str, tmp_path: Path) -> None:
    books = redis.Redis.from_url(redis_url)
    stream, prefix = unique("oom"), unique("rec")
    box = tmp_path / "outbox.sqlite3"
    port = services.free_port()
    with services.private_redis("--maxmemory", MAXMEMORY,
                                "--maxmemory-policy", "noeviction") as server:
        r = redis.Redis.from_url(server.url)
        # One handler at a time (publication order = reading order) and no duplicate check
        # (its claim is a SET, refused too): the path of an output under OOM, on its own.
        env = {**recorder_env(server.url, tmp_path, stream, prefix, concurrency=1,
                              dedup_window_s=0),
               "RECORDER_REDIS_URL": redis_url, "RECORDER_WORK_MS": "5",
               "OUTBOX_PATH": str(box), "METRICS_PORT": str(port)}
        sent = [job() for _ in range(300)]
        ids = {f["event_id"] for f in sent}
        with app_processes(AppProcess(TARGET, env, tmp_path, "oom-1")) as (first,):
            flowing(first, r, stream, sent, books, prefix, at_least=30)
            filled = fill(r, "filler")
            at_full = len(handled(books, prefix))
            first.wait_output("Redis is out of memory", timeout=30)  # the drainer's one line
            services.wait_for(lambda: len(handled(books, prefix)) >= at_full + 50, 30,
                              "50 more handled while Redis is full")
            oom = metric(port, "secretmagic_outbox_queued_total", reason="out_of_memory")
            behind = metric(port, "secretmagic_outbox_queued_total", reason="behind")
            first.kill()  # mid-outage: what was acked must have its output stored
        done = acked(r, stream)
        in_redis = {o["job"] for o in outputs(r, stream)}
        in_box = outbox_jobs(box)
        assert done - in_redis - in_box == set()  # no input acked whose output is nowhere
        assert in_box and not in_box & in_redis
        free(r, "filler")
        with app_processes(AppProcess(TARGET, env, tmp_path, "oom-2")) as (second,):
            second.wait_output(f"consuming {stream}")
            services.wait_for(lambda: set(handled(books, prefix)) >= ids, 60, "all handled")
            services.wait_for(lambda: {o["job"] for o in outputs(r, stream)} >= ids, 60,
                              "every output in Redis")
            services.wait_for(lambda: r.xpending(stream, GROUP)["pending"] == 0, 30,
                              "nothing pending")
        found = outputs(r, stream)
        counts = Counts("Redis out of memory", ids, handled(books, prefix),
                        len(dead_letters(r, GROUP, stream)), [o["job"] for o in found]).report(
            filler_keys=filled, acked_at_kill=len(done), outputs_in_outbox_at_kill=len(in_box),
            queued=f"{oom:.0f} out_of_memory + {behind:.0f} behind", output_copies=len(found))
    assert counts.lost == 0 and counts.dead_lettered == 0
    # The first output refused for OOM, the later ones queued behind it (order), each counted.
    assert oom >= 1 and 50 <= oom + behind <= len(in_box)
    assert in_order(found)
    assert "Redis is out of memory (maxmemory reached" in first.output


def test_redis_out_of_memory_with_duplicate_checks_dead_letters_nothing(
        redis_url: str, tmp_path: Path) -> None:
    """The claim of each event_id (a script's SET), the record of an uncounted delivery
    (HINCRBY) and a DLQ copy (XADD) are refused too: the entries wait, pending, uncounted."""
    books = redis.Redis.from_url(redis_url)
    stream, prefix = unique("oomdedup"), unique("rec")
    port = services.free_port()
    with services.private_redis("--maxmemory", MAXMEMORY,
                                "--maxmemory-policy", "noeviction") as server:
        r = redis.Redis.from_url(server.url)
        env = {**recorder_env(server.url, tmp_path, stream, prefix, concurrency=1),
               "RECORDER_REDIS_URL": redis_url, "RECORDER_WORK_MS": "5",
               "METRICS_PORT": str(port)}
        sent = [job() for _ in range(100)]
        ids = {f["event_id"] for f in sent}
        with app_processes(AppProcess(TARGET, env, tmp_path, "oomdedup")) as (app,):
            flowing(app, r, stream, sent, books, prefix, at_least=10)
            fill(r, "filler")
            # Full until an entry has been delivered more often than max_deliveries (5): had
            # those deliveries counted, it would be dead-lettered.
            services.wait_for(lambda: most_delivered(r, stream) > 5, 60,
                              "an entry delivered over max_deliveries times while Redis is full")
            deliveries = most_delivered(r, stream)
            at_full = len(handled(books, prefix))
            refused = metric(port, "secretmagic_delivery_refused_total", stream=stream,
                             reason="out_of_memory")
            free(r, "filler")
            services.wait_for(lambda: set(handled(books, prefix)) >= ids, 60, "all handled")
            services.wait_for(lambda: r.xpending(stream, GROUP)["pending"] == 0, 60,
                              "nothing pending")
            services.wait_for(lambda: {o["job"] for o in outputs(r, stream)} >= ids, 60,
                              "every output in Redis")
        counts = Counts("Redis out of memory, duplicate checks on", ids, handled(books, prefix),
                        len(dead_letters(r, GROUP, stream)),
                        [o["job"] for o in outputs(r, stream)]).report(
            handled_before_freed=at_full, most_deliveries=deliveries, refused=f"{refused:.0f}")
    assert counts.lost == 0 and counts.dead_lettered == 0 and counts.duplicated == 0
    assert refused >= 1  # the metric saw the refusals
    paused = [ln for ln in app.output.splitlines()
              if "Redis refused the delivery policy's writes" in ln]
    assert len(paused) == 1 and "Redis is out of memory" in paused[0]  # one line per episode
