"""features_updated: a client's features recomputed from its sales, stock and product metadata."""

from __future__ import annotations

import polars as pl
from pydantic import BaseModel, Field

import features
from handlers.pipelines.run import recompute
from settings import Config
from store import Store


class FeaturesUpdated(BaseModel):
    """`data` of features_updated (seed «Исходящие события»)."""

    features_count: int = Field(ge=0)
    processing_time_ms: int = Field(ge=0)
    feature_types: list[str]
    rows: int = Field(0, ge=0, description="feature rows written for the client")


async def refresh_features(store: Store, client_id: str, config: Config, version: int
                           ) -> FeaturesUpdated:
    """Recompute a client's features from its sales, stock and product metadata."""

    def compute(sales: pl.DataFrame, stock: pl.DataFrame, meta: pl.DataFrame
                ) -> tuple[pl.DataFrame, features.FeatureResult]:
        result = features.compute_features(sales, stock, meta, config.features)
        return result.frame, result

    rows, result, ms = await recompute(
        store, client_id, ("sales", "stock", "product_meta"), "features", compute, version)
    return FeaturesUpdated(features_count=len(result.feature_names),
                           feature_types=result.feature_types, rows=rows, processing_time_ms=ms)
