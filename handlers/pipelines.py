"""What the handlers do, in one place: read a client's data from the store, compute with the pure
`features` / `bom` modules, replace the client's results in the store, and say what was done.

Each pipeline is idempotent (the store replaces a client's rows by key), so a redelivered event
leaves the store as after the first time. `secretmagic recompute` runs the same pipelines without
the messenger (PIPELINES names them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import polars as pl
from pydantic import BaseModel, Field

import bom
import features
from settings import Config
from store import Store


class FeaturesUpdated(BaseModel):
    """`data` of features_updated (seed «Исходящие события»)."""

    features_count: int = Field(ge=0)
    processing_time_ms: int = Field(ge=0)
    feature_types: list[str]
    rows: int = Field(0, ge=0, description="feature rows written for the client")


class BomExploded(BaseModel):
    """`data` of bom_exploded."""

    products_count: int = Field(ge=0)
    rows: int = Field(ge=0, description="(product, component) rows written for the client")
    processing_time_ms: int = Field(ge=0)


class ProductsRefreshed(BaseModel):
    rows: int = Field(ge=0, description="product_meta rows written for the client")
    processing_time_ms: int = Field(ge=0)


async def _recompute(store: Store, client_id: str, inputs: tuple[str, ...], output: str,
                     compute: Callable[..., tuple[pl.DataFrame, Any]], version: int
                     ) -> tuple[int, Any, int]:
    """Read `inputs`, run `compute(*frames) -> (rows for output, details)` on a worker thread
    (polars releases the GIL, so the event loop stays responsive), replace the client's `output`
    rows at `version` (Superseded if the store holds a newer one); (rows written, details,
    milliseconds taken)."""
    started = time.perf_counter()
    frames = await asyncio.gather(*(store.read(table, client_id) for table in inputs))
    rows, details = await asyncio.to_thread(compute, *frames)
    written = await store.replace(output, client_id, rows, version=version)
    return written, details, round((time.perf_counter() - started) * 1000)


async def refresh_features(store: Store, client_id: str, config: Config, version: int
                           ) -> FeaturesUpdated:
    """Recompute a client's features from its sales, stock and product metadata."""

    def compute(sales: pl.DataFrame, stock: pl.DataFrame, meta: pl.DataFrame
                ) -> tuple[pl.DataFrame, features.FeatureResult]:
        result = features.compute_features(sales, stock, meta, config.features)
        return result.frame, result

    rows, result, ms = await _recompute(
        store, client_id, ("sales", "stock", "product_meta"), "features", compute, version)
    return FeaturesUpdated(features_count=len(result.feature_names),
                           feature_types=result.feature_types, rows=rows, processing_time_ms=ms)


async def explode_bom(store: Store, client_id: str, config: Config, version: int
                      ) -> BomExploded:
    """Explode a client's BOM. A cycle, a bad quantity or a too-deep tree raises (FatalError) and
    the previous exploded BOM stays in the store untouched."""

    def compute(edges: pl.DataFrame) -> tuple[pl.DataFrame, int]:
        exploded = bom.explode(edges, config.bom.max_depth)
        return exploded, exploded.get_column("product_id").n_unique()

    rows, products, ms = await _recompute(store, client_id, ("bom",), "bom_exploded", compute,
                                          version)
    return BomExploded(products_count=products, rows=rows, processing_time_ms=ms)


async def refresh_products(store: Store, client_id: str, _config: Config, version: int
                           ) -> ProductsRefreshed:
    """Snapshot a client's product metadata (what the features filter on) from the integrator's
    products table into product_meta."""

    def compute(products: pl.DataFrame) -> tuple[pl.DataFrame, None]:
        meta = products.select("client_id", "product_id", "category",
                               pl.col("active").fill_null(True))
        return meta.unique(["client_id", "product_id"], keep="last"), None

    rows, _, ms = await _recompute(store, client_id, ("products",), "product_meta", compute,
                                   version)
    return ProductsRefreshed(rows=rows, processing_time_ms=ms)


# What `secretmagic recompute --what NAME` runs, in this order for --what all.
PIPELINES: dict[str, Callable[[Store, str, Config, int], Awaitable[BaseModel]]] = {
    "products": refresh_products,
    "features": refresh_features,
    "bom": explode_bom,
}
