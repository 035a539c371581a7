"""The wide features table (one row per client, product and day; one column per feature) and the
seasonality profiles beside it, on every backend; the feature columns follow the parameters."""

from __future__ import annotations

import asyncio
import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import features
from core.errors import FatalError
from store import Store, open_store
from store.schema import feature_columns, table_spec
from tests.storekit import Backend, new_client, store_fixtures

KEY = ["client_id", "product_id", "date"]


backend_, store = store_fixtures("sm_wide")


def wide(client: str, names: list[str], days: int = 20, start: dt.date = dt.date(2024, 1, 1),
         products: int = 3, seed: int = 0) -> pl.DataFrame:
    """A wide frame: every (product, day) with a value per feature (some null)."""
    grid = pl.DataFrame({"i": pl.int_range(products * days, eager=True)}).select(
        pl.lit(client).alias("client_id"),
        pl.format("p{}", pl.col("i") // days).alias("product_id"),
        (pl.lit(start) + pl.duration(days=pl.col("i") % days)).cast(pl.Date).alias("date"),
        pl.col("i"),
    )
    values = [pl.when((pl.col("i") + k) % 7 == 0).then(None)
              .otherwise((pl.col("i") * (k + 3) + seed) / 7).alias(name)
              for k, name in enumerate(names)]
    return grid.select(*KEY, *values)


def assert_wide(got: pl.DataFrame, want: pl.DataFrame) -> None:
    """Same rows and values. `got` has the keys, then every feature column the table has (tests
    share the table), sorted by name, Float64; those `want` has not are null in these rows."""
    mine = [c for c in want.columns if c not in KEY]
    assert got.columns[:3] == KEY
    assert got.columns[3:] == sorted(got.columns[3:]) and set(mine) <= set(got.columns)
    assert all(got.schema[c] == pl.Float64 for c in got.columns[3:])
    others = [c for c in got.columns[3:] if c not in mine]
    assert all(got.get_column(c).null_count() == got.height for c in others)
    assert_frame_equal(got.select(*KEY, *sorted(mine)).sort(KEY),
                       want.select(*KEY, *sorted(mine)).sort(KEY), check_exact=True)


def test_feature_columns_follow_the_parameters() -> None:
    params = features.FeatureParams(ema_spans=(3, 14), ma_windows=(5,), std_windows=(5, 9),
                                    lags=(1, 2))
    assert feature_columns(params) == ["ema_3", "ema_14", "ma_5", "std_5", "std_9", "lag_1",
                                       "lag_2", "stock_on_hand", "days_of_cover"]
    assert feature_columns(params, stock=False)[-1] == "lag_2"
    assert "days_of_cover" not in feature_columns(params.model_copy(update={"ma_windows": ()}))
    # what the feature computation produces for these parameters fits the table's columns
    sales = pl.DataFrame({"client_id": "c", "product_id": "p",
                          "date": pl.date_range(dt.date(2024, 1, 1), dt.date(2024, 1, 30),
                                                eager=True), "qty": 1.0})
    stock = sales.select("client_id", "product_id", "date", on_hand=pl.lit(5.0))
    result = features.compute(sales, stock, None, params)  # profiles go to feature_profiles
    assert result.wide.columns[4:] == feature_columns(params)


async def test_round_trip_and_columns_added_for_new_features(store: Store) -> None:
    client = new_client()
    first = wide(client, ["ema_7", "ma_7"])
    assert await store.replace("daily_features", client, first) == first.height
    assert_wide(await store.read("daily_features", client), first)
    # the parameters change: ma_7 is dropped, ema_14 is new; the rows from `since` on get them
    since = dt.date(2024, 1, 11)
    later = wide(client, ["ema_7", "ema_14"], days=10, start=since, seed=3)
    await store.replace("daily_features", client, later, since=since)
    got = await store.read("daily_features", client)
    want = pl.concat([first.filter(pl.col("date") < since), later], how="diagonal")
    assert_wide(got, want)  # ma_7 kept for the old rows, null in the new; ema_14 null before
    assert got.filter(pl.col("date") >= since).get_column("ma_7").null_count() == later.height


async def test_a_client_with_no_rows_reads_the_tables_columns(store: Store) -> None:
    client = new_client()
    await store.replace("daily_features", client, wide(client, ["lag_3"]))
    empty = await store.read("daily_features", new_client())
    assert empty.height == 0
    assert empty.columns[:3] == KEY and "lag_3" in empty.columns


@pytest.mark.parametrize("bad", ["Ema_7", "ema-7", "_version", "computed_at", "x" * 64, "7d"])
async def test_a_column_that_cannot_be_a_feature_is_fatal(store: Store, bad: str) -> None:
    client = new_client()
    frame = wide(client, ["ema_7"])
    await store.replace("daily_features", client, frame)
    with pytest.raises(FatalError, match="cannot be feature columns"):
        await store.replace("daily_features", client, frame.with_columns(pl.lit(1.0).alias(bad)))
    assert_wide(await store.read("daily_features", client), frame)


async def test_instances_adding_the_same_column_at_once(backend_: Backend) -> None:
    """Two store instances (two worker processes) bring the same new feature at the same time;
    a third, which never wrote, reads the column."""
    name = f"lag_{new_client().split('-')[1][:6]}"  # a column no earlier test added
    stores = [open_store(backend_.dsn) for _ in range(3)]
    clients = [new_client(), new_client()]
    frames = [wide(c, ["ema_7", name], seed=i) for i, c in enumerate(clients)]
    await asyncio.gather(*(s.replace("daily_features", c, f)
                           for s, c, f in zip(stores, clients, frames, strict=False)))
    for client, frame in zip(clients, frames, strict=True):
        assert_wide(await stores[2].read("daily_features", client), frame)
    for s in stores:
        await s.close()


async def test_profiles_are_per_product_and_period(store: Store) -> None:
    client = new_client()
    spec = table_spec("feature_profiles")
    profiles = pl.DataFrame(
        [(client, p, kind, period, (period + len(p)) / 7 if period != 3 else None,
          f"{period * 1.25:.18f}", period * 4)  # the exact sums: Decimal(38, 18) as text
         for p in ("p1", "p2") for kind, n in (("dow", 7), ("moy", 12))
         for period in range(1, n + 1)],
        schema=spec.schema, orient="row")
    await store.replace("feature_profiles", client, profiles)
    got = await store.read("feature_profiles", client)
    assert got.schema == spec.schema
    assert_frame_equal(got.sort(spec.key), profiles.sort(spec.key), check_exact=True)
