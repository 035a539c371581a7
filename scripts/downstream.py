"""A downstream consumer (the seed's trainer, analytics): a plain FastStream consumer, no app.

It reads secretmagic's notifications in its own consumer group — a FastStream subscriber
`StreamSub(stream, group=..., consumer=...)` per stream, the flat wire format decoded by
core.wire.decode — fetches the data itself from the store by client_id (the seed's Event
Notification Pattern), says what it found, and only then acks. Every group gets every event;
within a group, consumers share them.

    python -m scripts.downstream --group trainer-group --stream features-updates \\
        --store mysql://root@127.0.0.1:3306/secretmagic_demo [--report trainer.json]

MESSENGER_HOST/PORT/PASSWORD/DB name the Redis. A group it creates starts at the beginning of
the stream (a new group sees what is already there). An entry whose data could not be fetched
stays pending and is claimed again (XAUTOCLAIM) once idle for 5 s; one that is not an event is
said, counted and acked. SIGTERM or Ctrl-C: the handler running finishes, the report (JSON) is
written, exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import polars as pl
from faststream.middlewares import AckPolicy, ExceptionMiddleware
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisStreamMessage
from redis import exceptions as rx

from core import wire
from core.errors import MalformedEvent
from core.events import Event

# What a notification says was recomputed (the seed's contract): the store table to fetch.
TABLE_OF = {"features_updated": "daily_features", "bom_exploded": "bom_exploded"}
RECLAIM_IDLE_MS = 5000


def describe(table: str, frame: pl.DataFrame) -> dict[str, Any]:
    """What a consumer found for a client (rows and their shape)."""
    if table == "daily_features":  # one row per product and day, one column per feature
        dates = frame["date"]
        return {"rows": frame.height, "products": frame["product_id"].n_unique(),
                "features": frame.width - 4,  # besides client_id, product_id, date, qty
                "from": str(dates.min()) if frame.height else None,
                "to": str(dates.max()) if frame.height else None}
    return {"rows": frame.height, "products": frame["product_id"].n_unique(),
            "components": frame["component_id"].n_unique(),
            "max_depth": int(frame["depth"].max() or 0) if frame.height else 0}  # type: ignore[arg-type]


def line(table: str, found: dict[str, Any]) -> str:
    if table == "daily_features":
        return (f"{found['rows']:,} feature rows ({found['products']} products x "
                f"{found['features']} features, {found['from']}..{found['to']})")
    return (f"{found['rows']:,} exploded-BOM rows ({found['products']} products, "
            f"{found['components']} leaf components, depth <= {found['max_depth']})")


async def decode(message: Any, _original: Callable[..., Any]) -> Event:
    """The flat fields of a stream entry (FastStream's own parser takes only `data`)."""
    return wire.decode(message.raw_message["data"])


class Consumer:
    """One consumer of a group on some streams, counting what it did for the report."""

    def __init__(self, store: Any, group: str, consumer: str, streams: list[str]) -> None:
        self.store, self.group, self.consumer, self.streams = store, group, consumer, streams
        self.consumed: Counter[str] = Counter()  # first deliveries
        self.reclaimed: Counter[str] = Counter()  # pending entries claimed again
        self.acked: Counter[str] = Counter()
        self.events: Counter[str] = Counter()  # by event_type
        self.found: dict[str, dict[str, Any]] = {}  # client_id -> table -> description
        self.fetches = 0
        self.unreadable = 0
        self.errors: list[str] = []

    def say(self, message: str) -> None:
        print(f"{self.group}/{self.consumer}  {message}", flush=True)

    def broker(self, url: str) -> RedisBroker:
        """A FastStream broker with a subscriber per stream reading new entries and one claiming
        entries left pending (`min_idle_time`: XAUTOCLAIM; Redis has no XREADGROUP CLAIM
        before 8.4). FastStream logs warnings and errors only: the consumer says what it
        found itself."""
        unreadable = ExceptionMiddleware(handlers={MalformedEvent: self.on_unreadable})
        quiet = logging.getLogger("downstream")
        quiet.setLevel(logging.WARNING)
        broker = RedisBroker(url, logger=quiet, middlewares=[unreadable], graceful_timeout=10)
        for stream in self.streams:
            for reclaim in (False, True):
                sub = StreamSub(stream, group=self.group, consumer=self.consumer,
                                max_records=None if reclaim else 100,
                                min_idle_time=RECLAIM_IDLE_MS if reclaim else None,
                                polling_interval=1000 if reclaim else 500)
                handler = self.on_reclaimed if reclaim else self.on_new
                broker.subscriber(stream=sub, decoder=decode, ack_policy=AckPolicy.MANUAL,
                                  title=f"{stream}:{'reclaim' if reclaim else 'new'}")(handler)
        return broker

    async def create_groups(self, broker: RedisBroker) -> None:
        """From the start of each stream (FastStream would create a group at its end)."""
        client = await broker.connect()
        for stream in self.streams:
            try:
                await client.xgroup_create(stream, self.group, id="0", mkstream=True)
            except rx.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def on_new(self, event: Event, message: RedisStreamMessage) -> None:
        self.consumed[message.raw_message["channel"]] += 1
        await self.fetch(event, message)

    async def on_reclaimed(self, event: Event, message: RedisStreamMessage) -> None:
        self.reclaimed[message.raw_message["channel"]] += 1
        await self.fetch(event, message)

    async def fetch(self, event: Event, message: RedisStreamMessage) -> None:
        stream = message.raw_message["channel"]
        self.events[event.event_type] += 1
        table = TABLE_OF.get(event.event_type)
        if table is not None:
            try:
                frame = await self.store.read(table, event.client_id)
            except Exception as exc:
                self.errors.append(f"{table} for {event.client_id}: {exc}")
                self.say(f"could not fetch {table} for {event.client_id} ({exc}); left pending, "
                         f"claimed again after {RECLAIM_IDLE_MS / 1000:.0f} s")
                return
            self.fetches += 1
            found = describe(table, frame)
            self.found.setdefault(event.client_id, {})[table] = found
            self.say(f"{event.client_id}: {line(table, found)}  [{event.event_type}]")
        await message.ack()
        self.acked[stream] += 1

    async def on_unreadable(self, exc: MalformedEvent, message: RedisStreamMessage) -> None:
        """Not an event: it can never be read, so it is said, counted and acked."""
        self.unreadable += 1
        stream = message.raw_message["channel"]
        self.consumed[stream] += 1
        ids = ", ".join(wire.text(i) for i in message.raw_message["message_ids"])
        self.say(f"unreadable entry {stream} {ids}: {exc}; acked")
        await message.ack()
        self.acked[stream] += 1

    def report(self) -> dict[str, Any]:
        return {"group": self.group, "consumer": self.consumer,
                "streams": {s: {"consumed": self.consumed[s], "acked": self.acked[s],
                                "reclaimed": self.reclaimed[s]} for s in self.streams},
                "events": dict(self.events), "fetches": self.fetches,
                "unreadable": self.unreadable, "clients": self.found, "errors": self.errors}


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    from scripts.services import messenger_url
    from settings import MessengerSettings
    from store import open_store

    m = MessengerSettings()
    if m.mode != "standalone":
        raise SystemExit("downstream: a standalone Redis only (MESSENGER_HOST, PORT, DB)")
    store = open_store(args.store)
    consumer = Consumer(store, args.group, args.consumer, args.stream)
    broker = consumer.broker(messenger_url(m))
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    started = time.monotonic()
    try:
        await consumer.create_groups(broker)  # fails fast (and loudly) on a wrong address
        await broker.start()
        consumer.say(f"reading {', '.join(args.stream)}")
        await stopping.wait()
    finally:
        await broker.stop()
        await store.close()
    report = consumer.report()
    report["seconds"] = round(time.monotonic() - started, 1)
    return report


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.downstream", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group", required=True, help="e.g. trainer-group, analytics-group")
    parser.add_argument("--consumer", help="this consumer's name (default: <group>-<host>-<pid>)")
    parser.add_argument("--stream", action="append", required=True,
                        help="a stream of notifications to read (repeatable)")
    parser.add_argument("--store", default=os.environ.get("STORE_DSN"), help="store DSN")
    parser.add_argument("--report", type=Path, help="write the JSON report here (else stdout)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if not args.store:
        parser.error("--store (or STORE_DSN) is required")
    args.consumer = args.consumer or f"{args.group.removesuffix('-group')}-" \
                                     f"{socket.gethostname()}-{os.getpid()}"
    report = asyncio.run(amain(args))
    text = json.dumps(report, indent=2)
    if args.report:
        tmp = args.report.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(args.report)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
