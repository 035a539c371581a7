"""stock_on_hand and days_of_cover on a grid.

stock_on_hand is the on_hand of the latest stock day at or before the date (several rows of one
day, e.g. warehouses, summed; null on_hand rows ignored), null before the first stock day; stock
days before a series' first grid day count for that first day, days after its last are ignored.
"""

from __future__ import annotations

import polars as pl

from features.grid import KEYS, Grid, finite, summed


def on_hand(grid: Grid, stock: pl.DataFrame | None) -> pl.Series:
    """stock_on_hand for every grid row (all null without stock)."""
    n = grid.rows.height
    if stock is None or stock.is_empty() or n == 0:
        return pl.repeat(None, n, dtype=pl.Float64, eager=True).alias("stock_on_hand")
    rows = stock.lazy().select(
        pl.col(KEYS).cast(pl.Utf8), pl.col("date").cast(pl.Date),
        pl.col("on_hand").cast(pl.Float64),
    ).drop_nulls().collect()
    finite(rows, "on_hand", "stock")
    located = rows.select(
        row=grid.locate(rows, clip=True), day=pl.col("date"), on_hand="on_hand",
    ).drop_nulls("row")
    # Days before a series' start all land on its first row: only the latest of them counts.
    latest = located.filter(pl.col("day") == pl.col("day").max().over("row"))
    day_sums = summed(latest.get_column("row"), latest.get_column("on_hand"))
    known = pl.repeat(None, n, dtype=pl.Float64, eager=True).scatter(
        day_sums.get_column("row"), day_sums.get_column("value"))
    # Forward fill on the flat column, but not across a series' start: remember where each
    # filled value came from and keep it only if that row is in the same series.
    row = pl.int_range(n, dtype=pl.Int64)
    return pl.DataFrame([known.alias("known"), grid.rows.get_column("fpos")]).select(
        stock_on_hand=pl.when(
            pl.when(pl.col("known").is_not_null()).then(row).forward_fill()
            >= row - pl.col("fpos")
        ).then(pl.col("known").forward_fill())
    ).to_series()


def days_of_cover(ma: str) -> pl.Expr:
    """stock_on_hand / `ma` (the shortest window's) where that ma is > 0, else null."""
    return pl.when(pl.col(ma) > 0).then(pl.col("stock_on_hand") / pl.col(ma)).alias(
        "days_of_cover")
