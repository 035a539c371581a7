"""The FastStream application: settings, live configuration, broker, handlers, lifecycle.

    faststream run app:app

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
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from faststream import FastStream
from faststream.redis import RedisRouter
from faststream.redis.prometheus import RedisPrometheusMiddleware
from faststream.security import SASLPlaintext
from redis import exceptions as rx

from app import logs, metrics, monitor
from app.broker import Broker, parse_entry
from app.config import ConfigError, LiveConfig
from app.consumer import StreamConsumer
from app.errors import FatalError, RetryableError
from app.outbox import Outbox, OutboxDrainer, OutboxLocked
from settings import Settings, SettingsError, load_settings
from store import Store, open_store

log = logging.getLogger("secretmagic")
# FastStream's own records about handler runs. It logs every handler exception with a traceback;
# the delivery policy (app.consumer) already reports each outcome once, with its decision.
BROKER_LOG = logging.getLogger("secretmagic.faststream")
BROKER_LOG.addFilter(lambda record: not record.exc_info)


def _startup_error(message: str) -> NoReturn:
    """One clear line and exit 2. Not SystemExit: raised inside FastStream's task group it comes
    back as an exception group that asyncio logs at length."""
    print(f"secretmagic: {message}", file=sys.stderr, flush=True)
    logging.shutdown()
    os._exit(2)


def create_app(router: RedisRouter, settings: Settings, live: LiveConfig) -> FastStream:
    """A worker app for `router`'s handlers: the real one below, or a test's own."""
    messenger = settings.messenger
    broker = Broker(
        messenger.url if messenger else "redis://localhost:6379",
        security=SASLPlaintext(username="default", password=messenger.password.get_secret_value())
        if messenger and messenger.password else None,
        parser=parse_entry,
        middlewares=(RedisPrometheusMiddleware(registry=metrics.REGISTRY),),
        graceful_timeout=settings.shutdown_timeout,
        logger=BROKER_LOG,
        log_level=logging.DEBUG,  # FastStream's per-message access log: debug only (costs ~1/3)
    )
    broker.include_router(router)
    app = FastStream(broker, logger=log)
    rt = Runtime(settings, live, broker, stop=app.exit)
    app.on_startup(rt.start_services)
    app.after_startup(rt.start_consuming)
    app.on_shutdown(rt.stop_consuming)
    app.after_shutdown(rt.close_services)
    return app


class Runtime:
    """What the process runs besides the broker; built at startup, torn down at shutdown."""

    def __init__(self, settings: Settings, live: LiveConfig, broker: Broker,
                 stop: Callable[[], None]) -> None:
        self.settings, self.live, self.broker, self.stop = settings, live, broker, stop
        self.messenger = settings.messenger
        self.store: Store | None = None
        self.consumer: StreamConsumer | None = None
        self.drainer: OutboxDrainer | None = None
        self.sink: logs.PostgresSink | None = None
        self.http: Any = None
        self.health = metrics.Health()

    @property
    def label(self) -> str:
        return f"{self.messenger.host}:{self.messenger.port}" if self.messenger else "-"

    async def start_services(self) -> None:
        settings = self.settings
        logs.setup_console(settings.logs_level)
        if settings.logs_dsn:
            self.sink = logs.PostgresSink(settings.logs_dsn.get_secret_value(),
                                          schema=settings.logs_schema,
                                          level=getattr(logging, settings.logs_level),
                                          buffer=settings.logs_buffer)
            await self.sink.start()
            logs.install(self.sink)
        try:
            self.store = open_store(settings.store_dsn.get_secret_value())
            await self.store.create_tables()
        except (RetryableError, FatalError, ValueError) as exc:
            # Without its tables the store would turn every event into an error: stop here and
            # let the supervisor restart us (with its own backoff) rather than dead-letter them.
            _startup_error(f"the store (STORE_DSN) is not usable: {exc}")
        self.broker.context.set_global("store", self.store)
        self.broker.context.set_global("config", self.live)
        if self.messenger is None:
            self.broker.publishing.enabled = False
            log.warning("messenger off: no MESSENGER_* variables set; events are neither read "
                        "nor published (use `secretmagic recompute --client ID`)",
                        extra={"category": "messenger", "context": {}})
            return
        await self._check_redis()

    async def _check_redis(self) -> None:
        try:
            await self.broker.connect()
            await self.broker.client.ping()
        except rx.AuthenticationError as exc:
            _startup_error(f"Redis at {self.label} refused the password (MESSENGER_PASSWORD): "
                           f"{exc}")
        except rx.ResponseError as exc:
            if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
                _startup_error(f"Redis at {self.label} requires a password "
                               f"(MESSENGER_PASSWORD): {exc}")
            raise
        except (rx.ConnectionError, rx.TimeoutError, OSError) as exc:
            log.error("Redis at %s is unreachable (%s); starting anyway, connecting when it "
                      "comes", self.label, exc, extra={"category": "messenger", "context": {}})

    async def start_consuming(self) -> None:
        self.live.start()
        collector = None
        if self.messenger is not None:
            settings, client = self.settings, self.broker.client
            try:
                box = Outbox(settings.outbox_path, settings.outbox_max_entries)
            except (OutboxLocked, OSError) as exc:
                _startup_error(f"the outbox (OUTBOX_PATH) is not usable: {exc}")
            publishing = self.broker.publishing
            publishing.box, publishing.live = box, self.live
            publishing.strict = settings.outbox_strict
            self.drainer = OutboxDrainer(box)
            self.drainer.start(client)
            self.consumer = StreamConsumer(
                client, self.live, settings.secretmagic_consumer, self.broker.handlers(),
                redis_label=self.label, on_fatal=lambda _: self.stop())
            await self.consumer.start()
            collector = metrics.StreamCollector(
                monitor.connect(self.messenger, timeout=2),
                outbox_stats=lambda: (box.depth(), box.oldest_age()))
        self.health.messenger = self.messenger is not None
        self.health.details["store"] = self.store.name if self.store else None
        self.health.refresh = self._refresh_health
        self.health.started = True
        if self.settings.metrics_port:
            self.http = metrics.serve(self.settings.metrics_port, self.health, collector)

    def _refresh_health(self, health: metrics.Health) -> None:
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
        log.info("stopping: no new reads; in-flight handlers get %.0f s", timeout,
                 extra={"category": "messenger", "context": {}})
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
        log.info("stopped", extra={"category": "messenger", "context": {}})
        if self.sink:
            await self.sink.stop(5.0)


def _exit_now(sig: int) -> None:
    log.warning("second %s: exiting now; unfinished entries stay pending for another instance",
                signal.Signals(sig).name, extra={"category": "messenger", "context": {}})
    logging.shutdown()
    os._exit(130)


def load() -> tuple[Settings, LiveConfig]:
    """The environment and the mutable configuration, or a clear startup error."""
    try:
        settings = load_settings()
        return settings, LiveConfig(settings.secretmagic_config)
    except (SettingsError, ConfigError) as exc:
        _startup_error(str(exc))

