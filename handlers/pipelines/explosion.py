"""bom_exploded: a client's bill of materials exploded, and the component demand and component
features its sales imply (handlers.pipelines.components), all from one read of its inputs."""

from __future__ import annotations

import asyncio
import contextlib
import time

import polars as pl
from pydantic import BaseModel, Field

import bom
from core.errors import Superseded
from handlers.pipelines import components
from settings import Config
from store import Store


class BomExploded(BaseModel):
    """`data` of bom_exploded."""

    products_count: int = Field(ge=0, description="top products (parents never a child)")
    rows: int = Field(ge=0, description="bom_exploded rows written (product, leaf component)")
    processing_time_ms: int = Field(ge=0)
    components_count: int = Field(0, ge=0, description="components below the top products")
    date_ranges: int = Field(0, ge=0, description="distinct effective date ranges (1 if none)")
    exploded_rows: int = Field(0, ge=0, description="bom_exploded_dated rows written")
    demand_rows: int = Field(0, ge=0, description="component_demand rows the client has")
    feature_rows: int = Field(0, ge=0, description="component_features rows the client has")


def dated_rows(exploded: pl.DataFrame) -> pl.DataFrame:
    """bom_exploded_dated rows: explode_dated's with each (product, component, lead)'s ranges
    numbered 1.. in date order (their key: valid_from may be null)."""
    return exploded.with_columns(range_no=pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over(
        "product_id", "component_id", "lead_days"))


async def explode_bom(store: Store, client_id: str, config: Config, version: int
                      ) -> BomExploded:
    """Explode a client's BOM and recompute its component demand and features. A cycle, a bad
    line or a too-deep tree raises (FatalError) before anything is written: the previous
    results stay in the store untouched."""
    started = time.perf_counter()
    lines, sales, stock = await asyncio.gather(
        *(store.read(table, client_id) for table in ("bom", "sales", "stock")))
    lines, depth = components.ordered(lines), config.bom.max_depth

    def compute() -> tuple[pl.DataFrame, pl.DataFrame, components.Components]:
        dated = bom.explode_dated(lines, depth)
        return (bom.explode(lines, depth), dated,
                components.compute(sales, stock, dated, config.features))

    leaves, dated, parts = await asyncio.to_thread(compute)
    rows, exploded_rows = await asyncio.gather(
        store.replace("bom_exploded", client_id, leaves, version=version),
        store.replace("bom_exploded_dated", client_id, dated_rows(dated), version=version))
    # A sales or stock refresh of a newer event may have written the component tables already,
    # from this BOM or a newer one (the integrator writes before it publishes): theirs stand.
    with contextlib.suppress(Superseded):
        await components.write(store, client_id, parts, version)
    demand_rows, feature_rows = parts.demand.height, parts.features.height
    return BomExploded(
        products_count=dated["product_id"].n_unique(), rows=rows,
        processing_time_ms=round((time.perf_counter() - started) * 1000),
        components_count=dated["component_id"].n_unique(),
        date_ranges=dated.select("valid_from", "valid_to").n_unique() if dated.height else 0,
        exploded_rows=exploded_rows, demand_rows=demand_rows, feature_rows=feature_rows)
