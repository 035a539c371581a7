"""The worker behind Redis Sentinel (a master, a replica, three sentinels, from the redis-server
binary): the master killed while events flow, the replica promoted, nothing lost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from redis.sentinel import Sentinel

from core.keys import dlq_stream
from tests.harness import AppProcess, app_processes, config, job, tally, unique, write_config
from tests.services import HOST, wait_for
from tests.topologies import drained, logged_ids, sentinel_setup

GROUP = "sentinel-group"


def test_the_master_killed_mid_flow_loses_nothing(tmp_path: Path) -> None:
    with sentinel_setup() as setup:
        # The integrator's client: it asks the sentinels for the master, again after a failover.
        r: Any = Sentinel([(HOST, p) for p in setup.ports], socket_timeout=2).master_for(
            setup.name, socket_timeout=2)
        streams = [unique("sn") for _ in range(2)]
        cfg = write_config(tmp_path / "config.yaml", config(streams, group=GROUP, batch_size=5))
        log = tmp_path / "handled.log"
        app = AppProcess("tests.apps.recorder:app", {
            "MESSENGER_SENTINELS": setup.addresses, "MESSENGER_SENTINEL_MASTER": setup.name,
            "RECORDER_STREAMS": ",".join(streams), "RECORDER_LOG": str(log),
            "RECORDER_WORK_MS": "20", "RECORDER_PREFIX": unique("rec"),
            "SECRETMAGIC_CONFIG": str(cfg)}, tmp_path, "sn-1")
        with app_processes(app):
            app.wait_output(f"consuming {streams[0]}")
            for i in range(200):
                r.xadd(streams[i % 2], job())
            wait_for(lambda: len(logged_ids(log)) >= 50, 60, "50 handled")
            old = setup.master.port
            setup.master.kill()
            wait_for(lambda: setup.current_master() != old, 30, "the sentinels' failover")
            wait_for(lambda: _writable(r), 30, "the new master taking writes")
            for i in range(100):
                r.xadd(streams[i % 2], job())
            kept = drained(r, streams, GROUP, [log])
        done = logged_ids(log)
        dead = r.xlen(dlq_stream(GROUP))
        lost = tally(kept, done, dead, f"master {old} killed, {setup.current_master()} "
                     "promoted, 300 sent")
        assert lost == 0 and dead == 0
        assert len(done) - len(set(done)) <= 25  # one read batch, at most
        assert app.output.count("is unreachable; waiting for it") <= len(streams)


def _writable(r: Any) -> bool:
    try:
        return bool(r.set(unique("probe"), 1, ex=5))
    except Exception:
        return False
