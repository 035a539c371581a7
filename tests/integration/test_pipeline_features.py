"""The features pipeline (handlers.pipelines.refresh_features) on every backend: after random
appends, edits in the middle, deletions, new and inactive products, stock edits and a parameter
change, the stored wide table and profiles equal a full recompute (features.compute over the
store's current inputs) value for value; data.date_from right, wrong or absent; a redelivered
event writes nothing; an appended day reads and writes only what the windows need."""

from __future__ import annotations

import datetime as dt
import random

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import features
from core.wire import position_now
from handlers.pipelines import FeaturesUpdated, refresh_features, refresh_products
from settings import Config
from store import Store
from tests.storekit import new_client, store_fixtures

START = dt.date(2024, 1, 1)
PARAMS: dict[str, object] = {"ema_spans": [3, 10], "ma_windows": [4, 9], "std_windows": [4],
                             "lags": [1, 7]}
OTHER: dict[str, object] = {"ema_spans": [5], "ma_windows": [4], "std_windows": [6], "lags": [2],
                            "seasonality": False}


backend_, store = store_fixtures("sm_pipe")


def config(params: dict[str, object]) -> Config:
    return Config.model_validate({"features": params})


def history(client: str, rng: random.Random, products: int = 4, days: int = 90) -> pl.DataFrame:
    rows = [{"client_id": client, "product_id": f"p{p}", "date": START + dt.timedelta(d),
             "qty": float(rng.randint(0, 9)) if rng.random() > 0.1 else None,
             "amount": float(rng.randint(0, 90))}
            for p in range(products) for d in range(rng.randint(0, 10), days)
            if rng.random() > 0.15]
    return pl.DataFrame(rows, schema={"client_id": pl.String, "product_id": pl.String,
                                      "date": pl.Date, "qty": pl.Float64, "amount": pl.Float64})


async def run(store: Store, client: str, params: dict[str, object] = PARAMS,
              date_from: dt.date | None = None) -> FeaturesUpdated:
    return await refresh_features(store, client, config(params), position_now(), date_from)


async def assert_equals_full(store: Store, client: str,
                             params: dict[str, object] = PARAMS) -> None:
    """The stored wide rows and profiles are those of a full recompute of the stored inputs."""
    sales, stock, meta = [await store.read(t, client) for t in ("sales", "stock", "product_meta")]
    full = features.compute(sales, stock, meta, config(params).features)
    names = features.wide_schema(config(params).features).names()
    got = await store.read("daily_features", client)
    want = full.wide.with_columns(pl.col(names[3:]).fill_nan(None))
    assert_frame_equal(got.select(names).sort("product_id", "date"),
                       want.sort("product_id", "date"), check_exact=True)
    profiles = (await store.read("feature_profiles", client)).with_columns(
        pl.col("qty_sum").cast(features.profiles.SUM))
    assert_frame_equal(profiles.select(full.profiles.columns).sort("product_id", "kind", "period"),
                       full.profiles.sort("product_id", "kind", "period"), check_exact=True)


def append_day(sales: pl.DataFrame, rng: random.Random) -> tuple[pl.DataFrame, dt.date]:
    last = sales.get_column("date").max()
    assert isinstance(last, dt.date)
    day = last + dt.timedelta(1)
    products = sorted(set(sales.get_column("product_id")))
    new = pl.DataFrame([{"client_id": sales.item(0, "client_id"), "product_id": p, "date": day,
                         "qty": float(rng.randint(0, 9)), "amount": 1.0} for p in products],
                       schema=sales.schema)
    return pl.concat([sales, new]), day


def edit(sales: pl.DataFrame, rng: random.Random, kind: str) -> tuple[pl.DataFrame, dt.date]:
    """One random change to the history, and the first day it touches."""
    last = sales.get_column("date").max()
    assert isinstance(last, dt.date)
    day = START + dt.timedelta(rng.randint(15, (last - START).days - 5))
    product = rng.choice(sorted(set(sales.get_column("product_id"))))
    at = (pl.col("product_id") == product) & (pl.col("date") == day)
    if kind == "edit":  # a day's qty in the middle (the row made if missing)
        rest = sales.filter(~at)
        row = pl.DataFrame([{"client_id": sales.item(0, "client_id"), "product_id": product,
                             "date": day, "qty": 100.0 + rng.randint(0, 9), "amount": 2.0}],
                           schema=sales.schema)
        return pl.concat([rest, row]), day
    if kind == "delete":  # a few days of one product
        gone = (pl.col("product_id") == product) & pl.col("date").is_between(
            day, day + dt.timedelta(3))
        return sales.filter(~gone), day
    if kind == "new product":
        new = pl.DataFrame([{"client_id": sales.item(0, "client_id"), "product_id": f"n{day}",
                             "date": d, "qty": 3.0, "amount": 1.0}
                            for d in pl.date_range(day, last, eager=True)], schema=sales.schema)
        return pl.concat([sales, new]), day
    assert kind == "drop product"
    dropped = sales.filter(pl.col("product_id") == product)
    return sales.filter(pl.col("product_id") != product), dropped.get_column("date").min()  # type: ignore[return-value]


