"""products_updated: the integrator's product metadata snapshotted into product_meta."""

from __future__ import annotations

import polars as pl
from pydantic import BaseModel, Field

from handlers.pipelines.run import recompute
from settings import Config
from store import Store


class ProductsRefreshed(BaseModel):
    rows: int = Field(ge=0, description="product_meta rows written for the client")
    processing_time_ms: int = Field(ge=0)


async def refresh_products(store: Store, client_id: str, _config: Config, version: int
                           ) -> ProductsRefreshed:
    """Snapshot a client's product metadata (what the features filter on) from the integrator's
    products table into product_meta."""

    def compute(products: pl.DataFrame) -> tuple[pl.DataFrame, None]:
        meta = products.select("client_id", "product_id", "category",
                               pl.col("active").fill_null(True))
        return meta.unique(["client_id", "product_id"], keep="last"), None

    rows, _, ms = await recompute(store, client_id, ("products",), "product_meta", compute,
                                   version)
    return ProductsRefreshed(rows=rows, processing_time_ms=ms)
