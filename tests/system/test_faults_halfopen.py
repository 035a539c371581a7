"""Half-open connections: a real worker whose Redis, log database or store sits behind a relay
that stops forwarding without closing anything (tests.apps.relay), as after a NAT or load
balancer dropped its state. Nothing closes the sockets and TCP keepalive is answered by the
relay, so only the worker's own timeouts can tell; each test prints how long they took.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from pathlib import Path

import redis

from tests import services
from tests.apps.probes import (
    TARGET,
    Counts,
    dead_letters,
    handled,
    health,
    outputs,
    recorder_env,
    status,
    timed,
)
from tests.apps.relay import HalfOpenRelay
from tests.harness import AppProcess, app_processes, fetch, job, unique


def test_redis_half_open_is_detected_and_survived(redis_url: str, tmp_path: Path) -> None:
    r = redis.Redis.from_url(redis_url)
    port = int(redis.connection.parse_url(redis_url).get("port", 6379))
    stream, prefix, group = unique("halfopen"), unique("rec"), unique("halfopen-group")
    metrics = services.free_port()
    relay = HalfOpenRelay(port).start()
    env = {**recorder_env(f"redis://127.0.0.1:{relay.port}/0", tmp_path, stream, prefix,
                          group=group),
           "RECORDER_REDIS_URL": redis_url, "METRICS_PORT": str(metrics)}
    app = AppProcess(TARGET, env, tmp_path, "halfopen")
    try:
        with app_processes(app):
            app.wait_output(f"consuming {stream}")
            services.wait_for(lambda: health(metrics) == 200, 20, "healthy at start")
            before = [job() for _ in range(50)]
            for fields in before:
                r.xadd(stream, fields)
            services.wait_for(lambda: len(handled(r, prefix)) == 50, 30, "50 handled")

            relay.cut()
            cut_at = time.monotonic()
            during = [job() for _ in range(50)]  # arrive while the worker's link is dead
            for fields in during:
                r.xadd(stream, fields)
            services.wait_for(lambda: health(metrics) == 503, 30, "/health 503 after the cut")
            detected = time.monotonic() - cut_at
            assert len(handled(r, prefix)) == 50  # nothing got through the dead link

            relay.restore()
            new_ids = {f["event_id"] for f in during}
            resumed = timed(lambda: new_ids & set(handled(r, prefix)), 60,
                            "an event sent during the cut handled")
            healthy = timed(lambda: health(metrics) == 200, 30, "healthy again") + resumed
            sent = {f["event_id"] for f in before + during}
            services.wait_for(lambda: set(handled(r, prefix)) >= sent, 60, "all 100 handled")
            services.wait_for(lambda: {o["job"] for o in outputs(r, stream)} >= sent, 60,
                              "all 100 outputs")
            services.wait_for(lambda: r.xpending(stream, group)["pending"] == 0, 30,
                              "nothing pending")
    finally:
        relay.close()
    counts = Counts("Redis half-open", sent, handled(r, prefix),
                    len(dead_letters(r, group, stream)),
                    [o["job"] for o in outputs(r, stream)]).report(
        detected_s=round(detected, 1), first_handled_after_restore_s=round(resumed, 1),
        healthy_after_restore_s=round(healthy, 1), relay_connections=relay.connections)
    assert counts.lost == 0 and counts.dead_lettered == 0
    assert "unreachable" in app.output  # the worker said what happened, once


def test_postgres_half_open_never_blocks_events_and_the_sink_reconnects(
        redis_url: str, pg_dsn: str, tmp_path: Path) -> None:
    """The log database's link goes silent: events are handled all along (the sink is off the
    event path); the sink's write times out, it reconnects once the path is back and writes the
    records it kept."""
    r = redis.Redis.from_url(redis_url)
    stream, prefix = unique("pghalf"), unique("rec")
    schema = unique("logs").replace("-", "_")
    where = urllib.parse.urlsplit(pg_dsn)
    relay = HalfOpenRelay(where.port or 5432).start()
    relayed = pg_dsn.replace(where.netloc, where.netloc.replace(
        f"{where.hostname}:{where.port}", f"127.0.0.1:{relay.port}"))
    env = {**recorder_env(redis_url, tmp_path, stream, prefix), "LOGS_DSN": relayed,
           "LOGS_SCHEMA": schema}

    def logged() -> set[str]:
        rows = asyncio.run(fetch(pg_dsn, f"SELECT context->>'event_id' FROM {schema}.logs "
                                         "WHERE message = 'event handled'"))
        return {row[0] for row in rows}

    def send(n: int) -> set[str]:
        ids = set()
        for _ in range(n):
            fields = job()
            r.xadd(stream, fields)
            ids.add(fields["event_id"])
        return ids

    app = AppProcess(TARGET, env, tmp_path, "pghalf")
    try:
        with app_processes(app):
            app.wait_output(f"consuming {stream}")
            sent = send(50)
            services.wait_for(lambda: logged() >= sent, 30, "the first 50 logged")
            relay.cut()
            cut_at = time.monotonic()
            during = send(100)
            # Handled at the pace of a healthy run while the sink's COPY hangs on the dead link.
            handled_in = timed(lambda: set(handled(r, prefix)) >= sent | during, 30,
                               "100 handled during the cut")
            sent |= during
            # The path comes back at once, but the connection the sink holds stays silent for
            # good: only its write timeout gets it off it.
            relay.restore()
            sent |= send(50)
            app.wait_output("unavailable; keeping up to", timeout=60)
            detected = time.monotonic() - cut_at
            services.wait_for(lambda: logged() >= sent, 60, "every event logged after the cut")
            rewritten = time.monotonic() - cut_at - detected
            assert app.running
    finally:
        relay.close()
    counts = Counts("PostgreSQL half-open", sent, handled(r, prefix),
                    len(dead_letters(r, "secretmagic-group", stream))).report(
        handled_during_cut_in_s=round(handled_in, 1), sink_detected_s=round(detected, 1),
        all_logged_after_detection_s=round(rewritten, 1), log_rows=len(logged() & sent))
    assert counts.lost == 0 and counts.dead_lettered == 0 and counts.duplicated == 0
    assert "reachable again" in app.output


STORE_TIMEOUT_S = 3  # the DSN's read_timeout/write_timeout here; 60 s by default


def test_store_half_open_becomes_unavailable_within_its_timeouts(
        redis_url: str, mysql_database: str, tmp_path: Path) -> None:
    """The store's link goes silent under a running query: the query fails after read_timeout,
    is retried once on a fresh connection (as for any reused connection that died), which fails
    the same way; the handler gives up with Unavailable, so its slot and client are freed, the
    stream pauses (not dead-lettered), and everything is handled once the path is back."""
    r = redis.Redis.from_url(redis_url)
    stream, prefix, group = unique("storehalf"), unique("rec"), unique("storehalf-group")
    where = urllib.parse.urlsplit(mysql_database)
    relay = HalfOpenRelay(where.port or 3306).start()
    dsn = (f"mysql://{where.username}@127.0.0.1:{relay.port}{where.path}"
           f"?read_timeout={STORE_TIMEOUT_S}&write_timeout={STORE_TIMEOUT_S}&connect_timeout=2")
    metrics = services.free_port()
    env = {**recorder_env(redis_url, tmp_path, stream, prefix, group=group),
           "STORE_DSN": dsn, "RECORDER_STORE": "1", "METRICS_PORT": str(metrics)}
    app = AppProcess(TARGET, env, tmp_path, "storehalf")

    def waiting() -> dict[str, str]:
        return dict(status(metrics).get("details", {}).get("waiting", {}))

    try:
        with app_processes(app):
            app.wait_output(f"consuming {stream}")
            before = [job() for _ in range(20)]
            for fields in before:
                r.xadd(stream, fields)
            services.wait_for(lambda: len(handled(r, prefix)) == 20, 30, "20 handled")
            relay.cut()
            cut_at = time.monotonic()
            during = [job() for _ in range(20)]
            for fields in during:
                r.xadd(stream, fields)
            services.wait_for(lambda: stream in waiting(), 60, "the stream paused")
            detected = time.monotonic() - cut_at
            reason = waiting()[stream]
            relay.restore()
            sent = {f["event_id"] for f in before + during}
            recovered = timed(lambda: set(handled(r, prefix)) >= sent, 60, "all 40 handled")
            services.wait_for(lambda: r.xpending(stream, group)["pending"] == 0, 30,
                              "nothing pending")
            services.wait_for(lambda: stream not in waiting(), 10, "reading resumed")
    finally:
        relay.close()
    counts = Counts("store half-open", sent, handled(r, prefix),
                    len(dead_letters(r, group, stream))).report(
        unavailable_after_s=round(detected, 1), all_handled_after_restore_s=round(recovered, 1))
    assert counts.lost == 0 and counts.dead_lettered == 0
    assert "Unavailable" in reason and "unavailable during read" in reason
    # A dead query costs read_timeout, its retry on a fresh connection the handshake's
    # read_timeout: the bound, plus a claim tick and a loaded machine's slack.
    assert detected < 2 * STORE_TIMEOUT_S + 2 + 10
