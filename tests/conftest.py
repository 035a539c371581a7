"""Shared fixtures: real services found or started by tests/services.py, one per session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from tests import services


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url, server = services.find_redis()
    yield url
    if server:
        server.close()


@pytest.fixture(scope="session")
def mysql_dsn() -> Iterator[str]:
    dsn, server = services.find_mysql()
    yield dsn
    if server:
        server.close()


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    dsn, server = services.find_postgres()
    yield dsn
    if server:
        server.close()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()
