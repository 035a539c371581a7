"""Used by tests/integration/test_outbox.py's crash test: publish events while Redis is down,
until killed.

    python -m tests.outbox_publisher OUTBOX_PATH REDIS_URL STREAM COUNT

Publishes through `app.publishing.drainer.publish` (so, with Redis down, into the outbox at
OUTBOX_PATH) and
prints `sent <event_id>` after each publish returned (the entry is committed by then), `DONE
<COUNT>` after COUNT events, and then keeps publishing until it is killed, so that the SIGKILL
lands in the middle of a write.
"""

from __future__ import annotations

import asyncio
import sys
from itertools import count
from pathlib import Path

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from app.publishing.drainer import publish
from app.publishing.outbox import Outbox
from core.events import Event
from core.wire import encode


def say(line: str) -> None:
    # One write per line: with PYTHONUNBUFFERED, print() writes each argument separately, and a
    # SIGKILL between them would leave a torn line.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(path: Path, url: str, stream: str, total: int) -> None:
    box = Outbox(path)
    client = aioredis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=1)
    for i in count():
        fields = encode(Event(event_type="features_updated", client_id=f"c{i % 7}",
                              data={"n": i}))
        route = await publish(client, box, stream, fields, None)
        say(f"sent {fields['event_id']} {route}")
        if i + 1 == total:
            say(f"DONE {total}")
        if i >= total:
            await asyncio.sleep(0)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])))
