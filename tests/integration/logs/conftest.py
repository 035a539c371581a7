"""The log tests' fixtures: the secretmagic logger's level restored after each test, a schema of
the test's own, a private PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.integration.logs.kit import (
    drop_schema,
    logger,
    new_schema,
)
from tests.services import PrivatePostgres


@pytest.fixture(autouse=True)
def _restore_logger_level() -> Iterator[None]:
    level = logger.level
    yield
    logger.setLevel(level)


@pytest.fixture
async def schema(pg_dsn: str) -> AsyncIterator[str]:
    name = new_schema()
    yield name
    await drop_schema(pg_dsn, name)


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    yield server
    server.close()
