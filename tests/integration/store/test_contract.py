"""The store contract on every backend: typed empty reads, round trips of every table, replace
(twice, empty, redelivered), isolation of clients, awkward ids, conformed and refused frames,
concurrency, the event loop never blocked."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import uuid

import polars as pl
import pytest

from core.errors import FatalError
from store import TABLES, Store, table_spec
from tests.storekit import (
    assert_same_rows,
    features_frame,
    sample,
)


async def test_create_tables_is_idempotent_and_reads_are_typed_when_empty(
    store: Store, client_id: str
) -> None:
    if store.name != "starrocks":  # its DDL is StarRocks' own: the simulation's SQL is MariaDB
        await store.create_tables()
        await store.create_tables()
    for table, spec in TABLES.items():
        frame = await store.read(table, client_id)
        assert frame.height == 0
        if spec.extensible:  # the keys, then whatever feature columns other tests brought
            assert frame.columns[:len(spec.columns)] == spec.columns, table
            assert set(frame.dtypes[len(spec.columns):]) <= {pl.Float64}, table
        else:
            assert frame.schema == spec.schema, table


@pytest.mark.parametrize("table", list(TABLES))
async def test_round_trip_every_table(store: Store, client_id: str, table: str) -> None:
    frame = sample(table, client_id)
    assert await store.replace(table, client_id, frame) == frame.height
    assert_same_rows(await store.read(table, client_id), frame, table)


async def test_replace_twice_second_wins_and_redelivery_changes_nothing(
    store: Store, client_id: str
) -> None:
    first = features_frame(client_id, 300)
    second = features_frame(client_id, 120, seed=1)  # fewer keys, other values
    await store.replace("daily_features", client_id, first)
    await store.replace("daily_features", client_id, second)
    assert_same_rows(await store.read("daily_features", client_id), second, "daily_features")
    # the same event delivered again: same rows, no duplicates
    await store.replace("daily_features", client_id, second)
    assert_same_rows(await store.read("daily_features", client_id), second, "daily_features")


async def test_replace_with_empty_frame_clears_the_client(store: Store, client_id: str) -> None:
    await store.replace("bom", client_id, sample("bom", client_id))
    empty = pl.DataFrame(schema=table_spec("bom").schema)
    assert await store.replace("bom", client_id, empty) == 0
    assert (await store.read("bom", client_id)).height == 0


async def test_clients_are_isolated(store: Store, client_id: str) -> None:
    other = client_id + "-other"
    mine, theirs = sample("products", client_id), sample("products", other)
    await store.replace("products", client_id, mine)
    await store.replace("products", other, theirs)
    await store.replace("products", client_id, mine.head(2))
    assert_same_rows(await store.read("products", other), theirs, "products")
    assert_same_rows(await store.read("products", client_id), mine.head(2), "products")


async def test_nasty_client_id(store: Store) -> None:
    client_id = f"x'); DELETE FROM daily_features; -- \\ \x00 😀 {uuid.uuid4().hex[:6]}"
    frame = sample("stock", client_id)
    await store.replace("stock", client_id, frame)
    assert_same_rows(await store.read("stock", client_id), frame, "stock")


async def test_50k_rows_round_trip(store: Store, client_id: str) -> None:
    frame = features_frame(client_id, 50_000)
    assert await store.replace("daily_features", client_id, frame) == 50_000
    assert_same_rows(await store.read("daily_features", client_id), frame, "daily_features")


async def test_frames_are_conformed(store: Store, client_id: str) -> None:
    # no client_id column, columns in another order, ints for floats
    bom = pl.DataFrame({"qty_per": [2, 3], "child_id": ["b", "c"], "parent_id": ["a", "a"]})
    await store.replace("bom", client_id, bom)
    want = pl.DataFrame(  # rows of dicts: the optional columns left out (base_qty, ...) null
        [{"client_id": client_id, "parent_id": "a", "child_id": c, "qty_per": q}
         for c, q in (("b", 2.0), ("c", 3.0))],
        schema=table_spec("bom").schema,
    )
    assert_same_rows(await store.read("bom", client_id), want, "bom")
    # NaN is stored as null (MySQL and StarRocks have no NaN)
    stock = pl.DataFrame(
        {"product_id": ["a", "b"], "date": [dt.date(2024, 1, 1)] * 2,
         "on_hand": [float("nan"), 1.5]}
    )
    await store.replace("stock", client_id, stock)
    got = await store.read("stock", client_id)
    assert got.sort("product_id").get_column("on_hand").to_list() == [None, 1.5]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda c: sample("sales", c).with_columns(qty=pl.lit(math.inf)), "infinite"),
        (lambda c: pl.concat([sample("sales", c).head(2)] * 2), "share a key"),
        (lambda c: sample("sales", c).drop("qty"), "missing"),
        (lambda c: sample("sales", c).with_columns(extra=pl.lit(1)), "unexpected"),
        (lambda c: sample("sales", c).with_columns(date=pl.lit("not a date")), "cast"),
        (lambda c: sample("sales", c).with_columns(client_id=pl.lit("someone-else")), "another"),
        (lambda c: sample("sales", c).with_columns(product_id=pl.lit(None, pl.String)), "null"),
    ],
    ids=["inf", "duplicate-key", "missing-column", "extra-column", "bad-value", "foreign-rows",
         "null-key"],
)
async def test_bad_frames_are_fatal_and_change_nothing(
    store: Store, client_id: str, make, message: str
) -> None:
    before = sample("sales", client_id)
    await store.replace("sales", client_id, before)
    with pytest.raises(FatalError, match=message):
        await store.replace("sales", client_id, make(client_id))
    assert_same_rows(await store.read("sales", client_id), before, "sales")


async def test_unknown_table_and_bad_client_id_are_value_errors(store: Store) -> None:
    for table in ("nope", "features; DROP TABLE sales", "FEATURES", ""):
        with pytest.raises(ValueError, match="unknown store table"):
            await store.read(table, "c")
        with pytest.raises(ValueError, match="unknown store table"):
            await store.replace(table, "c", pl.DataFrame())
    with pytest.raises(ValueError, match="client_id"):
        await store.read("daily_features", "")


async def test_concurrent_calls(store: Store) -> None:
    clients = [f"conc-{uuid.uuid4().hex[:8]}-{i}" for i in range(10)]
    frames = [features_frame(c, 500 + 100 * i, seed=i) for i, c in enumerate(clients)]
    pairs = zip(clients, frames, strict=True)
    await asyncio.gather(*(store.replace("daily_features", c, f) for c, f in pairs))
    got = await asyncio.gather(*(store.read("daily_features", c) for c in clients))
    for frame, want in zip(got, frames, strict=True):
        assert_same_rows(frame, want, "daily_features")


async def test_io_does_not_block_the_event_loop(store: Store, client_id: str) -> None:
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    start = ticks
    await store.replace("daily_features", client_id, features_frame(client_id, 20_000))
    await store.read("daily_features", client_id)
    done.set()
    await task
    assert ticks - start > 2, "the loop did not run while the store worked"


async def test_ping(store: Store) -> None:
    await store.ping()
