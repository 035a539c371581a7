"""bom_exploded: a client's bill of materials exploded into per-product component quantities."""

from __future__ import annotations

import polars as pl
from pydantic import BaseModel, Field

import bom
from handlers.pipelines.run import recompute
from settings import Config
from store import Store


class BomExploded(BaseModel):
    """`data` of bom_exploded."""

    products_count: int = Field(ge=0)
    rows: int = Field(ge=0, description="(product, component) rows written for the client")
    processing_time_ms: int = Field(ge=0)


async def explode_bom(store: Store, client_id: str, config: Config, version: int
                      ) -> BomExploded:
    """Explode a client's BOM. A cycle, a bad quantity or a too-deep tree raises (FatalError) and
    the previous exploded BOM stays in the store untouched."""

    def compute(edges: pl.DataFrame) -> tuple[pl.DataFrame, int]:
        exploded = bom.explode(edges, config.bom.max_depth)
        return exploded, exploded.get_column("product_id").n_unique()

    rows, products, ms = await recompute(store, client_id, ("bom",), "bom_exploded", compute,
                                          version)
    return BomExploded(products_count=products, rows=rows, processing_time_ms=ms)
