"""app.observability: gauges computed from a real Redis, counters, /metrics and /health (HTTP)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import cast

import pytest
import redis
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from app import ops
from app.observability.collector import StreamCollector
from app.observability.health import Health, serve
from app.observability.metrics import REGISTRY
from core.events import Event
from handlers.routing import Routes
from settings import MessengerSettings
from tests.harness import (
    REDIS62,
    Entries,
    Keys,
    behind,
    config,
    dead_letter,
    job,
    unique,
    wait_until,
    worker,
)
from tests.services import free_port, private_redis


def messenger(port: int) -> MessengerSettings:
    return MessengerSettings(host="127.0.0.1", port=port)


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


def healthy() -> Health:
    return Health(started=True, redis_ok=True, consumers_running=True)


# --- the collector -------------------------------------------------------------------------------


def test_collector_gauges_match_the_streams(r: redis.Redis, keys: Keys, redis_url: str) -> None:
    stream, group = keys("m-stream"), keys("m-group")
    behind(r, stream, group, total=7, read=3)  # lag 4, pending 3
    for _ in range(2):
        dead_letter(r, group, stream, {"event_type": "x"}, ValueError("v"))
    registry = CollectorRegistry()
    registry.register(StreamCollector(redis.Redis.from_url(redis_url),
                                      outbox_stats=lambda: (5, 12.5)))

    def gauge(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert gauge("secretmagic_redis_up") == 1
    assert gauge("secretmagic_group_lag", stream=stream, group=group) == 4
    assert gauge("secretmagic_group_pending", stream=stream, group=group) == 3
    assert gauge("secretmagic_group_consumers", stream=stream, group=group) == 1
    assert gauge("secretmagic_stream_length", stream=stream) == 7
    assert gauge("secretmagic_dlq_length", group=group) == 2
    assert gauge("secretmagic_outbox_depth") == 5
    assert gauge("secretmagic_outbox_oldest_age_seconds") == 12.5

    # The entries were added just now: the oldest pending one is younger than this test.
    assert 0 <= cast(float, gauge("secretmagic_group_oldest_pending_age_seconds",
                                  stream=stream, group=group)) < 60

    r.xreadgroup(group, "c1", {stream: ">"})  # catches up
    r.xack(stream, group, *[entry_id for entry_id, _ in cast(Entries, r.xrange(stream))])
    assert gauge("secretmagic_group_lag", stream=stream, group=group) == 0
    assert gauge("secretmagic_group_pending", stream=stream, group=group) == 0
    assert gauge("secretmagic_group_oldest_pending_age_seconds", stream=stream, group=group) == 0


def test_oldest_pending_age_counts_from_when_the_entry_was_added(r: redis.Redis,
                                                                 keys: Keys) -> None:
    stream, group = keys("m-stuck"), keys("m-group")
    seconds, _ = cast(tuple[int, int], r.time())
    added = [(seconds - 600) * 1000, (seconds - 90) * 1000]  # 10 min and 90 s ago, Redis clock
    for ms in added:
        r.xadd(stream, {"event_type": "x"}, id=f"{ms}-0")
    r.xgroup_create(stream, group, id="0")
    r.xreadgroup(group, "c1", {stream: ">"})
    registry = CollectorRegistry()
    registry.register(StreamCollector(r))

    def age() -> float:
        value = registry.get_sample_value("secretmagic_group_oldest_pending_age_seconds",
                                          {"stream": stream, "group": group})
        assert value is not None
        return value

    assert 600 <= age() < 660
    r.xack(stream, group, f"{added[0]}-0")  # the oldest is done: the next one is the oldest
    assert 90 <= age() < 150


def test_collector_lag_on_redis_6_2() -> None:
    with private_redis(binary=REDIS62) as server:
        client = redis.Redis.from_url(server.url)
        behind(client, "sales-updates", "secretmagic-group", total=9, read=4)
        labels = {"stream": "sales-updates", "group": "secretmagic-group"}
        for cap, expected in ((3, 3), (1000, 5)):  # capped, then counted in full
            registry = CollectorRegistry()
            registry.register(StreamCollector(client, lag_cap=cap))
            assert registry.get_sample_value("secretmagic_group_lag", labels) == expected
        client.close()


def test_collector_with_redis_down_and_a_failing_outbox() -> None:
    def broken() -> tuple[int, float | None]:
        raise OSError("outbox file gone")

    down = ops.connect(messenger(free_port()), timeout=1)
    registry = CollectorRegistry()
    registry.register(StreamCollector(down, outbox_stats=broken))
    assert registry.get_sample_value("secretmagic_redis_up") == 0
    assert registry.get_sample_value("secretmagic_outbox_depth") is None

    registry = CollectorRegistry()
    registry.register(StreamCollector(down, outbox_stats=lambda: (0, None)))
    assert registry.get_sample_value("secretmagic_outbox_depth") == 0
    assert registry.get_sample_value("secretmagic_outbox_oldest_age_seconds") == 0


def sample(name: str, **labels: str) -> float:
    """A sample of the app's registry, 0 for a series not created yet."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def job_routes(stream: str, output: str, handled: list[str]) -> Routes:
    """A handler of `job` entries on `stream` publishing a `job_done` to `output` for each."""
    routes = Routes()

    @routes.output("job_done", output)
    @routes.on(stream, "job")
    async def handle(event: Event) -> Event:
        handled.append(str(event.event_id))
        return Event(event_type="job_done", client_id=event.client_id,
                     data={"job": str(event.event_id)})

    return routes


