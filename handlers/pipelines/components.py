"""Component demand and its features: what a client's sales of top products imply for their
components day by day (bom.component_demand over bom.explode_dated), and the feature families
over that demand series (features.compute; a component's own stock rows give stock_on_hand).

Written as three tables, each replaced whole for the client at the run's version (idempotent):
component_demand (a row where some sale implies demand), component_features (daily_features'
layout, component_id for product_id, `demand` the daily series in place of qty) and
component_profiles (feature_profiles' layout). `bom_updated` writes them with the explosion
(handlers.pipelines.explosion); `sales_updated` and `stock_updated` refresh them with
`refresh_components` (the client's components in full: the product pipeline's change detection
is not used here yet).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass

import polars as pl
from pydantic import BaseModel, Field

import bom
import features
from core import logs
from core.errors import Superseded
from settings import Config
from store import Store

OUTPUTS = ("component_demand", "component_features", "component_profiles")
_SAME = 1e-12  # relative difference of two values first_change takes as one

log = logs.get("bom")


@dataclass(frozen=True)
class Components:
    """What the component tables receive for one client."""

    demand: pl.DataFrame  # bom.DEMAND_SCHEMA
    features: pl.DataFrame  # client_id, component_id, date, demand, then the feature columns
    profiles: pl.DataFrame  # client_id, component_id, kind, period, value

    def frames(self) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        return self.demand, self.features, self.profiles


def compute(sales: pl.DataFrame, stock: pl.DataFrame, exploded_dated: pl.DataFrame,
            params: features.FeatureParams) -> Components:
    """The component tables' rows from one client's sales and stock and its dated explosion."""
    demand = bom.component_demand(sales, exploded_dated)
    series = demand.select("client_id", "date", product_id="component_id", qty="demand")
    own_stock = stock.filter(pl.col("product_id").is_in(demand["component_id"].unique().implode()))
    result = features.compute(series, own_stock, None, params)
    return Components(
        demand,
        result.wide.rename({"product_id": "component_id", "qty": "demand"}),
        result.profiles.select("client_id", "kind", "period", "value",
                               component_id="product_id"),
    )


def ordered(lines: pl.DataFrame) -> pl.DataFrame:
    """A client's BOM lines as read from the store in key order, so that the line numbers bom's
    errors name are the same on every backend and every read."""
    return lines.sort("parent_id", "child_id", "valid_from", nulls_last=False)


async def write(store: Store, client_id: str, parts: Components, version: int) -> list[int]:
    """Make the client's rows of the three tables `parts` (the rows it has now, in OUTPUTS
    order). The dated tables are rewritten from the first date on which they differ from the
    stored rows (nothing if none does: a sale appended rewrites the last days, not the
    history); the profiles, a few rows per component, in full."""
    demand, daily, profiles = parts.frames()
    await asyncio.gather(
        _from_first_change(store, client_id, "component_demand", demand, version),
        _from_first_change(store, client_id, "component_features", daily, version),
        store.replace("component_profiles", client_id, profiles, version=version))
    return [frame.height for frame in parts.frames()]


async def _from_first_change(store: Store, client_id: str, table: str, frame: pl.DataFrame,
                             version: int) -> None:
    stored = await store.read(table, client_id)
    since = first_change(stored, frame)
    if since is not None:
        await store.replace(table, client_id, frame.filter(pl.col("date") >= since),
                            since=since, version=version)


def first_change(stored: pl.DataFrame, frame: pl.DataFrame) -> dt.date | None:
    """The first date with a (component, date) in one frame and not the other, or a value that
    differs by more than 1e-12 relative (None if none does: the explosion sums shared paths in
    no fixed order, so two runs on the same data may differ in the last bits; rows within that
    are kept as stored, as bom treats such quantities as one). A column `frame` has and
    `stored` lacks (a new feature) changes every row."""
    if not set(frame.columns) <= set(stored.columns):
        dates = pl.concat([frame["date"], stored["date"]])
        return dates.min() if dates.len() else None  # type: ignore[return-value]
    key = ["client_id", "component_id", "date"]
    joined = frame.with_columns(_new=pl.lit(True)).join(
        stored.select(frame.columns).with_columns(_old=pl.lit(True)), on=key, how="full",
        coalesce=True, suffix="_old")

    def same(column: str) -> pl.Expr:
        new, old = pl.col(column), pl.col(f"{column}_old")
        close = (new - old).abs() <= _SAME * pl.max_horizontal(new.abs(), old.abs())
        return (new.is_null() & old.is_null()) | close.fill_null(False)

    changed = joined.filter(pl.col("_new").is_null() | pl.col("_old").is_null()
                            | ~pl.all_horizontal(same(c) for c in frame.columns if c not in key))
    return changed["date"].min() if changed.height else None  # type: ignore[return-value]


class ComponentsRefreshed(BaseModel):
    components_count: int = Field(ge=0)
    demand_rows: int = Field(ge=0, description="component_demand rows the client has")
    feature_rows: int = Field(ge=0, description="component_features rows the client has")
    processing_time_ms: int = Field(ge=0)
    skipped: str | None = Field(None, description="why nothing was written, if so")


async def refresh_components(store: Store, client_id: str, config: Config, version: int
                             ) -> ComponentsRefreshed:
    """After a client's sales or stock changed: recompute its component tables from its BOM.
    A client without BOM lines has no components (nothing is read further or written). A bad
    BOM is the bom_updated event's failure (dead-lettered there), not the sales event's: the
    component tables are left as they are and the reason is logged and returned."""
    started = time.perf_counter()
    lines = ordered(await store.read("bom", client_id))

    def done(parts: Components | None = None, written: list[int] | None = None,
             skipped: str | None = None) -> ComponentsRefreshed:
        return ComponentsRefreshed(
            components_count=0 if parts is None else parts.demand["component_id"].n_unique(),
            demand_rows=written[0] if written else 0, feature_rows=written[1] if written else 0,
            processing_time_ms=round((time.perf_counter() - started) * 1000), skipped=skipped)

    if lines.is_empty():
        return done(skipped="no BOM lines")
    sales, stock = await asyncio.gather(store.read("sales", client_id),
                                        store.read("stock", client_id))

    def run() -> Components:
        return compute(sales, stock, bom.explode_dated(lines, config.bom.max_depth),
                       config.features)

    try:
        parts = await asyncio.to_thread(run)
    except (bom.BomDataError, bom.BomCycleError, bom.BomDepthError) as error:
        log.warning("component demand not refreshed: the BOM is invalid", client_id=client_id,
                    error=str(error))
        return done(skipped=f"invalid BOM: {error}")
    try:
        return done(parts, await write(store, client_id, parts, version))
    except Superseded:  # a newer run (a bom_updated) already wrote them: the product features
        return done(skipped="superseded by a newer write")  # of this event still count
