"""Incremental I/O on every backend: `read(..., since=)`, `replace(..., since=)` and the server-side
digest that finds where a client's data changed (checked against polars over the same rows)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from core.errors import FatalError
from store import Store
from store.digest import changed_since, earliest
from tests.storekit import (
    assert_same_rows,
    new_client,
    sample,
    store_fixtures,
)

backend_, store = store_fixtures("sm_incr")


START = dt.date(2023, 12, 25)  # a Monday


def sales(client: str, products: int = 3, days: int = 70, seed: int = 0) -> pl.DataFrame:
    """Daily sales of `products` over `days` from START (qty null now and then)."""
    grid = pl.DataFrame({"i": pl.int_range(products * days, eager=True)})
    return grid.select(
        pl.lit(client).alias("client_id"),
        pl.format("p{}", pl.col("i") // days).alias("product_id"),
        (pl.lit(START) + pl.duration(days=pl.col("i") % days)).cast(pl.Date).alias("date"),
        pl.when(pl.col("i") % 11 == 3).then(None)
        .otherwise((pl.col("i") * 7 + seed) % 13 / 4).alias("qty"),
        ((pl.col("i") + seed) * 1.25).alias("amount"),
    )


async def test_read_since_is_the_rows_from_that_date(store: Store) -> None:
    client = new_client()
    frame = sales(client)
    await store.replace("sales", client, frame)
    for since in (START, dt.date(2024, 1, 31), dt.date(2024, 3, 3), dt.date(2030, 1, 1)):
        assert_same_rows(await store.read("sales", client, since=since),
                         frame.filter(pl.col("date") >= since), "sales")


async def test_replace_since_rewrites_only_from_that_date(store: Store) -> None:
    client = new_client()
    old = sales(client)
    await store.replace("sales", client, old)
    since = dt.date(2024, 2, 10)
    # from `since` on: p0 gets new values, p1 loses its rows, p2 keeps fewer days, p9 is new
    new = pl.concat([
        sales(client, 1, 70, seed=5).filter(pl.col("date") >= since),
        old.filter((pl.col("product_id") == "p2") & pl.col("date").is_between(since, START +
                                                                             dt.timedelta(60))),
        sales(client, 1, 70, seed=9).with_columns(product_id=pl.lit("p9"))
        .filter(pl.col("date") >= since),
    ])
    assert await store.replace("sales", client, new, since=since) == new.height
    want = pl.concat([old.filter(pl.col("date") < since), new])
    assert_same_rows(await store.read("sales", client), want, "sales")
    # an empty frame clears the client's rows from `since` on, and only those
    await store.replace("sales", client, new.head(0), since=since)
    assert_same_rows(await store.read("sales", client), old.filter(pl.col("date") < since),
                     "sales")


async def test_replace_since_refuses_rows_before_it(store: Store) -> None:
    client = new_client()
    frame = sales(client)
    await store.replace("sales", client, frame)
    with pytest.raises(FatalError, match=r"dated before since=2024-02-01"):
        await store.replace("sales", client, frame, since=dt.date(2024, 2, 1))
    assert_same_rows(await store.read("sales", client), frame, "sales")


async def test_since_needs_a_dated_table_and_a_date(store: Store) -> None:
    client = new_client()
    with pytest.raises(ValueError, match="no date column"):
        await store.read("bom", client, since=START)
    with pytest.raises(ValueError, match="no date column"):
        await store.replace("bom", client, sample("bom", client), since=START)
    with pytest.raises(ValueError, match=r"since must be a datetime\.date"):
        await store.read("sales", client, since=dt.datetime(2024, 1, 1))
    with pytest.raises(ValueError, match=r"since must be a datetime\.date"):
        await store.read("sales", client, since="2024-01-01")  # type: ignore[arg-type]


def _periods(frame: pl.DataFrame, period: str) -> pl.DataFrame:
    """The independent reference of a digest's (product_id, period, rows)."""
    start = {"day": pl.col("date"), "week": pl.col("date").dt.truncate("1w"),
             "month": pl.col("date").dt.month_start()}[period]
    return (frame.group_by("product_id", start.alias("period"))
            .agg(rows=pl.len().cast(pl.Int64)).sort("product_id", "period"))


@pytest.mark.parametrize("period", ["day", "week", "month"])
async def test_digest_counts_rows_per_product_and_period(store: Store, period: str) -> None:
    client = new_client()
    frame = sales(client)
    await store.replace("sales", client, frame)
    got = (await store.digest("sales", client, period=period)).sort("product_id", "period")  # type: ignore[arg-type]
    assert got.columns == ["product_id", "period", "rows", "checksum"]
    assert_same_rows_of(got.select("product_id", "period", "rows"), _periods(frame, period))
    assert got.get_column("checksum").n_unique() == got.height  # distinct data, distinct sums
    since = dt.date(2024, 2, 1)
    partial = await store.digest("sales", client, period="month", since=since)
    full = await store.digest("sales", client, period="month")
    assert_same_rows_of(partial.sort("product_id", "period"),
                        full.filter(pl.col("period") >= since).sort("product_id", "period"))


def assert_same_rows_of(got: pl.DataFrame, want: pl.DataFrame) -> None:
    assert got.to_dicts() == want.to_dicts()


