"""Consumption on a 3-master Redis Cluster vs one Redis, with 1, 2 and 4 worker instances.

    .venv/bin/python bench/bench_cluster.py [--events 20000] [--streams 6]

Each run: `--events` entries spread over `--streams` streams (on the cluster, spread over its
masters), then N `faststream run tests.apps.recorder:app` instances of one group; timed from the
moment every instance says it is consuming until nothing is left unacked. Both servers are
private redis-server processes on loopback (tests/topologies.py), started fresh per run. Prints
events/s and the cluster ÷ single ratio per instance count.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from tests.harness import AppProcess, app_processes, config, job, write_config  # noqa: E402
from tests.services import HOST, private_redis, wait_for  # noqa: E402
from tests.topologies import cluster  # noqa: E402

GROUP = "bench-cluster-group"


def run(client: Any, env: dict[str, str], streams: list[str], n: int, instances: int) -> float:
    for start in range(0, n, 1000):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(start + 1000, n)):
            pipe.xadd(streams[i % len(streams)], job())
        pipe.execute()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_config(Path(tmp) / "config.yaml",
                           config(streams, group=GROUP, batch_size=50, concurrency=8))
        apps = [AppProcess("tests.apps.recorder:app", {
            **env, "RECORDER_STREAMS": ",".join(streams), "SECRETMAGIC_CONFIG": str(cfg)},
            Path(tmp), f"bench-{i}") for i in range(instances)]
        with app_processes(*apps):
            for app in apps:
                app.wait_output(f"consuming {streams[-1]}", 60)
            started = time.perf_counter()
            wait_for(lambda: all(_done(client, s) for s in streams), 600, "all acked")
            return time.perf_counter() - started


def _done(client: Any, stream: str) -> bool:
    groups = client.xinfo_groups(stream)
    return bool(groups) and groups[0]["lag"] == 0 and groups[0]["pending"] == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--streams", type=int, default=6)
    args = parser.parse_args()
    streams = [f"bench-cl-{i}" for i in range(args.streams)]
    results: dict[tuple[str, int], float] = {}
    for instances in (1, 2, 4):
        with private_redis() as server:
            seconds = run(redis.Redis(host=HOST, port=server.port),
                          {"MESSENGER_HOST": HOST, "MESSENGER_PORT": str(server.port)},
                          streams, args.events, instances)
            results["single", instances] = args.events / seconds
        with cluster() as c:
            seconds = run(redis.RedisCluster(host=HOST, port=c.masters[0].port),
                          {"MESSENGER_CLUSTER_NODES": c.seeds}, streams, args.events, instances)
            results["cluster", instances] = args.events / seconds
        print(f"{instances} instance(s): single {results['single', instances]:8,.0f} ev/s   "
              f"cluster {results['cluster', instances]:8,.0f} ev/s   "
              f"cluster/single {results['cluster', instances] / results['single', instances]:.2f}",
              flush=True)
    print(f"\n{os.cpu_count()} CPUs; the worker, the servers and this script share them")


if __name__ == "__main__":
    main()
