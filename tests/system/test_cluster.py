"""The worker on a Redis Cluster of 3 masters and 3 replicas, started from the redis-server binary
(tests/topologies.py): every Redis use of the delivery policy in cluster mode, and a master
killed while events flow."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from app import ops
from core.errors import FatalError, RetryableError
from core.events import Event
from core.keys import dlq_stream
from handlers.routing import Routes
from settings import MessengerSettings
from tests.harness import (
    AppProcess,
    app_processes,
    config,
    job,
    tally,
    unique,
    wait_until,
    worker,
    write_config,
)
from tests.services import HOST, wait_for
from tests.topologies import Cluster, cluster, drained, logged_ids

GROUP = "cluster-group"


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[Cluster]:
    with cluster() as c:
        yield c


def settings_of(c: Cluster) -> MessengerSettings:
    return MessengerSettings(cluster_nodes=c.seeds)


def sync(c: Cluster) -> Any:
    return ops.connect(settings_of(c))


def on_every_master(c: Cluster, r: Any, prefix: str) -> list[str]:
    """Stream names, one served by each master."""
    found: dict[int, str] = {}
    while len(found) < len(c.masters):
        name = unique(prefix)
        found.setdefault(c.master_of(r.keyslot(name)).port, name)
    return list(found.values())


async def test_the_policy_works_across_masters(redis_cluster: Cluster) -> None:
    # Streams whose names hash to different masters, each with good, failing, fatal and
    # duplicate entries: acks, retries (errors hash), the DLQ, dedup claims, publishing.
    r = sync(redis_cluster)
    streams = on_every_master(redis_cluster, r, "cl")
    streams.append(unique("cl"))
    attempts: dict[str, int] = {}
    handled: list[str] = []
    routes = Routes()
    out = unique("cl-out")

    @routes.output("job_done", out)
    @routes.on(streams[0], "job")
    @routes.on(streams[1], "job")
    @routes.on(streams[2], "job")
    @routes.on(streams[3], "job")
    async def handle(event: Event) -> Event:
        key = str(event.event_id)
        attempts[key] = attempts.get(key, 0) + 1
        if event.data.get("fail") == "fatal":
            raise FatalError("never")
        if event.data.get("fail") == "once" and attempts[key] == 1:
            raise RetryableError("once")
        handled.append(key)
        return Event(event_type="job_done", client_id=event.client_id, data={"job": key})

    sent: list[dict[str, Any]] = []
    for stream in streams:
        good, flaky, fatal = job(), job(fail="once"), job(fail="fatal")
        for fields in (good, flaky, fatal, good):  # the good one twice: a duplicate
            r.xadd(stream, fields)
        sent += [good, flaky, fatal]
    cfg = config(streams, group=GROUP)
    async with worker(routes, "", cfg, messenger=settings_of(redis_cluster)):
        await wait_until(lambda: len(handled) == 8 and r.xlen(dlq_stream(GROUP)) == 4, 30,
                         "8 handled, 4 dead-lettered")
        await wait_until(lambda: all(r.xpending(s, GROUP)["pending"] == 0 for s in streams), 15,
                         "all acked")
    assert sorted(handled) == sorted(f["event_id"] for f in sent if f["data"] != '{"fail": '
                                     '"fatal"}')
    assert r.xlen(out) == 8
    dead = [f[b"dlq_error"] for _, f in r.xrange(dlq_stream(GROUP))]
    assert dead == [b"never"] * 4
    lost = 12 - len(handled) - len(dead)
    print(f"sent=12 (+4 duplicates) handled={len(handled)} dead_lettered={len(dead)} lost={lost}")
    assert lost == 0
    with contextlib.suppress(redis.ResponseError):
        r.delete(*streams, out, dlq_stream(GROUP))


def test_a_master_killed_mid_flow_loses_nothing(tmp_path: Path) -> None:
    """Two instances read four streams spread over the masters; the master serving one of them
    is killed while they work and its replica takes over."""
    with cluster() as c:
        # The integrator's client: redis-py's defaults retry and follow the new topology.
        r: Any = redis.RedisCluster(host=HOST, port=c.masters[0].port)
        streams = [*on_every_master(c, r, "fo"), unique("fo")]
        cfg = write_config(tmp_path / "config.yaml", config(streams, group=GROUP, batch_size=5))
        logs = [tmp_path / f"handled-{i}.log" for i in (1, 2)]
        apps = [AppProcess("tests.apps.recorder:app", {
            "MESSENGER_CLUSTER_NODES": c.seeds, "RECORDER_STREAMS": ",".join(streams),
            "RECORDER_LOG": str(log), "RECORDER_WORK_MS": "20", "RECORDER_PREFIX": unique("rec"),
            "SECRETMAGIC_CONFIG": str(cfg)}, tmp_path, f"cl-{i}")
            for i, log in zip((1, 2), logs, strict=True)]
        produced: list[str] = []
        with app_processes(*apps):
            for app in apps:
                app.wait_output(f"consuming {streams[0]}")
            for i in range(400):
                fields = job()
                r.xadd(streams[i % len(streams)], fields)
                produced.append(fields["event_id"])
            wait_for(lambda: len(set(logged_ids(*logs))) >= 100, 60, "100 handled")
            victim = c.kill_master_of(streams[0])
            for i in range(200):  # and more while the cluster has only two original masters
                fields = job()
                r.xadd(streams[i % len(streams)], fields)
                produced.append(fields["event_id"])
            kept = drained(r, streams, GROUP, logs)
        handled = logged_ids(*logs)
        dead = r.xlen(dlq_stream(GROUP))
        lost = tally(kept, handled, dead, f"master {victim.port} killed, {len(produced)} sent, "
                     f"{sum(r.xlen(f'{s}-done') for s in streams)} outputs")
        assert lost == 0 and dead == 0
        assert len(handled) - len(set(handled)) <= 50  # a read batch per instance, at most
        for app in apps:  # the outage is told once per instance, not once per retry
            assert app.output.count("is unreachable; waiting for it") <= len(streams), app.name
        assert {s.name for s in ops.streams(r)} >= set(streams)  # across every master
