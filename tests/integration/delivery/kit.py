"""What the delivery tests share: their consumer group, a
config for it, a Recorder handler that counts attempts, and Redis probes (DLQ entries, pending)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, cast

import redis.asyncio as aioredis

from core.events import Event
from core.keys import dlq_stream
from handlers.routing import Routes
from settings import Config
from tests import harness
from tests.harness import Entries, unique, wait_until

GROUP = unique("test-group")  # not the real group: a developer's Redis keeps its DLQ


def config(streams: list[str], **policy: Any) -> Config:
    return harness.config(streams, **{"group": GROUP, **policy})


class Recorder:
    """A handler's memory: attempts and successes per event_id, and when each attempt began."""

    def __init__(self) -> None:
        self.attempts: Counter[str] = Counter()
        self.handled: Counter[str] = Counter()
        self.times: dict[str, list[float]] = {}
        self.calls: list[Event] = []

    def router(self, stream: str, behaviour: Any = None, event_type: str = "job",
               publish_to: str | None = None) -> Routes:
        router = Routes()

        async def handle(event: Event) -> Event:
            key = str(event.event_id)
            self.attempts[key] += 1
            self.times.setdefault(key, []).append(time.monotonic())
            self.calls.append(event)
            if behaviour:
                await behaviour(event, self.attempts[key])
            self.handled[key] += 1
            return Event(event_type="job_done", client_id=event.client_id, data={"job": key})

        subscribed = router.on(stream, event_type)(handle)
        if publish_to:
            router.output("job_done", publish_to)(subscribed)
        return router

    async def wait_handled(self, n: int, timeout: float = 20) -> None:
        async def done() -> int:
            return len(self.handled) >= n

        await wait_until(done, timeout, f"{n} events handled (have {len(self.handled)})")


async def dlq_entries(r: aioredis.Redis, group: str = GROUP) -> list[dict[str, str]]:
    entries = cast(Entries, await r.xrange(dlq_stream(group)))
    return [{k.decode(errors="replace"): v.decode(errors="replace") for k, v in f.items()}
            for _, f in entries]


async def pending_count(r: aioredis.Redis, stream: str, group: str = GROUP) -> int:
    return int((await r.xpending(stream, group))["pending"])


async def equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def at_least(entries: Any, n: int) -> Any:
    got = await entries
    return got if len(got) >= n else None


async def not_in(item: str, names: Any) -> bool:
    return item not in await names
