"""/health and /metrics over HTTP, from a background thread.

`serve(port, health, collector)` starts the endpoint (port 0: off); `/health` answers 200 when the
`Health` object says healthy, else 503, with the details as JSON; `/metrics` is REGISTRY.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.registry import Collector

from app.observability.metrics import REGISTRY


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
