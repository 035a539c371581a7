"""A client's features as feature stores keep them: one row per (client_id, product_id, date),
one Float64 column per feature (WIDE), and the seasonality profiles beside it (PROFILE_SCHEMA)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from features import kernels, profiles, stock
from features.grid import KEYS, Grid, build, daily
from features.params import FeatureParams

ROW_KEY = [*KEYS, "date"]


def wide_schema(params: FeatureParams) -> pl.Schema:
    """client_id, product_id, date, qty (the day's sales summed: the series the features describe,
    the target a trainer predicts), then params.feature_columns(), all Float64."""
    return pl.Schema({"client_id": pl.Utf8, "product_id": pl.Utf8, "date": pl.Date,
                      "qty": pl.Float64, **dict.fromkeys(params.feature_columns(), pl.Float64)})


@dataclass(frozen=True)
class Features:
    """What a compute produced for a client.

    wide: wide_schema(params) rows, sorted by (client_id, product_id, date): every grid day of
        every active product (from `since` on when `since` is set).
    profiles: PROFILE_SCHEMA rows of every active product (empty without seasonality): the
        client's whole profile table, also after an incremental compute.
    since: None after a full compute (the rows replace all of the client's); a date after an
        incremental one (the rows replace the client's rows from that date on, and nothing
        before it changes).
    families: the feature families present, in the seed's order ("stock" only with stock rows).
    """

    wide: pl.DataFrame
    profiles: pl.DataFrame
    since: dt.date | None
    families: list[str]


def compute(sales: pl.DataFrame, stock_rows: pl.DataFrame | None,
            products: pl.DataFrame | None, params: FeatureParams) -> Features:
    """The features of every (client_id, product_id) in `sales`, from all of their history."""
    grid = build(daily(sales), products)
    wide = features_of(grid, stock_rows, params)
    sums = profiles.sums(wide) if params.seasonality else profiles.empty_sums()
    return Features(wide, profiles.profiles(sums), None, families(params, stock_rows))


def families(params: FeatureParams, stock_rows: pl.DataFrame | None) -> list[str]:
    has_stock = stock_rows is not None and not stock_rows.is_empty()
    return [*params.families(), *(["stock"] if has_stock else [])]


def features_of(grid: Grid, stock_rows: pl.DataFrame | None, params: FeatureParams, *,
                first_day: dt.date | None = None, seeds: pl.DataFrame | None = None
                ) -> pl.DataFrame:
    """The wide rows of `grid` (from `first_day` on, if given). `seeds` (client_id, product_id,
    date, ema_{s}...): stored EMA values a series' EMA continues from, on its row at that date
    (which must be first_day)."""
    rows = grid.rows
    qty, fpos = rows.get_column("qty").to_numpy(), rows.get_column("fpos").to_numpy()
    columns = [*kernels.windows(qty, fpos, params.ma_windows, params.std_windows),
               stock.on_hand(grid, stock_rows)]
    starts = None
    if seeds is not None:  # each seed on its series' row, NaN elsewhere
        at = grid.locate(seeds)
        on_grid = at.is_not_null()
        for span in params.ema_spans:
            seed = np.full(rows.height, np.nan)
            seed[at.filter(on_grid).to_numpy()] = seeds.get_column(f"ema_{span}").filter(
                on_grid).to_numpy()
            columns.append(pl.Series(f"seed_{span}", seed))
        starts = {s: pl.col(f"seed_{s}").fill_nan(pl.col("qty")) for s in params.ema_spans}
    frame = rows.with_columns(*columns, *kernels.lags(params.lags))
    if params.ma_windows:
        frame = frame.with_columns(stock.days_of_cover(f"ma_{min(params.ma_windows)}"))
    if first_day is not None:
        frame = frame.filter(pl.col("date") >= first_day)
    frame = frame.with_columns(kernels.emas(params.ema_spans, starts))
    return frame.select(wide_schema(params).names())