async def test_digests_find_where_the_data_changed(store: Store) -> None:
    """Each kind of change, applied to a copy of the same data under another client id (the
    checksum does not depend on the client), is found in exactly the product and month it hit."""
    base = sales("x")
    before_client = new_client()
    await store.replace("sales", before_client, base.with_columns(client_id=pl.lit(before_client)))
    before = await store.digest("sales", before_client)
    in_march = pl.col("date") == dt.date(2024, 3, 1)
    edits: dict[str, tuple[pl.DataFrame, dict[str, dt.date]]] = {
        "nothing": (base, {}),
        "value edited mid-history": (
            base.with_columns(qty=pl.when((pl.col("product_id") == "p1")
                                          & (pl.col("date") == dt.date(2024, 1, 17)))
                              .then(pl.col("qty").fill_null(0) + 0.5).otherwise("qty")),
            {"p1": dt.date(2024, 1, 1)}),
        "day appended": (
            pl.concat([base, base.filter(in_march & (pl.col("product_id") == "p2"))
                       .with_columns(date=pl.lit(dt.date(2024, 3, 4)))]),
            {"p2": dt.date(2024, 3, 1)}),
        "row deleted": (base.filter(~(in_march & (pl.col("product_id") == "p0"))),
                        {"p0": dt.date(2024, 3, 1)}),
        "new product": (pl.concat([base, base.filter(pl.col("product_id") == "p0")
                                   .with_columns(product_id=pl.lit("p7"))]),
                        {"p7": dt.date(2023, 12, 1)}),
        "product deleted": (base.filter(pl.col("product_id") != "p2"),
                            {"p2": dt.date(2023, 12, 1)}),
        "null became a number": (base.with_columns(qty=pl.col("qty").fill_null(0.0)), dict(
            base.filter(pl.col("qty").is_null()).group_by("product_id")
            .agg(pl.col("date").min().dt.month_start()).iter_rows())),
    }
    for what, (after_frame, want) in edits.items():
        client = new_client()
        await store.replace("sales", client, after_frame.with_columns(client_id=pl.lit(client)))
        changes = changed_since(before, await store.digest("sales", client))
        got = dict(changes.iter_rows())
        assert got == want, what
        assert earliest(changes) == (min(want.values()) if want else None), what


async def test_digest_by_period_only_finds_the_first_changed_month(store: Store) -> None:
    """by_product=False: one row per period (product_id ''), counts as polars', and the same
    edits found in their month, also two products' values swapped on one day (which a XOR of
    CRC32s, affine, would cancel)."""
    base = sales("x")
    first = new_client()
    await store.replace("sales", first, base.with_columns(client_id=pl.lit(first)))
    before = await store.digest("sales", first, by_product=False)
    want = _periods(base.with_columns(product_id=pl.lit("")), "month")
    assert_same_rows_of(before.select("product_id", "period", "rows").sort("period"), want)
    day = dt.date(2024, 1, 17)
    on_day = pl.col("date") == day
    two = base.filter(on_day & pl.col("product_id").is_in(["p0", "p1"])).sort("product_id")
    assert two.height == 2 and two["qty"][0] != two["qty"][1]
    swapped = base.with_columns(qty=pl.when(on_day & (pl.col("product_id") == "p0"))
                                .then(pl.lit(two["qty"][1]))
                                .when(on_day & (pl.col("product_id") == "p1"))
                                .then(pl.lit(two["qty"][0])).otherwise("qty"))
    for what, after_frame, month in [
        ("nothing", base, None),
        ("values swapped", swapped, dt.date(2024, 1, 1)),
        ("row deleted", base.filter(~(pl.col("date") == dt.date(2024, 3, 1))), dt.date(2024, 3, 1)),
        ("product renamed", base.with_columns(product_id=pl.col("product_id").replace("p2", "q2")),
         dt.date(2023, 12, 1)),
    ]:
        client = new_client()
        await store.replace("sales", client, after_frame.with_columns(client_id=pl.lit(client)))
        changes = changed_since(before, await store.digest("sales", client, by_product=False))
        assert earliest(changes) == month, what


async def test_digest_of_some_columns_sees_only_their_edits(store: Store) -> None:
    base = sales("x")
    first = new_client()
    await store.replace("sales", first, base.with_columns(client_id=pl.lit(first)))
    before = await store.digest("sales", first, columns=("qty",))
    march = pl.col("date") >= dt.date(2024, 3, 1)
    for edited, seen in (("amount", False), ("qty", True)):
        client = new_client()
        changed = base.with_columns(pl.when(march).then(pl.col(edited).fill_null(0) + 1)
                                    .otherwise(pl.col(edited)).alias(edited))
        await store.replace("sales", client, changed.with_columns(client_id=pl.lit(client)))
        got = earliest(changed_since(before, await store.digest("sales", client,
                                                                columns=("qty",))))
        assert got == (dt.date(2024, 3, 1) if seen else None), edited
    with pytest.raises(ValueError, match="no value columns"):
        await store.digest("sales", first, columns=("product_id",))


def test_changed_since_without_a_store() -> None:
    d = pl.Schema({"product_id": pl.String(), "period": pl.Date(), "rows": pl.Int64(),
                   "checksum": pl.Int64()})
    jan, feb = dt.date(2024, 1, 1), dt.date(2024, 2, 1)
    before = pl.DataFrame([("a", jan, 31, 1), ("a", feb, 29, 2), ("b", jan, 31, 3)], schema=d,
                          orient="row")
    same = changed_since(before, before)
    assert same.height == 0 and earliest(same) is None
    after = pl.DataFrame([("a", jan, 31, 1), ("a", feb, 29, 5), ("c", feb, 1, 9)], schema=d,
                         orient="row")
    assert dict(changed_since(before, after).iter_rows()) == {"a": feb, "b": jan, "c": feb}
