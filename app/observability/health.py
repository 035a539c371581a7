"""/health, /metrics and the status page over HTTP, from a background thread.

`serve(port, health, collector)` starts the endpoint (port 0: off); `/health` answers 200 when the
`Health` object says healthy, else 503, with the details as JSON; `/metrics` is REGISTRY, with the
instance's own gauges (HealthCollector: secretmagic_healthy, secretmagic_stream_paused{stream});
`/` is the status page (app.observability.status) read through the collector's Redis client.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.observability.collector import StreamCollector
from app.observability.metrics import REGISTRY
from app.observability.status import StatusPage


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


class HealthCollector(Collector):
    """The instance's health as gauges, read at scrape time (what /health says, for alerts)."""

    def __init__(self, health: Health) -> None:
        self.health = health

    def collect(self) -> Iterator[Metric]:
        problems = self.health.problems()
        healthy = GaugeMetricFamily("secretmagic_healthy",
                                    "1 if this instance's /health answers 200, else 0")
        healthy.add_metric([], 0 if problems else 1)
        paused = GaugeMetricFamily(
            "secretmagic_stream_paused",
            "1 while this instance has paused reading the stream to wait out an outage of the "
            "store, else 0",
            labels=["stream"])
        waiting = self.health.details.get("waiting") or {}
        for stream in sorted({*(self.health.details.get("streams") or ()), *waiting}):
            paused.add_metric([stream], 1 if stream in waiting else 0)
        yield healthy
        yield paused


# --- the HTTP endpoint ---------------------------------------------------------------------------


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes are not worth a log line
        pass


def make_app(health: Health, page: StatusPage | None = None) -> Callable[..., Iterable[bytes]]:
    """The WSGI app: /metrics (REGISTRY), /health (JSON, 200 or 503), / (the status page)."""
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
        if path == "/" and page is not None:
            body, kind = page.render(), "text/html; charset=utf-8"
        else:
            body, kind = b"secretmagic: /metrics /health\n" if path == "/" else b"not found\n", \
                "text/plain"
        start_response("200 OK" if path == "/" else "404 Not Found",
                       [("Content-Type", kind), ("Content-Length", str(len(body))),
                        ("Cache-Control", "no-store")])
        return [body]

    return app


class MetricsServer:
    """The running endpoint (or, for port 0, a stand-in that does nothing)."""

    def __init__(
        self,
        server: WSGIServer | None = None,
        thread: threading.Thread | None = None,
        collectors: Sequence[Collector] = (),
    ) -> None:
        self._server, self._thread, self._collectors = server, thread, list(collectors)

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1]) if self._server else 0

    def shutdown(self) -> None:
        """Stop serving, close the socket, unregister the collectors (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        for collector in self._collectors:
            with contextlib.suppress(KeyError):
                REGISTRY.unregister(collector)
        self._collectors = []


def serve(
    port: int,
    health: Health,
    collector: Collector | None = None,
    addr: str = "0.0.0.0",
) -> MetricsServer:
    """Serve /metrics and /health on `addr:port` from a daemon thread; port 0 means off.

    The collectors (the one given, and the instance's HealthCollector) are registered on
    REGISTRY here and unregistered by shutdown(). The status page reads Redis through a
    StreamCollector's client (without one it shows the instance's health only). An address in
    use raises OSError.
    """
    if port == 0:
        return MetricsServer()
    collectors = [c for c in (collector, HealthCollector(health)) if c is not None]
    page = (StatusPage(health, collector.client, collector.outbox_stats)
            if isinstance(collector, StreamCollector) else StatusPage(health, None))
    for c in collectors:
        REGISTRY.register(c)
    try:
        server = make_server(addr, port, make_app(health, page), _ThreadingServer, _QuietHandler)
    except BaseException:
        for c in collectors:
            REGISTRY.unregister(c)
        raise
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2},
        name="secretmagic-metrics", daemon=True,
    )
    thread.start()
    return MetricsServer(server, thread, collectors)
