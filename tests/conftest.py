"""Shared fixtures: real services found or started by tests/services.py, one per session."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pymysql
import pytest
import redis
import redis.asyncio as aioredis

from store import parse_dsn
from tests import services
from tests.harness import Keys, delete_minted_keys


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url, server = services.find_redis()
    yield url
    if server:
        server.close()
    else:  # a shared Redis: leave it as it was found
        delete_minted_keys(url)


@pytest.fixture(scope="session")
def mysql_dsn() -> Iterator[str]:
    dsn, server = services.find_mysql()
    yield dsn
    if server:
        server.close()


@pytest.fixture
def mysql_database(mysql_dsn: str) -> Iterator[str]:
    """The DSN of a database of this test's own on the session's MySQL-protocol server."""
    server = parse_dsn(mysql_dsn)
    name = f"sm_test_{uuid.uuid4().hex[:8]}"
    admin = pymysql.connect(host=server.host, port=server.port, user=server.user or None,
                            password=server.password, autocommit=True)
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    try:
        yield mysql_dsn.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    dsn, server = services.find_postgres()
    yield dsn
    if server:
        server.close()


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    """A plain (sync) client of the session's Redis."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def keys(r: redis.Redis) -> Iterator[Keys]:
    """Unique key names for one test, deleted afterwards."""
    k = Keys(r)
    yield k
    k.cleanup()


@pytest.fixture
async def ar(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """An asyncio client of the session's Redis (what a test's keys it mints are deleted at the
    end of the session)."""
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()
