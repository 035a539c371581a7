"""What the worker runs besides the broker, in the order of FastStream's lifecycle hooks.

Start: console (and PostgreSQL) logging, the store, Redis (a wrong password is a startup error; an
unreachable Redis is waited for), then the consumer, the config watcher, the outbox drainer and
/metrics. Stop (SIGTERM/SIGINT, seed «Graceful Shutdown» done the asyncio way by FastStream's
signal handling): no new reads, in-flight handlers finish within SHUTDOWN_TIMEOUT and are acked,
the outbox drains, logs flush, connections close, exit 0. A second signal exits at once; what was
in flight stays pending in Redis for another instance.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from redis import exceptions as rx

from app import permissions
from app.broker import WorkerBroker
from app.connection import sync_client
from app.delivery.consumer import StreamConsumer
from app.observability import health as health_mod
from app.observability.collector import StreamCollector
from app.observability.console import install, setup_console
from app.observability.metrics import CONFIG_RELOADS
from app.observability.pgsink import PostgresSink
from app.publishing.drainer import OutboxDrainer
from app.publishing.outbox import Outbox, OutboxLocked
from core import logs
from core.errors import FatalError, RetryableError
from handlers.routing import Routes
from settings import LiveConfig, Settings
from store import Store, open_store

log = logs.get("messenger")


def startup_error(message: str) -> NoReturn:
    """One clear line and exit 2. Not SystemExit: raised inside FastStream's task group it comes
    back as an exception group that asyncio logs at length."""
    print(f"secretmagic: {message}", file=sys.stderr, flush=True)
    logging.shutdown()
    os._exit(2)


class Runtime:
    """What the process runs besides the broker; built at startup, torn down at shutdown."""

    def __init__(self, settings: Settings, live: LiveConfig, broker: WorkerBroker, routes: Routes,
                 stop: Callable[[], None]) -> None:
        self.settings, self.live, self.broker, self.routes = settings, live, broker, routes
        self.stop = stop
        self.messenger = settings.messenger
        self.store: Store | None = None
        self.consumer: StreamConsumer | None = None
        self.drainer: OutboxDrainer | None = None
        self.sink: PostgresSink | None = None
        self.http: Any = None
        self.health = health_mod.Health()
        live.on_result = lambda result: CONFIG_RELOADS.labels(result).inc()

    @property
    def label(self) -> str:
        return self.messenger.label if self.messenger else "-"

    async def _fail(self, message: str) -> NoReturn:
        """A startup error: close what was opened (flushing the logs), then exit 2."""
        if self.store:
            await self.store.close()
        if self.sink:
            await self.sink.stop(5.0)
        startup_error(message)

    async def start_services(self) -> None:
        settings = self.settings
        setup_console(settings.logs_level)
        if settings.logs_dsn:
            self.sink = PostgresSink(settings.logs_dsn.get_secret_value(),
                                               schema=settings.logs_schema,
                                               level=getattr(logging, settings.logs_level),
                                               buffer=settings.logs_buffer)
            await self.sink.start()
            install(self.sink)
        try:
            self.store = open_store(settings.store_dsn.get_secret_value())
            await self.store.create_tables()
        except (RetryableError, FatalError, ValueError) as exc:
            # Without its tables the store would turn every event into an error: stop here and
            # let the supervisor restart us (with its own backoff) rather than dead-letter them.
            await self._fail(f"the store (STORE_DSN) is not usable: {exc}")
        self.broker.context.set_global("store", self.store)
        self.broker.context.set_global("config", self.live)
        if self.messenger is None:
            self.broker.publishing.enabled = False
            log.warning("messenger off: no MESSENGER_* variables set; events are neither read "
                        "nor published (use `secretmagic recompute --client ID`)")
            return
        await self._check_redis()

    async def _check_redis(self) -> None:
        try:
            await self.broker.connect()
            await self.broker.client.ping()
        except rx.AuthenticationError as exc:
            await self._fail(f"Redis at {self.label} refused the password "
                             f"(MESSENGER_PASSWORD): {exc}")
        except rx.ResponseError as exc:
            if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
                await self._fail(f"Redis at {self.label} requires a password "
                                 f"(MESSENGER_PASSWORD): {exc}")
            raise
        except (rx.ConnectionError, rx.TimeoutError, OSError) as exc:
            if _tls_refused(exc):  # a wrong CA or host name: no retry brings it back
                await self._fail(f"Redis at {self.label} failed the TLS check "
                                 f"(MESSENGER_TLS_*): {exc}")
            log.error("Redis at %s is unreachable (%s); starting anyway, connecting when it "
                      "comes", self.label, exc)

    async def start_consuming(self) -> None:
        self.live.start()
        collector = None
        if self.messenger is not None:
            settings, client = self.settings, self.broker.client
            try:
                box = Outbox(settings.outbox_path, settings.outbox_max_entries)
            except (OutboxLocked, OSError) as exc:
                await self._fail(f"the outbox (OUTBOX_PATH) is not usable: {exc}")
            publishing = self.broker.publishing
            publishing.box, publishing.live = box, self.live
            publishing.strict = settings.outbox_strict
            self.drainer = OutboxDrainer(box)
            self.drainer.start(client)
            self._report_outputs()
            await self._check_permissions()
            self.consumer = StreamConsumer(
                client, self.live, settings.secretmagic_consumer, self.routes,
                redis_label=self.label, on_fatal=lambda _: self.stop())
            await self.consumer.start()
            collector = StreamCollector(
                sync_client(self.messenger, timeout=2),
                outbox_stats=lambda: (box.depth(), box.oldest_age()))
        self.health.messenger = self.messenger is not None
        self.health.details["store"] = self.store.name if self.store else None
        self.health.refresh = self._refresh_health
        self.health.started = True
        if self.settings.metrics_port:
            self.http = health_mod.serve(self.settings.metrics_port, self.health, collector)

    async def _check_permissions(self) -> None:
        """Fail at start, naming it, when the Redis user lacks a permission the worker needs."""
        sub = self.live.current.messenger.subscriber
        streams = sub.streams if sub.streams is not None else self.routes.streams()
        overrides = self.live.current.messenger.publisher.streams
        outputs = [overrides.get(t, s) for t, ss in self.routes.outputs().items() for s in ss]
        try:
            await permissions.check(self.broker.client, sub.consumer_group,
                                    self.settings.secretmagic_consumer, sub.group_start_id,
                                    streams, outputs)
        except permissions.MissingPermission as exc:
            await self._fail(str(exc))
        except (rx.ConnectionError, rx.TimeoutError, OSError) as exc:
            log.warning("could not check the Redis user's permissions now (%s); a missing one "
                        "will stop the worker when it is first needed", exc)

    def _report_outputs(self) -> None:
        """One line per output: where its events go (the YAML may reroute them)."""
        overrides = self.live.current.messenger.publisher.streams
        for event_type, streams in self.routes.outputs().items():
            where = [overrides.get(event_type, stream) for stream in streams]
            log.info("publishing %s to %s%s", event_type, ", ".join(where),
                     " (publisher.streams)" if event_type in overrides else "")

    def _refresh_health(self, health: health_mod.Health) -> None:
        consumer = self.consumer
        health.redis_ok = bool(consumer and consumer.redis_ok)
        health.consumers_running = bool(consumer and consumer.running)
        health.consuming = self.live.current.messenger.subscriber.enabled
        if consumer:
            health.details["streams"] = consumer.streams()
            health.details["consumer"] = consumer.consumer
            # Streams paused by an outage of what they depend on: reported, but the process is
            # doing the right thing (a restart would not bring the store back), so still healthy.
            health.details["waiting"] = dict(consumer.waiting)

    async def stop_consuming(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _exit_now, sig)
        timeout = self.settings.shutdown_timeout
        log.info("stopping: no new reads; in-flight handlers get %.0f s", timeout)
        await self.live.stop()
        if self.consumer:
            await self.consumer.stop(timeout)
        if self.drainer:
            await self.drainer.stop(min(5.0, timeout))

    async def close_services(self) -> None:
        if self.http:
            self.http.shutdown()
        if self.store:
            await self.store.close()
        log.info("stopped")
        if self.sink:
            await self.sink.stop(5.0)


def _tls_refused(exc: BaseException) -> bool:
    """Did the TLS handshake fail verification (as opposed to the server being down)?"""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "certificate verify failed" in str(exc).lower() or "wrong version number" in \
        str(exc).lower()


def _exit_now(sig: int) -> None:
    log.warning("second %s: exiting now; unfinished entries stay pending for another instance",
                signal.Signals(sig).name)
    logging.shutdown()
    os._exit(130)
