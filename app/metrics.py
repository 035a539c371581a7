"""Prometheus metrics and the /metrics + /health HTTP endpoint.

Everything is on one registry, `REGISTRY` (FastStream's RedisPrometheusMiddleware is given the same
registry and measures what it measures: messages received/processed and their duration per
handler). Here is what it lacks:

- counters the delivery policy updates: EVENTS{stream,outcome} (handled, duplicate, retried,
  dead_lettered, coalesced, malformed), CLAIMS, RECONNECTS, GROUP_RECREATED, CONFIG_RELOADS,
  PUBLISHED{stream,route}, HANDLE_SECONDS, LOG_DROPS;
- gauges read from Redis at scrape time by `StreamCollector` (app.monitor, a sync client):
  secretmagic_group_lag / _group_pending / _group_consumers {stream,group},
  secretmagic_stream_length {stream}, secretmagic_dlq_length {group}, secretmagic_redis_up, and,
  from an optional `outbox_stats()` callable, secretmagic_outbox_depth and
  secretmagic_outbox_oldest_age_seconds. Redis down during a scrape never breaks /metrics: what
  was read is emitted and secretmagic_redis_up is 0.

`serve(port, health, collector)` starts the endpoint on a background thread (port 0: off);
`/health` answers 200 when the `Health` object says healthy, else 503, with the details as JSON.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app import monitor

log = logging.getLogger("secretmagic.metrics")

REGISTRY = CollectorRegistry()

EVENTS = Counter(
    "secretmagic_events_total",
    "Events by stream and outcome (handled, duplicate, retried, dead_lettered, coalesced, "
    "malformed)",
    ["stream", "outcome"],
    registry=REGISTRY,
)
CLAIMS = Counter(
    "secretmagic_claims_total",
    "Pending entries of idle consumers claimed by this instance (XAUTOCLAIM)",
    ["stream"],
    registry=REGISTRY,
)
RECONNECTS = Counter(
    "secretmagic_redis_reconnects_total",
    "Reconnections to the messenger's Redis after it was lost",
    registry=REGISTRY,
)
GROUP_RECREATED = Counter(
    "secretmagic_group_recreated_total",
    "Consumer groups recreated after NOGROUP (Redis restarted or flushed, stream deleted)",
    ["stream"],
    registry=REGISTRY,
)
CONFIG_RELOADS = Counter(
    "secretmagic_config_reloads_total",
    "Hot reloads of the mutable configuration by result (applied, rejected)",
    ["result"],
    registry=REGISTRY,
)
PUBLISHED = Counter(
    "secretmagic_published_total",
    "Events published by stream and route (direct, outbox, disabled)",
    ["stream", "route"],
    registry=REGISTRY,
)
HANDLE_SECONDS = Histogram(
    "secretmagic_handle_seconds",
    "Time the handler took per event (policy included)",
    ["stream"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
LOG_DROPS = Counter(
    "secretmagic_log_records_dropped_total",
    "Log records dropped because the PostgreSQL log buffer was full",
    registry=REGISTRY,
)

SCRAPE_LAG_CAP = 10_000  # on Redis 6.2 lag is counted with XRANGE: bounded work per scrape

OutboxStats = Callable[[], tuple[int, float | None]]


# --- gauges from Redis ---------------------------------------------------------------------------


class StreamCollector(Collector):
    """Gauges computed from Redis on every scrape (register it on REGISTRY, or give it to serve()).

    `client` is a sync redis.Redis that fails fast (monitor.connect() makes one); `outbox_stats`
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
            for info in monitor.streams(self.client):
                f["length"].add_metric([info.name], info.length)
                if info.name.endswith(":dlq"):
                    f["dlq"].add_metric([info.name.removesuffix(":dlq")], info.length)
                if not info.groups:
                    continue
                try:
                    stream_groups = monitor.groups(self.client, info.name, self.lag_cap)
                except monitor.MonitorError:
                    continue  # deleted since SCAN
                for g in stream_groups:
                    f["lag"].add_metric([info.name, g.name], g.lag)
                    f["pending"].add_metric([info.name, g.name], g.pending)
                    stuck = (monitor.oldest_pending_age(self.client, info.name, g.name)
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


# --- health --------------------------------------------------------------------------------------


@dataclass
class Health:
    """What /health reports; `refresh` (set by the app) reads the live state before each report.

    Healthy = started, and, when the messenger is on: Redis reachable and consumers running
    (unless consumption is paused on purpose by `subscriber.enabled: false`).
    """

    started: bool = False
    redis_ok: bool = False
    consumers_running: bool = False
    messenger: bool = True  # False with MESSENGER_* unset: no Redis and no consumers expected
    consuming: bool = True  # False while the configuration pauses the subscriber
    details: dict[str, Any] = field(default_factory=dict)
    refresh: Callable[[Health], None] | None = None

    def problems(self) -> list[str]:
        if self.refresh:
            self.refresh(self)
        found = []
        if not self.started:
            found.append("not started")
        if self.messenger:
            if not self.redis_ok:
                found.append("redis unreachable")
            if self.consuming and not self.consumers_running:
                found.append("consumers not running")
        return found

    @property
    def healthy(self) -> bool:
        return not self.problems()

    def report(self) -> dict[str, Any]:
        problems = self.problems()
        return {
            "status": "ok" if not problems else "unhealthy",
            "problems": problems,
            "started": self.started,
            "redis_ok": self.redis_ok,
            "consumers_running": self.consumers_running,
            "messenger": self.messenger,
            "consuming": self.consuming,
            "details": dict(self.details),
        }


# --- the HTTP endpoint ---------------------------------------------------------------------------


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes are not worth a log line
        pass


def make_app(health: Health) -> Callable[..., Iterable[bytes]]:
    """The WSGI app: /metrics (REGISTRY), /health (JSON, 200 or 503)."""
    metrics_app = make_wsgi_app(REGISTRY)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path == "/metrics":
            return metrics_app(environ, start_response)
        if path == "/health":
            report = health.report()
            body = json.dumps(report, default=str).encode()
            status = "200 OK" if report["status"] == "ok" else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json"),
                                    ("Content-Length", str(len(body)))])
            return [body]
        body = b"secretmagic: /metrics /health\n" if path == "/" else b"not found\n"
        start_response("200 OK" if path == "/" else "404 Not Found",
                       [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    return app


class MetricsServer:
    """The running endpoint (or, for port 0, a stand-in that does nothing)."""

    def __init__(
        self,
        server: WSGIServer | None = None,
        thread: threading.Thread | None = None,
        collector: Collector | None = None,
    ) -> None:
        self._server, self._thread, self._collector = server, thread, collector

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1]) if self._server else 0

    def shutdown(self) -> None:
        """Stop serving, close the socket, unregister the collector (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self._collector is not None:
            with contextlib.suppress(KeyError):
                REGISTRY.unregister(self._collector)
            self._collector = None


def serve(
    port: int,
    health: Health,
    collector: Collector | None = None,
    addr: str = "0.0.0.0",
) -> MetricsServer:
    """Serve /metrics and /health on `addr:port` from a daemon thread; port 0 means off.

    The collector (if any) is registered on REGISTRY here and unregistered by shutdown(). An
    address in use raises OSError.
    """
    if port == 0:
        return MetricsServer()
    if collector is not None:
        REGISTRY.register(collector)
    try:
        server = make_server(addr, port, make_app(health), _ThreadingServer, _QuietHandler)
    except BaseException:
        if collector is not None:
            REGISTRY.unregister(collector)
        raise
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2},
        name="secretmagic-metrics", daemon=True,
    )
    thread.start()
    return MetricsServer(server, thread, collector)
