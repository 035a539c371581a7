"""A worker whose handlers record in Redis what they handle: for tests that run, kill and restart
real app processes (`faststream run tests.apps.recorder:app`).

RECORDER_STREAMS lists the streams (event type `job` on each). Per event the handler
- counts attempts in HINCRBY <prefix>:attempts event_id, and the time of each in a list,
- fails as `data.fail` asks: "retryable" for the first `data.times` attempts, "fatal" always,
- works `data.work_ms` (or RECORDER_WORK_MS) milliseconds: the in-flight window for kill tests,
- with `data.hold` (a directory) then waits until the file `<hold>/<event_id>` exists: a test
  that must finish in-flight handlers one at a time releases each by creating its file,
- on success counts HINCRBY <prefix>:handled event_id (and <prefix>:by consumer, and
  <prefix>:entries the stream entry id: for entries whose event_id is not known) and publishes
  `job_done` to <stream>-done (data: the job's event_id, this process's pid and a sequence
  number in the order it published); with RECORDER_LOG set it also appends `<event_id>` to that
  local file (one write per line, kept by the kernel through a SIGKILL): a count that does not
  depend on Redis keeping its writes, for tests that kill Redis masters.
With RECORDER_STORE set, each attempt first reads the client's sales from the store: a store query
on the event path, for tests that break the store (an error of the store is the handler's).
With RECORDER_REDIS_URL the bookkeeping goes to that Redis instead of the worker's own: for tests
that make the worker's Redis fail (half-open, out of memory) while the counting must go on.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from pathlib import Path
from typing import Annotated, Any

from faststream import Context
from faststream.message import StreamMessage
from redis.asyncio import Redis

from app.broker import Broker
from app.main import build
from core.errors import FatalError, RetryableError
from core.events import Event
from handlers.routing import Routes
from store import Store

PREFIX = os.environ.get("RECORDER_PREFIX", "rec")
WORK_MS = float(os.environ.get("RECORDER_WORK_MS", "0"))
CONSUMER = os.environ.get("SECRETMAGIC_CONSUMER", "?")
LOG = os.environ.get("RECORDER_LOG")
BOOKS = os.environ.get("RECORDER_REDIS_URL")
READS_STORE = bool(os.environ.get("RECORDER_STORE"))
_SEQ = itertools.count(1)
_books: list[Redis] = []  # the bookkeeping client, made on the worker's event loop


BrokerDep = Annotated[Broker, Context("broker")]
MessageDep = Annotated[StreamMessage[Any], Context("message")]
StoreDep = Annotated[Store | None, Context("store", default=None)]  # none in a test's own process


async def record(event: Event, broker: BrokerDep, store: StoreDep, message: MessageDep) -> Event:
    redis = _bookkeeping(broker)
    key = str(event.event_id)
    attempts = await redis.hincrby(f"{PREFIX}:attempts", key, 1)
    await redis.rpush(f"{PREFIX}:times:{key}", time.time())
    if READS_STORE and store is not None:
        await store.read("sales", event.client_id)
    work_ms = float(event.data.get("work_ms", WORK_MS))
    if work_ms:
        await asyncio.sleep(work_ms / 1000)  # simulated work: the window a kill lands in
    if hold := event.data.get("hold"):
        await _released(Path(hold) / key)
    fail = event.data.get("fail")
    if fail == "fatal":
        raise FatalError(f"job {key} can never succeed")
    if fail == "retryable" and attempts <= int(event.data.get("times", 1)):
        raise RetryableError(f"attempt {attempts} failed on purpose")
    if fail == "crash" and attempts <= int(event.data.get("times", 1)):
        raise ZeroDivisionError("an unexpected bug")
    await redis.hincrby(f"{PREFIX}:handled", key, 1)
    await redis.hincrby(f"{PREFIX}:by", CONSUMER, 1)
    await redis.hincrby(f"{PREFIX}:entries", message.message_id, 1)
    if LOG:
        fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{key}\n".encode())
        finally:
            os.close(fd)
    # seq: the order this process published its outputs in, for tests of ordering
    return Event(event_type="job_done", client_id=event.client_id,
                 data={"job": key, "pid": os.getpid(), "seq": next(_SEQ)})


async def _released(gate: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(gate.exists):
        if time.monotonic() > deadline:
            raise RetryableError(f"{gate} was not created within {timeout:.0f}s")
        await asyncio.sleep(0.01)  # the test's release is a file: polled, not signalled


def _bookkeeping(broker: Broker) -> Redis:
    if not BOOKS:
        return broker.client
    if not _books:
        _books.append(Redis.from_url(BOOKS, socket_timeout=5, socket_connect_timeout=5))
    return _books[0]


def build_routes(streams: list[str]) -> Routes:
    routes = Routes()
    for stream in streams:
        routes.output("job_done", f"{stream}-done")(routes.on(stream, "job")(_copy(record)))
    return routes


def _copy(func: Any) -> Any:
    async def handler(event: Event, broker: BrokerDep, store: StoreDep,
                      message: MessageDep) -> Event:
        return await func(event, broker, store, message)

    return handler


app = build(build_routes(os.environ.get("RECORDER_STREAMS", "jobs").split(",")))
