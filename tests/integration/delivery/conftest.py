"""The delivery tests' Redis: the session's, as an asyncio client, with this group's DLQ emptied
(the tests count what they dead-letter)."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from core.keys import dlq_stream
from tests.integration.delivery.kit import GROUP


@pytest.fixture
async def r(redis_url: str) -> Any:
    client = aioredis.Redis.from_url(redis_url)
    await client.delete(dlq_stream(GROUP))
    yield client
    await client.aclose()
