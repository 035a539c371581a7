"""Store.clients(table): the client ids that have rows in a table, on every backend (what
`secretmagic recompute --all` walks)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from store import Store
from tests.storekit import BACKENDS, IDS, Backend, backend, new_client, sample


@pytest.fixture(scope="module", params=BACKENDS)
async def backend_(request: pytest.FixtureRequest, mysql_dsn: str) -> AsyncIterator[Backend]:
    async with backend(request.param, mysql_dsn, "sm_clients") as b:
        yield b


async def test_clients_lists_those_with_rows_and_forgets_a_cleared_one(backend_: Backend) -> None:
    store: Store = backend_.store
    mine = [new_client(), *(f"{new_client()}{awkward}" for awkward in IDS[2:6])]
    for client in mine:
        await store.replace("sales", client, sample("sales", client, 3))
    await store.replace("stock", mine[0], sample("stock", mine[0], 2))
    listed = await store.clients("sales")
    assert listed == sorted(listed) and set(mine) <= set(listed)
    assert mine[0] in await store.clients("stock") and mine[1] not in await store.clients("stock")
    await store.replace("sales", mine[1], sample("sales", mine[1], 0))  # cleared
    assert set(await store.clients("sales")) >= {mine[0], *mine[2:]}
    assert mine[1] not in await store.clients("sales")
    with pytest.raises(ValueError, match="unknown store table"):
        await store.clients("no_such_table")
