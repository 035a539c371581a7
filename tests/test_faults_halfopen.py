"""Half-open connections: a real worker whose Redis, log database or store sits behind a relay
that stops forwarding without closing anything (tests.apps.relay), as after a NAT or load
balancer dropped its state. Nothing closes the sockets and TCP keepalive is answered by the
relay, so only the worker's own timeouts can tell; each test prints how long they took.
"""

from __future__ import annotations

import time
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
    timed,
)
from tests.apps.relay import HalfOpenRelay
from tests.harness import AppProcess, app_processes, job, unique


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
