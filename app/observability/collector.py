"""Gauges computed from Redis on every scrape of /metrics (app.ops.monitor, a sync client).

    secretmagic_group_lag / _group_pending / _group_oldest_pending_age_seconds /
    _group_consumers {stream,group},  secretmagic_stream_length {stream},
    secretmagic_dlq_length {group},  secretmagic_redis_up,
    secretmagic_outbox_depth,  secretmagic_outbox_oldest_age_seconds  (from `outbox_stats()`)

Redis down during a scrape never breaks /metrics: what was read is emitted and
secretmagic_redis_up is 0.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

import redis
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app import ops

log = logging.getLogger("secretmagic.metrics")

SCRAPE_LAG_CAP = 10_000  # on Redis 6.2 lag is counted with XRANGE: bounded work per scrape

OutboxStats = Callable[[], tuple[int, float | None]]


class StreamCollector(Collector):
    """Gauges computed from Redis on every scrape (register it on REGISTRY, or give it to serve()).

    `client` is a sync redis.Redis that fails fast (ops.connect() makes one); `outbox_stats`
    returns (depth, age in seconds of the oldest entry or None when empty).
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        outbox_stats: OutboxStats | None = None,
        lag_cap: int = SCRAPE_LAG_CAP,
    ) -> None:
        self.client = client
        self.outbox_stats = outbox_stats
        self.lag_cap = lag_cap
        self._was_up = True  # log once per outage, not once per scrape

    def describe(self) -> Iterable[Metric]:
        return list(self._families().values())  # names only: no Redis at registration

    @staticmethod
    def _families() -> dict[str, GaugeMetricFamily]:
        group = ["stream", "group"]
        return {
            "up": GaugeMetricFamily(
                "secretmagic_redis_up", "1 if the last scrape could read Redis, else 0"
            ),
            "lag": GaugeMetricFamily(
                "secretmagic_group_lag",
                "Entries not yet delivered to the group (counted up to a cap on Redis 6.2)",
                labels=group,
            ),
            "pending": GaugeMetricFamily(
                "secretmagic_group_pending", "Delivered but unacknowledged entries", labels=group
            ),
            "oldest_pending": GaugeMetricFamily(
                "secretmagic_group_oldest_pending_age_seconds",
                "Age of the oldest delivered but unacknowledged entry, counted from when it was "
                "added to the stream (0 when none): how long the group's oldest work is stuck",
                labels=group,
            ),
            "consumers": GaugeMetricFamily(
                "secretmagic_group_consumers", "Consumers known to the group", labels=group
            ),
            "length": GaugeMetricFamily(
                "secretmagic_stream_length", "Entries in the stream (XLEN)", labels=["stream"]
            ),
            "dlq": GaugeMetricFamily(
                "secretmagic_dlq_length", "Entries in the group's dead-letter stream",
                labels=["group"],
            ),
            "outbox_depth": GaugeMetricFamily(
                "secretmagic_outbox_depth", "Events waiting in the local outbox for Redis"
            ),
            "outbox_age": GaugeMetricFamily(
                "secretmagic_outbox_oldest_age_seconds",
                "Age of the oldest event in the outbox (0 when empty)",
            ),
        }

    def collect(self) -> Iterator[Metric]:
        f = self._families()
        up = 1
        try:
            for info in ops.streams(self.client):
                f["length"].add_metric([info.name], info.length)
                if info.name.endswith(":dlq"):
                    f["dlq"].add_metric([info.name.removesuffix(":dlq")], info.length)
                if not info.groups:
                    continue
                try:
                    stream_groups = ops.groups(self.client, info.name, self.lag_cap)
                except ops.MonitorError:
                    continue  # deleted since SCAN
                for g in stream_groups:
                    f["lag"].add_metric([info.name, g.name], g.lag)
                    f["pending"].add_metric([info.name, g.name], g.pending)
                    stuck = (ops.oldest_pending_age(self.client, info.name, g.name)
                             if g.pending else 0.0)
                    f["oldest_pending"].add_metric([info.name, g.name], stuck)
                    f["consumers"].add_metric([info.name, g.name], g.consumers)
        except redis.RedisError as exc:
            up = 0
            if self._was_up:
                log.warning("metrics: cannot read Redis for the stream gauges: %s", exc)
        if up and not self._was_up:
            log.info("metrics: Redis readable again")
        self._was_up = bool(up)
        f["up"].add_metric([], up)
        if self.outbox_stats is not None:
            try:
                depth, age = self.outbox_stats()
            except Exception as exc:  # the outbox must not break /metrics either
                log.debug("metrics scrape could not read the outbox: %s", exc)
            else:
                f["outbox_depth"].add_metric([], depth)
                f["outbox_age"].add_metric([], age or 0.0)
        else:
            del f["outbox_depth"], f["outbox_age"]
        yield from f.values()
