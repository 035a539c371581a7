"""ML features from a client's sales (and stock) history: pure polars, no I/O (the pipeline that
reads a client's data from the store and writes its features back is handlers.pipelines).

`compute_features(sales, stock, products, params)` returns the features in long format
(client_id, product_id, date, feature, value), the shape the store upserts by
(client_id, product_id, date, feature).

Definitions (per (client_id, product_id); `qty` below is the *daily series*):

- daily series: sales qty summed per date (null qty counts as 0); every date between the
  product's first and last sale date is present, missing dates filled with qty 0. Sales rows
  with a null client_id, product_id or date are ignored (they cannot be placed on the grid).
- ``ema_{s}``: exponentially weighted mean with span s (alpha = 2 / (s + 1)), adjust=False:
  ema[0] = qty[0], ema[t] = alpha * qty[t] + (1 - alpha) * ema[t-1].
- ``ma_{w}``: mean of the last w days (this one included); null until w days exist.
- ``std_{w}``: sample standard deviation (ddof=1) of the last w days; null until w days exist.
- ``lag_{k}``: qty k days earlier; null for the first k days.
- ``dow_profile`` / ``moy_profile`` (params.seasonality): mean daily qty of the product on
  that weekday / in that calendar month (all years together), divided by the product's mean
  daily qty over all days; null when that mean is 0. Both use the whole history, future
  days included: they describe the product's seasonal shape, not a point-in-time forecast.
- ``stock_on_hand`` (stock given and non-empty): the on_hand of the latest stock row at or
  before the date (stock rows may fall outside the sales grid); null before the first stock
  row. Several stock rows for one date (e.g. several warehouses) are summed; null on_hand rows
  are ignored.
- ``days_of_cover``: stock_on_hand / ma_{params.ma_windows[0]} where that ma is > 0, else
  null; only when ma_windows is not empty.

Products: when `products` is given, those with active == False are excluded; products absent
from it (or with a null active) count as active.

Output: rows whose value is null or NaN are dropped; one row per (client_id, product_id,
date, feature), in no particular order (the store upserts by that key). `feature_names` lists
every feature column computed (sorted), even one null everywhere for this input (e.g. ma_28 on
10 days of history); `feature_types` lists the families produced, in the seed's order. Empty
sales (after the product filter) give an empty frame and empty lists.
"""

from dataclasses import dataclass
from typing import Annotated

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator

KEYS = ["client_id", "product_id"]

FEATURE_SCHEMA = pl.Schema(
    {
        "client_id": pl.Utf8,
        "product_id": pl.Utf8,
        "date": pl.Date,
        "feature": pl.Utf8,
        "value": pl.Float64,
    }
)

PositiveInt = Annotated[int, Field(strict=True, gt=0)]
StdWindow = Annotated[int, Field(strict=True, ge=2)]  # a sample std needs two values


