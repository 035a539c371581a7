"""The long format the pipeline wrote before the wide table: (client_id, product_id, date,
feature, value), the seasonality profiles copied onto every date. Kept for the callers that still
take it (handlers.pipelines) until they move to the wide frame."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from features.grid import KEYS
from features.params import FeatureParams
from features.profiles import PERIODS
from features.wide import compute

FEATURE_SCHEMA = pl.Schema({"client_id": pl.Utf8, "product_id": pl.Utf8, "date": pl.Date,
                            "feature": pl.Utf8, "value": pl.Float64})
STOCK_COLUMNS = ("stock_on_hand", "days_of_cover")


@dataclass(frozen=True)
class FeatureResult:
    frame: pl.DataFrame  # long format, FEATURE_SCHEMA
    feature_names: list[str]
    feature_types: list[str]


def compute_features(sales: pl.DataFrame, stock: pl.DataFrame | None,
                     products: pl.DataFrame | None, params: FeatureParams) -> FeatureResult:
    """The features of `compute` as long rows, null and NaN values left out. `feature_names`
    lists every feature column (sorted; dow_profile and moy_profile with seasonality; the stock
    columns only with stock rows) even one null everywhere; empty sales give an empty frame and
    empty lists."""
    result = compute(sales, stock, products, params)
    if result.wide.is_empty():
        return FeatureResult(FEATURE_SCHEMA.to_frame(), [], [])
    wide = result.wide.drop("qty")
    if "stock" not in result.families:
        wide = wide.drop(STOCK_COLUMNS, strict=False)
    if params.seasonality:
        for kind, period in PERIODS.items():
            by_period = result.profiles.filter(pl.col("kind") == kind).select(
                *KEYS, "period", pl.col("value").alias(f"{kind}_profile"))
            wide = wide.with_columns(period=period.cast(pl.Int32)).join(
                by_period, on=[*KEYS, "period"], how="left").drop("period")
    names = sorted(c for c in wide.columns if c not in (*KEYS, "date"))
    frame = (
        wide.unpivot(on=names, index=[*KEYS, "date"], variable_name="feature",
                     value_name="value")
        # A null predicate filters the row out too: this drops nulls and NaNs.
        .filter(pl.col("value").is_not_nan())
    )
    return FeatureResult(frame, names, result.families)
