"""Seasonality profiles: facts about a product, not about a day, so one small frame per
(client_id, product_id, kind, period) instead of a column copied onto every date.

    kind "dow", period 1..7 (ISO weekday, Monday = 1) | kind "moy", period 1..12 (month)
    value = (mean daily qty of the product in that period) / (its mean daily qty over all days)

over every day of the product's grid, all years together; null when the product's mean is 0. The
frame also carries what the value is computed from, `qty_sum` (the period's days' qty summed)
and `days` (how many days): an incremental recompute adds the new days' sums and subtracts the
replaced days' instead of reading the whole history. The sums are Decimal(38, 18): integer
arithmetic, exact in any order, so added and subtracted piecewise they equal the full sum to the
last digit (a float sum would not). Each day's qty enters the sum rounded to 18 decimals; sums
must stay below 1e20 in magnitude.
"""

from __future__ import annotations

import polars as pl

from core.errors import FatalError
from features.grid import KEYS

SUM = pl.Decimal(38, 18)
PROFILE_SCHEMA = pl.Schema({
    "client_id": pl.String(), "product_id": pl.String(), "kind": pl.String(),
    "period": pl.Int32(), "value": pl.Float64(), "qty_sum": SUM, "days": pl.Int64(),
})
AGGREGATE = ["client_id", "product_id", "kind", "period"]
PERIODS = {"dow": pl.col("date").dt.weekday(), "moy": pl.col("date").dt.month()}


def sums(days: pl.DataFrame) -> pl.DataFrame:
    """(client_id, product_id, kind, period, qty_sum, days) of daily rows (client_id,
    product_id, date, qty)."""
    try:
        return pl.concat([
            days.lazy()
            .group_by(*KEYS, period.cast(pl.Int32).alias("period"))
            .agg(qty_sum=pl.col("qty").cast(SUM).sum(), days=pl.len().cast(pl.Int64))
            .select(*KEYS, kind=pl.lit(kind), period="period", qty_sum="qty_sum", days="days")
            for kind, period in PERIODS.items()
        ]).collect()
    except pl.exceptions.ComputeError as error:  # a qty or a sum out of SUM's range
        raise FatalError(f"sales: a daily qty too large for the seasonality sums: {error}"
                         ) from None


def empty_sums() -> pl.DataFrame:
    return PROFILE_SCHEMA.to_frame().drop("value")


def combine(base: pl.DataFrame, added: pl.DataFrame, removed: pl.DataFrame) -> pl.DataFrame:
    """base + added - removed, per (client_id, product_id, kind, period); periods left with no
    day are dropped."""
    def signed(frame: pl.DataFrame, sign: int) -> pl.LazyFrame:
        return frame.lazy().select(*AGGREGATE, qty_sum=pl.col("qty_sum") * sign,
                                   days=pl.col("days") * sign)
    return (
        pl.concat([signed(base, 1), signed(added, 1), signed(removed, -1)])
        .group_by(AGGREGATE).agg(pl.col("qty_sum").sum(), pl.col("days").sum())
        .filter(pl.col("days") > 0)
        .collect()
    )


def profiles(aggregates: pl.DataFrame) -> pl.DataFrame:
    """PROFILE_SCHEMA rows, sorted, from (client_id, product_id, kind, period, qty_sum, days)."""
    if aggregates.is_empty():
        return PROFILE_SCHEMA.to_frame()
    mean = pl.col("qty_sum").cast(pl.Float64) / pl.col("days")
    # The same total through both kinds; taken from one so both divide by the same number.
    total = pl.col("qty_sum").filter(pl.col("kind") == "dow").sum().over(KEYS)
    total_days = pl.col("days").filter(pl.col("kind") == "dow").sum().over(KEYS)
    overall = total.cast(pl.Float64) / total_days
    return (
        aggregates.lazy()
        .with_columns(value=pl.when(total != 0).then(mean / overall))
        .select(PROFILE_SCHEMA.names())
        .cast(dict(PROFILE_SCHEMA))  # type: ignore[arg-type]
        .sort(AGGREGATE)
        .collect()
    )
