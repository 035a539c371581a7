"""The CLI tests' fixtures: the session's Redis with the CLI pointed at it, a group with dead
letters, a password-protected Redis, a log table in PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from core.events import Event
from core.wire import encode
from tests.harness import Keys, dead_letter
from tests.services import PrivateRedis, private_redis
from tests.system.cli.kit import (
    MESSENGER,
    point_at,
)


@pytest.fixture
def r(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    point_at(monkeypatch, redis_url)
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def dlq_group(r: redis.Redis, keys: Keys) -> tuple[str, str, list[str]]:
    group, orig = keys("cli-group"), keys("cli-orig")
    ids = [dead_letter(r, group, orig, encode(Event(event_type="bom_updated", client_id=f"c{i}")),
                       ValueError(f"bom cycle {i}"), entry_id=f"{i}-0", deliveries=i + 1)
           for i in range(2)]
    return group, orig, ids


@pytest.fixture(scope="module")
def protected() -> Iterator[PrivateRedis]:
    with private_redis("--requirepass", "s3cret") as server:
        yield server


@pytest.fixture
def log_table(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private schema with the log table (app.observability.pgtable's DDL), five records; its
    name."""
    import asyncio

    import asyncpg

    from app.observability import pgtable

    schema = f"sm_cli_{uuid.uuid4().hex[:10]}"
    ddl = pgtable.ddl(schema)
    rows = [  # (minutes ago, level, category, message, error, context)
        (1, "info", "messenger", "event handled", None, '{"stream": "sales-updates"}'),
        (2, "error", "messenger", "event dead-lettered", "BOM cycle: A -> B -> A",
         '{"stream": "bom-updates", "client_id": "acme"}'),
        (3, "error", "config", "config rejected", "bad yaml", None),
        (30, "info", "messenger", "old event handled", None, "{}"),
        (40, "error", "messenger", "old failure", "store down", "{}"),
    ]

    async def run_sql(*statements: str) -> None:
        conn = await asyncpg.connect(pg_dsn)
        try:
            for statement in statements:
                await conn.execute(statement)
            if statements[0].startswith("CREATE"):
                await conn.executemany(
                    f"INSERT INTO {schema}.logs VALUES (NOW() - make_interval(mins => $1), $2, $3,"
                    " $4, $5, $6::jsonb)", rows)
        finally:
            await conn.close()

    asyncio.run(run_sql(ddl))
    for name in MESSENGER:
        monkeypatch.delenv(name, raising=False)  # logs needs no messenger
    monkeypatch.setenv("LOGS_DSN", pg_dsn)
    monkeypatch.setenv("LOGS_SCHEMA", schema)
    yield schema
    asyncio.run(run_sql(f"DROP SCHEMA {schema} CASCADE"))