async def test_the_worker_counts_what_it_does(redis_url: str) -> None:
    """The counters moved by the consumer and the publisher, by exactly what they did: two
    entries claimed from a consumer that went away, five handled (one run each: five clients),
    five published directly."""
    stream, output, group = unique("m-count"), unique("m-count-done"), unique("m-group")
    r = aioredis.Redis.from_url(redis_url)
    await r.xgroup_create(stream, group, id="0", mkstream=True)
    for _ in range(2):
        await r.xadd(stream, job())
    await r.xreadgroup(group, "gone", {stream: ">"})  # pending for a consumer that never acks
    before = {
        "claimed": sample("secretmagic_claims_total", stream=stream),
        "handled": sample("secretmagic_events_total", stream=stream, outcome="handled"),
        "runs": sample("secretmagic_handle_seconds_count", stream=stream),
        "published": sample("secretmagic_published_total", stream=output, route="direct"),
    }
    assert before == dict.fromkeys(before, 0.0)  # fresh series: the deltas below are all theirs
    handled: list[str] = []
    cfg = config([stream], group=group, claim_idle_ms=200)
    async with worker(job_routes(stream, output, handled), redis_url, cfg):
        for _ in range(3):
            await r.xadd(stream, job())
        await wait_until(lambda: len(handled) == 5, 20, "5 events handled")
        await wait_until(lambda: _pending_is(r, stream, group, 0), 10, "all acked")
    assert await r.xlen(output) == 5
    await r.aclose()
    assert len(set(handled)) == 5
    assert sample("secretmagic_claims_total", stream=stream) == 2
    assert sample("secretmagic_events_total", stream=stream, outcome="handled") == 5
    assert sample("secretmagic_handle_seconds_count", stream=stream) == 5
    assert sample("secretmagic_handle_seconds_bucket", stream=stream, le="+Inf") == 5
    assert sample("secretmagic_published_total", stream=output, route="direct") == 5
    families = {m.name for m in REGISTRY.collect()}
    assert {"secretmagic_events", "secretmagic_claims", "secretmagic_redis_reconnects",
            "secretmagic_group_recreated", "secretmagic_config_reloads",
            "secretmagic_published", "secretmagic_handle_seconds",
            "secretmagic_log_records_dropped"} <= families


async def _pending_is(r: aioredis.Redis, stream: str, group: str, n: int) -> bool:
    return int((await r.xpending(stream, group))["pending"]) == n


# --- the HTTP endpoint ---------------------------------------------------------------------------


def test_metrics_endpoint_serves_the_redis_gauges(
    r: redis.Redis, keys: Keys, redis_url: str
) -> None:
    stream, group = keys("m-http"), keys("m-http-group")
    behind(r, stream, group, total=5, read=1)
    dead_letter(r, group, stream, {"a": "b"}, ValueError("v"))
    collector = StreamCollector(redis.Redis.from_url(redis_url))
    server = serve(free_port(), healthy(), collector, addr="127.0.0.1")
    assert collector in REGISTRY._collector_to_names
    try:
        status, text = get(server.port, "/metrics")
        assert status == 200
        assert value(text, "secretmagic_group_lag", stream=stream, group=group) == 4
        assert value(text, "secretmagic_group_pending", stream=stream, group=group) == 1
        assert value(text, "secretmagic_dlq_length", group=group) == 1
        assert value(text, "secretmagic_redis_up") == 1
    finally:
        server.shutdown()
    assert not server.running
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5)
    assert collector not in REGISTRY._collector_to_names  # shutdown unregistered it


