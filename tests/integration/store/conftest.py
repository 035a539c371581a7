"""The store tests' fixtures: a store per backend (one per session), a client id of the test's
own, a MariaDB store of a private database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from store import Store, open_store
from tests.storekit import (
    BACKENDS,
    backend,
    new_client,
    private_database,
)


@pytest.fixture(scope="session")
def store_mysql_dsn(mysql_dsn: str) -> Iterator[str]:
    """A database of this module's own on the session's MySQL-protocol server."""
    with private_database(mysql_dsn, "sm_store") as dsn:
        yield dsn


@pytest.fixture(scope="session", params=BACKENDS)
async def store(request: pytest.FixtureRequest, mysql_dsn: str) -> AsyncIterator[Store]:
    async with backend(request.param, mysql_dsn, "sm_store") as b:
        yield b.store


@pytest.fixture
def client_id() -> str:
    # unicode on purpose; unique per test so tests share tables safely
    return new_client()


@pytest.fixture
async def mysql_store(store_mysql_dsn: str) -> AsyncIterator[Store]:
    s = open_store(store_mysql_dsn + "?batch_rows=3&pool_size=2")
    await s.create_tables()
    yield s
    await s.close()
