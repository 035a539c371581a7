"""The composition root: `faststream run app:app` runs the `app` built here.

    create_app(routes, settings, live)   a worker for any routing table (the handlers', a test's)
    app                                  the worker for handlers.routes, from the environment and
                                         configs/config.dev.yaml
    app.schema                           its AsyncAPI document (app.asyncapi): `faststream docs`

Building does no I/O beyond reading the environment and the YAML file; a bad value in either is
reported when the app starts (one line, exit code 2), so importing `app` never fails.
"""

from __future__ import annotations

import logging

from faststream import FastStream
from faststream.redis.prometheus import RedisPrometheusMiddleware

import handlers
from app.asyncapi import Documentation
from app.broker import Broker
from app.connection import worker_broker
from app.observability.metrics import REGISTRY
from app.runtime import Runtime, startup_error
from handlers.routing import Routes
from settings import ConfigError, LiveConfig, Settings, SettingsError, load_settings
from settings.config import REDIS_SOCKET_TIMEOUT_S

# FastStream's own records about handler runs. It logs every handler exception with a traceback;
# the delivery policy (app.delivery) already reports each outcome once, with its decision.
BROKER_LOG = logging.getLogger("secretmagic.faststream")
BROKER_LOG.addFilter(lambda record: not record.exc_info)


def create_app(routes: Routes, settings: Settings, live: LiveConfig) -> FastStream:
    """A worker app for `routes`: the real one below, or a test's own."""
    broker = worker_broker(
        settings.messenger,
        middlewares=(RedisPrometheusMiddleware(registry=REGISTRY),),
        graceful_timeout=settings.shutdown_timeout,
        logger=BROKER_LOG,
        log_level=logging.DEBUG,  # FastStream's per-message access log: debug only (costs ~1/3)
        # FastStream passes no socket options: without these a half-open connection would hang
        # on redis-py's defaults of the day (settings.config explains the value).
        socket_timeout=REDIS_SOCKET_TIMEOUT_S,
        socket_connect_timeout=REDIS_SOCKET_TIMEOUT_S,
        socket_keepalive=True,
    )
    broker.include_router(routes)
    app = FastStream(broker, logger=logging.getLogger("secretmagic"),
                     specification=Documentation(routes, settings.messenger, live))
    runtime = Runtime(settings, live, broker, routes, stop=app.exit)
    app.on_startup(runtime.start_services)
    app.after_startup(runtime.start_consuming)
    app.on_shutdown(runtime.stop_consuming)
    app.after_shutdown(runtime.close_services)
    return app


def load() -> tuple[Settings, LiveConfig]:
    """The environment and the mutable configuration (SettingsError or ConfigError if bad)."""
    settings = load_settings()
    return settings, LiveConfig(settings.secretmagic_config)


def build(routes: Routes) -> FastStream:
    """The worker for `routes` from the environment, or one that reports why it cannot run."""
    try:
        return create_app(routes, *load())
    except (SettingsError, ConfigError) as exc:
        message = str(exc)
        failing = FastStream(Broker(), logger=logging.getLogger("secretmagic"),
                             specification=Documentation(routes, None))

        @failing.on_startup
        async def report() -> None:
            startup_error(message)

        return failing


app = build(handlers.routes)