class FeatureParams(BaseModel):
    """Feature parameters (the `features:` section of the mutable config).

    An empty tuple switches that family off; `seasonality: false` switches off the profiles.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    ema_spans: tuple[PositiveInt, ...] = (7, 28)
    ma_windows: tuple[PositiveInt, ...] = (7, 28)
    std_windows: tuple[StdWindow, ...] = (7, 28)
    lags: tuple[PositiveInt, ...] = (1, 7, 28)
    seasonality: bool = True

    @field_validator("ema_spans", "ma_windows", "std_windows", "lags")
    @classmethod
    def _distinct(cls, values: tuple[int, ...]) -> tuple[int, ...]:
        # Duplicates would produce two columns with one name.
        duplicates = sorted({v for v in values if values.count(v) > 1})
        if duplicates:
            raise ValueError(f"duplicate values {duplicates}")
        return values


@dataclass(frozen=True)
class FeatureResult:
    frame: pl.DataFrame  # long format, FEATURE_SCHEMA
    feature_names: list[str]
    feature_types: list[str]


def compute_features(
    sales: pl.DataFrame,
    stock: pl.DataFrame | None,
    products: pl.DataFrame | None,
    params: FeatureParams,
) -> FeatureResult:
    """Compute the features of every (client_id, product_id) in `sales` (see module doc)."""
    daily = _daily_series(sales, products)
    if daily.is_empty():
        return FeatureResult(FEATURE_SCHEMA.to_frame(), [], [])

    qty = pl.col("qty")
    # The grid is sorted by date within each product, so row windows are day windows.
    families: dict[str, list[pl.Expr]] = {
        "ema": [
            qty.ewm_mean(span=s, adjust=False).over(KEYS).alias(f"ema_{s}")
            for s in params.ema_spans
        ],
        "ma": [
            qty.rolling_mean(w, min_samples=w).over(KEYS).alias(f"ma_{w}")
            for w in params.ma_windows
        ],
        "std": [
            qty.rolling_std(w, min_samples=w, ddof=1).over(KEYS).alias(f"std_{w}")
            for w in params.std_windows
        ],
        "lags": [qty.shift(k).over(KEYS).alias(f"lag_{k}") for k in params.lags],
        "seasonality": _seasonality() if params.seasonality else [],
    }
    wide = daily.lazy().with_columns(expr for exprs in families.values() for expr in exprs)
    feature_types = [family for family, exprs in families.items() if exprs]

    if stock is not None and not stock.is_empty():
        wide = _with_stock(wide, stock, params)
        feature_types.append("stock")

    feature_names = sorted(c for c in wide.collect_schema().names() if c not in daily.columns)
    frame = (
        wide.unpivot(
            on=feature_names,
            index=[*KEYS, "date"],
            variable_name="feature",
            value_name="value",
        )
        # A null predicate filters the row out too: this drops nulls and NaNs.
        .filter(pl.col("value").is_not_nan())
        .collect()
    )
    return FeatureResult(frame, feature_names, feature_types)


def _daily_series(sales: pl.DataFrame, products: pl.DataFrame | None) -> pl.DataFrame:
    """(client_id, product_id, date, qty) on a gap-free daily grid, sorted by key and date."""
    sums = (
        sales.lazy()
        .select(
            pl.col(KEYS).cast(pl.Utf8),
            pl.col("date").cast(pl.Date),
            pl.col("qty").cast(pl.Float64),
        )
        .drop_nulls([*KEYS, "date"])
        .group_by([*KEYS, "date"])
        .agg(pl.col("qty").sum())
    )
    if products is not None:
        inactive = (
            products.lazy()
            .filter(~pl.col("active").cast(pl.Boolean))
            .select(pl.col(KEYS).cast(pl.Utf8))
        )
        sums = sums.join(inactive, on=KEYS, how="anti")
    # Sorting the products before exploding their date ranges sorts the grid for free.
    grid = (
        sums.group_by(KEYS)
        .agg(pl.date_range(pl.col("date").min(), pl.col("date").max()))
        .sort(KEYS)
        .explode("date")
    )
    return (
        grid.join(sums, on=[*KEYS, "date"], how="left", maintain_order="left")
        .with_columns(pl.col("qty").fill_null(0.0))
        .collect()
    )


def _seasonality() -> list[pl.Expr]:
    """Weekday and calendar-month profiles, relative to the product's mean daily qty."""
    qty = pl.col("qty")
    product_mean = qty.mean().over(KEYS)
    return [
        pl.when(product_mean != 0).then(qty.mean().over(*KEYS, period) / product_mean).alias(name)
        for name, period in (
            ("dow_profile", pl.col("date").dt.weekday()),
            ("moy_profile", pl.col("date").dt.month()),
        )
    ]


def _with_stock(wide: pl.LazyFrame, stock: pl.DataFrame, params: FeatureParams) -> pl.LazyFrame:
    """Add stock_on_hand (as-of join: latest stock row at or before the date) and cover."""
    on_hand = (
        stock.lazy()
        .select(
            pl.col(KEYS).cast(pl.Utf8),
            pl.col("date").cast(pl.Date),
            pl.col("on_hand").cast(pl.Float64),
        )
        .drop_nulls()
        .group_by([*KEYS, "date"])
        .agg(stock_on_hand=pl.col("on_hand").sum())
        .sort([*KEYS, "date"])
    )
    # Both sides are sorted by date within each (client_id, product_id) group.
    wide = wide.join_asof(on_hand, on="date", by=KEYS, check_sortedness=False)
    if not params.ma_windows:
        return wide
    ma = pl.col(f"ma_{params.ma_windows[0]}")
    return wide.with_columns(
        days_of_cover=pl.when(ma > 0).then(pl.col("stock_on_hand") / ma),
    )