async def test_metrics_answer_with_redis_down_and_count_the_consumers_reconnect() -> None:
    """A private, append-only Redis stopped and started under a running worker: /metrics
    answers throughout (redis_up 0, no lag while down), and the consumer counts exactly one
    reconnection."""
    stream, output, group = "m-restart", "m-restart-done", "secretmagic-group"
    handled: list[str] = []
    with private_redis("--appendonly", "yes", "--appendfsync", "always") as redis_server:
        r = aioredis.Redis.from_url(redis_server.url)
        collector = StreamCollector(ops.connect(messenger(redis_server.port), timeout=1))
        server = serve(free_port(), healthy(), collector, addr="127.0.0.1")

        async def scrape() -> str:
            status, text = await asyncio.to_thread(get, server.port, "/metrics")
            assert status == 200
            return text

        try:
            async with worker(job_routes(stream, output, handled), redis_server.url,
                              config([stream], group=group)) as consumer:
                await r.xadd(stream, job())
                await wait_until(lambda: len(handled) == 1, 20, "the first event handled")
                await wait_until(lambda: _pending_is(r, stream, group, 0), 10, "it is acked")
                text = await scrape()
                assert value(text, "secretmagic_group_lag", stream=stream, group=group) == 0
                assert value(text, "secretmagic_redis_up") == 1
                reconnects = value(text, "secretmagic_redis_reconnects_total") or 0

                await asyncio.to_thread(redis_server.stop)
                await wait_until(lambda: consumer.redis_ok is False, 20, "the outage noticed")
                text = await scrape()
                assert value(text, "secretmagic_redis_up") == 0
                assert value(text, "secretmagic_group_lag", stream=stream, group=group) is None
                assert value(text, "secretmagic_redis_reconnects_total") == reconnects

                await asyncio.to_thread(redis_server.start)
                await wait_until(lambda: consumer.redis_ok is True, 30, "Redis reachable again")
                await r.connection_pool.disconnect()  # the test's own connections are stale
                await r.xadd(stream, job())
                await wait_until(lambda: len(handled) == 2, 20, "an event after the restart")
                text = await scrape()
                assert value(text, "secretmagic_redis_up") == 1
                assert value(text, "secretmagic_redis_reconnects_total") == reconnects + 1
        finally:
            server.shutdown()
            await r.aclose()
    assert len(set(handled)) == 2  # nothing handled twice across the restart


def test_health_is_200_when_healthy_and_503_with_the_problems() -> None:
    health = Health(details={"consumer": "host-1", "streams": ["sales-updates"]})
    server = serve(free_port(), health, addr="127.0.0.1")
    try:
        status, body = get(server.port, "/health")
        report = json.loads(body)
        assert status == 503 and report["status"] == "unhealthy"
        assert report["problems"] == ["not started", "redis unreachable", "consumers not running"]
        assert report["details"] == {"consumer": "host-1", "streams": ["sales-updates"]}

        health.started = health.redis_ok = health.consumers_running = True
        status, body = get(server.port, "/health")
        assert status == 200 and json.loads(body)["status"] == "ok"

        health.redis_ok = False
        assert get(server.port, "/health")[0] == 503
        assert get(server.port, "/nope")[0] == 404
        assert get(server.port, "/")[0] == 200
    finally:
        server.shutdown()


def test_health_rules_for_messenger_off_and_paused_consumption() -> None:
    assert Health(started=True, messenger=False).healthy  # no Redis needed
    assert Health(started=True, redis_ok=True, consuming=False).healthy  # paused on purpose
    assert not Health(started=True, redis_ok=True).healthy
    assert not Health(redis_ok=True, consumers_running=True).healthy


def test_port_zero_means_off() -> None:
    collector = StreamCollector(redis.Redis(port=free_port()))
    server = serve(0, healthy(), collector)
    assert not server.running and server.port == 0
    assert collector not in REGISTRY._collector_to_names
    server.shutdown()  # a no-op
