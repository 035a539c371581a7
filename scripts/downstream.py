"""A downstream consumer (the seed's trainer, analytics): plain redis-py, no FastStream, no app.

It reads secretmagic's notifications with XREADGROUP in its own consumer group, fetches the data
itself from the store by client_id (the seed's Event Notification Pattern), says what it found,
and only then acks. Every group gets every event; within a group, consumers share them.

    python -m scripts.downstream --group trainer-group --stream features-updates \\
        --store mysql://root@127.0.0.1:3306/secretmagic_demo [--report trainer.json]

MESSENGER_HOST/PORT/PASSWORD/DB name the Redis. SIGTERM or Ctrl-C: the current batch is finished
and acked, the report (JSON) is written, exit 0. Entries whose data could not be fetched stay
pending and are read again (XREADGROUP ... 0) before new ones.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl
import redis.asyncio as aioredis
from redis import exceptions as rx

TABLE_OF = {"features-updates": "features", "bom-exploded": "bom_exploded"}


def _text(value: Any) -> str:
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)


def describe(table: str, frame: pl.DataFrame) -> dict[str, Any]:
    """What a consumer found for a client (rows and their shape)."""
    if table == "features":
        dates = frame["date"]
        return {"rows": frame.height, "products": frame["product_id"].n_unique(),
                "features": frame["feature"].n_unique(),
                "from": str(dates.min()) if frame.height else None,
                "to": str(dates.max()) if frame.height else None}
    return {"rows": frame.height, "products": frame["product_id"].n_unique(),
            "components": frame["component_id"].n_unique(),
            "max_depth": int(frame["depth"].max() or 0) if frame.height else 0}  # type: ignore[arg-type]


def line(table: str, found: dict[str, Any]) -> str:
    if table == "features":
        return (f"{found['rows']:,} feature rows ({found['products']} products x "
                f"{found['features']} features, {found['from']}..{found['to']})")
    return (f"{found['rows']:,} exploded-BOM rows ({found['products']} products, "
            f"{found['components']} leaf components, depth <= {found['max_depth']})")


class Consumer:
    def __init__(self, r: aioredis.Redis, store: Any, group: str, consumer: str,
                 streams: list[str], block_ms: int) -> None:
        self.r, self.store = r, store
        self.group, self.consumer, self.streams = group, consumer, streams
        self.block_ms = block_ms
        self.stopping = asyncio.Event()
        self.consumed: Counter[str] = Counter()
        self.acked: Counter[str] = Counter()
        self.events: Counter[str] = Counter()  # by event_type
        self.found: dict[str, dict[str, Any]] = {}  # client_id -> table -> description
        self.fetches = 0
        self.unreadable = 0
        self.errors: list[str] = []
        self._recheck_pending = True  # first look at what this consumer left unacked

    def say(self, message: str) -> None:
        print(f"{self.group}/{self.consumer}  {message}", flush=True)

    async def setup(self) -> None:
        for stream in self.streams:
            try:  # from the start of the stream: a new group sees what is already there
                await self.r.xgroup_create(stream, self.group, id="0", mkstream=True)
            except rx.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def run(self) -> None:
        await self.setup()
        self.say(f"reading {', '.join(self.streams)}")
        while not self.stopping.is_set():
            start = "0" if self._recheck_pending else ">"
            try:
                # Never cancelled while blocked (that would lose the connection and what it
                # was handed): the stop flag is looked at between reads of at most block_ms.
                reply = await self.r.xreadgroup(
                    self.group, self.consumer, dict.fromkeys(self.streams, start),
                    count=100, block=None if start == "0" else self.block_ms)
            except rx.ResponseError as exc:
                if "NOGROUP" in str(exc):
                    self.say("group gone (Redis flushed?); recreating it")
                    await self.setup()
                    continue
                raise
            except (rx.ConnectionError, rx.TimeoutError) as exc:
                self.say(f"Redis unreachable ({exc}); retrying")
                await self._pause(1.0)
                continue
            replies: Any = reply or []  # RESP2: [[stream, [(id, fields), ...]], ...]
            batch = [(_text(s), _text(eid), fields) for s, entries in replies
                     for eid, fields in entries if fields is not None]
            if start == "0":
                self._recheck_pending = False
            if batch:
                await self.handle(batch, redelivered=start == "0")

    async def handle(self, batch: list[tuple[str, str, Any]], *, redelivered: bool) -> None:
        if not redelivered:
            for stream, _, _ in batch:
                self.consumed[stream] += 1
        wanted: dict[tuple[str, str], list[tuple[str, str]]] = {}
        settled: list[tuple[str, str]] = []
        for stream, entry_id, raw in batch:
            fields = {_text(k): _text(v) for k, v in raw.items()}
            try:
                data = json.loads(fields.get("data", "{}"))
                client_id = fields["client_id"]
                self.events[fields["event_type"]] += 1
                assert isinstance(data, dict)
            except (ValueError, KeyError, AssertionError):
                self.unreadable += 1
                self.say(f"unreadable entry {stream} {entry_id}: {fields!r}; acked")
                settled.append((stream, entry_id))
                continue
            # Several notifications for one client in a batch: one fetch serves them all.
            wanted.setdefault((stream, client_id), []).append((stream, entry_id))
        for (stream, client_id), ids in wanted.items():
            table = TABLE_OF.get(stream)
            if table is None:
                settled += ids
                continue
            try:
                frame = await self.store.read(table, client_id)
            except Exception as exc:
                self.errors.append(f"{table} for {client_id}: {exc}")
                self.say(f"could not fetch {table} for {client_id} ({exc}); left pending")
                self._recheck_pending = True
                continue
            self.fetches += 1
            found = describe(table, frame)
            self.found.setdefault(client_id, {})[table] = found
            self.say(f"{client_id}: {line(table, found)}  [{len(ids)} event(s)]")
            settled += ids
        by_stream: dict[str, list[str]] = {}
        for stream, entry_id in settled:
            by_stream.setdefault(stream, []).append(entry_id)
        for stream, entry_ids in by_stream.items():
            self.acked[stream] += int(await self.r.xack(stream, self.group, *entry_ids))
        if self._recheck_pending:
            await self._pause(0.5)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    def report(self) -> dict[str, Any]:
        return {"group": self.group, "consumer": self.consumer,
                "streams": {s: {"consumed": self.consumed[s], "acked": self.acked[s]}
                            for s in self.streams},
                "events": dict(self.events), "fetches": self.fetches,
                "unreadable": self.unreadable, "clients": self.found, "errors": self.errors}


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    from app.ops import connect
    from settings import load_settings
    from store import open_store

    settings = load_settings()
    if settings.messenger is None:
        raise SystemExit("downstream: set MESSENGER_HOST (and MESSENGER_PORT/PASSWORD/DB)")
    m = settings.messenger
    connect(m).ping()  # fail fast (and loudly) on a wrong address or password
    r = aioredis.Redis(host=m.host, port=m.port, db=m.db,
                       password=m.password.get_secret_value() if m.password else None,
                       socket_timeout=max(args.block_ms / 1000 + 5, 10))
    store = open_store(args.store)
    consumer = Consumer(r, store, args.group, args.consumer, args.stream, args.block_ms)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, consumer.stopping.set)
    started = time.monotonic()
    try:
        await consumer.run()
    finally:
        await store.close()
        await r.aclose()
    report = consumer.report()
    report["seconds"] = round(time.monotonic() - started, 1)
    return report


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.downstream", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group", required=True, help="e.g. trainer-group, analytics-group")
    parser.add_argument("--consumer", help="this consumer's name (default: <group>-<host>-<pid>)")
    parser.add_argument("--stream", action="append", required=True,
                        choices=sorted(TABLE_OF), help="a stream to read (repeatable)")
    parser.add_argument("--store", default=os.environ.get("STORE_DSN"), help="store DSN")
    parser.add_argument("--block-ms", type=int, default=500)
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