KINDS = ["edit", "delete", "new product", "drop product"]


@pytest.mark.parametrize("seed", range(3))
async def test_random_changes_equal_a_full_recompute(store: Store, seed: int) -> None:
    rng = random.Random(seed)
    client = new_client()
    sales = history(client, rng)
    await store.replace("sales", client, sales)
    first = await run(store, client)
    assert not first.incremental and first.rows > 0
    await assert_equals_full(store, client)
    for step in range(6):
        if step % 2 == 0:
            sales, changed = append_day(sales, rng)
        else:
            sales, changed = edit(sales, rng, KINDS[(seed + step) % len(KINDS)])
        await store.replace("sales", client, sales)
        hint = rng.choice([None, changed, changed + dt.timedelta(rng.randint(1, 20))])
        done = await run(store, client, date_from=hint)  # right, absent or wrong (too late)
        await assert_equals_full(store, client)
        if step % 2 == 0:  # an appended day is always incremental, from that day on
            assert done.incremental and done.since == changed


async def test_an_appended_day_reads_the_warm_up_and_writes_one_day(store: Store) -> None:
    client, rng = new_client(), random.Random(7)
    sales = history(client, rng, products=5, days=120)
    sales = sales.filter(pl.col("date") < dt.date(2024, 4, 20))  # the next day mid-month
    await store.replace("sales", client, sales)
    await run(store, client)
    sales, day = append_day(sales, rng)
    await store.replace("sales", client, sales)
    done = await run(store, client, date_from=day)
    await assert_equals_full(store, client)
    warm_up = config(PARAMS).features.warm_up()  # 8 days: ma_9
    assert done.incremental and done.since == day and done.rows == 5
    # the sales and stored rows read: the warm-up and the day before, or the days of the month
    # before date_from if more (they are checked: date_from is the integrator's word)
    floor = min(day - dt.timedelta(warm_up + 1), dt.date(2024, 4, 1))
    assert done.rows_read["sales"] == sales.filter(pl.col("date") >= floor).height
    assert done.rows_read["daily_features"] == 5 * (day - floor).days
    # without date_from: the digests say "April": recomputed from April 1st, written from the day
    sales, day = append_day(sales, rng)
    await store.replace("sales", client, sales)
    blind = await run(store, client)
    await assert_equals_full(store, client)
    assert blind.incremental and blind.since == day and blind.rows == 5
    assert blind.rows_read["sales"] == sales.filter(
        pl.col("date") >= dt.date(2024, 4, 1) - dt.timedelta(warm_up + 1)).height


async def test_redelivery_writes_nothing_and_changes_nothing(store: Store) -> None:
    client = new_client()
    await store.replace("sales", client, history(client, random.Random(3)))
    await run(store, client)
    before = await store.read("daily_features", client)
    again = await run(store, client)
    assert again.rows == 0 and again.profile_rows == 0 and again.since is None
    assert "sales" not in again.rows_read  # only the digests were compared
    assert_frame_equal(await store.read("daily_features", client), before, check_row_order=False,
                       check_exact=True)


async def test_stock_edit_inactive_product_and_parameters(store: Store) -> None:
    client = new_client()
    sales = history(client, random.Random(5))
    await store.replace("sales", client, sales)
    stock = pl.DataFrame({"product_id": ["p0", "p1"], "date": [START, START],
                          "on_hand": [40.0, 7.0]})
    await store.replace("stock", client, stock)
    await run(store, client)
    await assert_equals_full(store, client)
    # a stock row in the middle: incremental from its month on
    day = START + dt.timedelta(50)
    await store.replace("stock", client, pl.concat([stock, pl.DataFrame(
        {"product_id": ["p0"], "date": [day], "on_hand": [3.0]})]))
    done = await run(store, client)
    await assert_equals_full(store, client)
    assert done.incremental and done.since == day
    # p2 made inactive (products_updated): its rows go; active again: they are back
    for active in (False, True):
        await store.replace("products", client, pl.DataFrame(
            {"product_id": ["p2"], "name": ["two"], "category": ["c"], "active": [active]}))
        await refresh_products(store, client, config(PARAMS), position_now())
        done = await run(store, client)
        assert not done.incremental and "inactive" in done.reason
        await assert_equals_full(store, client)
        present = "p2" in set((await store.read("daily_features", client))["product_id"])
        assert present is active
    # a parameter change: in full; the dropped features' columns are null in the client's rows
    done = await run(store, client, OTHER)
    assert not done.incremental and "parameters" in done.reason
    await assert_equals_full(store, client, OTHER)
    got = await store.read("daily_features", client)
    assert got.get_column("ema_3").null_count() == got.height
    assert (await store.read("feature_profiles", client)).is_empty()  # seasonality off
