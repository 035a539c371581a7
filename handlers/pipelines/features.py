"""features_updated: a client's features recomputed from its sales, stock and product metadata
into the feature store's tables (daily_features, feature_profiles), from where its inputs
changed on.

    1. where: the kept digests against the server's (handlers.pipelines.changes) -> nothing to
       do, a full recompute, or from a date on (narrowed by the event's data.date_from)
    2. read: from that date minus the windows' warm-up (features.plan_from) only: the sales and
       the stored wide rows; the stock whole, the profiles, the product metadata
    3. compute off the event loop (features.compute_since; in full with features.compute); a
       Replan (history rewritten before the date, a product new, deleted or made inactive, ...)
       goes back to 2 from its date, or in full
    4. write at the run's version: the wide rows from the first day that differs from the
       stored ones (replace since=), every profile, then the digests of what was read (last: a
       run that dies before leaves the old digests, and the next run redoes the work)

A redelivered event finds the digests it wrote: nothing changed, nothing is written.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass, field

import polars as pl
from pydantic import BaseModel, Field

import features
from core import logs
from features import FeatureParams, Features, Plan, Replan
from handlers.pipelines import changes
from handlers.pipelines.changes import Start
from settings import Config
from store import Store

log = logs.get("features")


class FeaturesUpdated(BaseModel):
    """`data` of features_updated (seed «Исходящие события», plus what was done)."""

    features_count: int = Field(ge=0, description="feature columns, and the two profiles")
    processing_time_ms: int = Field(ge=0)
    feature_types: list[str]
    rows: int = Field(0, ge=0, description="daily_features rows written for the client")
    profile_rows: int = Field(0, ge=0, description="feature_profiles rows written")
    incremental: bool = Field(True, description="false: the client was recomputed in full")
    since: dt.date | None = Field(None, description="the rows from this date on were rewritten "
                                  "(null: all of them, or none when rows is 0)")
    reason: str = Field("", description="why the recompute started where it did")
    rows_read: dict[str, int] = Field(default_factory=dict, description="rows read, per table")
    stages_ms: dict[str, int] = Field(default_factory=dict,
                                      description="milliseconds in check, read, compute, write")


@dataclass
class _Run:
    """One recompute's bookkeeping."""

    started: float = field(default_factory=time.perf_counter)
    read: dict[str, int] = field(default_factory=dict)
    ms: dict[str, float] = field(default_factory=dict)

    async def gather(self, stage: str, store: Store, client: str,
                     reads: dict[str, dt.date | None]) -> dict[str, pl.DataFrame]:
        began = time.perf_counter()
        frames = await asyncio.gather(*(store.read(t, client, since=s) for t, s in reads.items()))
        self.took(stage, began)
        for table, frame in zip(reads, frames, strict=True):
            self.read[table] = self.read.get(table, 0) + frame.height
        return dict(zip(reads, frames, strict=True))

    def took(self, stage: str, began: float) -> None:
        if stage:  # "": timed by the caller (reads run beside other work)
            self.ms[stage] = self.ms.get(stage, 0.0) + (time.perf_counter() - began) * 1000


async def refresh_features(store: Store, client_id: str, config: Config, version: int,
                           date_from: dt.date | None = None) -> FeaturesUpdated:
    """Recompute a client's features where its inputs changed (the module doc); `date_from`:
    the event's data.date_from (changes.date_from)."""
    params, run = config.features, _Run()
    began = time.perf_counter()
    kept_frames, digests = await asyncio.gather(
        run.gather("", store, client_id, {"input_digests": None, "product_meta": None}),
        asyncio.gather(*(store.digest(s, client_id, by_product=False, columns=values)
                         for s, values in changes.SOURCES.items())))
    meta = kept_frames["product_meta"]
    now = changes.observed(dict(zip(changes.SOURCES, digests, strict=True)), params, meta)
    where = changes.start(kept_frames["input_digests"].drop("client_id"), now, date_from)
    run.took("check", began)
    if where is None:
        return _done(run, params, None, Start(None, "no input changed since the last recompute"),
                     written=(0, 0), families=features.families(params, digests[1]),
                     incremental=True)
    month = where.read_from
    while True:
        try:
            result = await _compute(store, client_id, params, meta, where, run)
            break
        except Replan as replan:
            log.info("features of %s: %s", client_id, replan, client_id=client_id)
            where = Start(replan.since, str(replan), None if replan.since is None else month)
    began = time.perf_counter()
    written = await _write(store, client_id, result, now, where.digests_from, version)
    run.took("write", began)
    return _done(run, params, result.since, where, written, result.families,
                 incremental=where.since is not None)


async def _compute(store: Store, client_id: str, params: FeatureParams, meta: pl.DataFrame,
                   where: Start, run: _Run) -> Features:
    if where.since is None:
        got = await run.gather("read", store, client_id, {"sales": None, "stock": None})
        began = time.perf_counter()
        result = await asyncio.to_thread(features.compute, got["sales"], got["stock"], meta,
                                         params)
        run.took("compute", began)
        return result
    plan = features.plan_from(where.since, params)
    floor = min(plan.read_since, where.read_from or plan.read_since)
    got = await run.gather("read", store, client_id, {
        "sales": floor, "daily_features": floor, "stock": None, "feature_profiles": None})
    began = time.perf_counter()
    try:
        return await asyncio.to_thread(
            features.compute_since, Plan(where.since, floor), got["sales"], got["stock"], meta,
            params, got["daily_features"], got["feature_profiles"])
    finally:
        run.took("compute", began)


async def _write(store: Store, client_id: str, result: Features, now: pl.DataFrame,
                 digests_from: dt.date | None, version: int) -> tuple[int, int]:
    """Wide rows, profiles, then the digests (from the first changed month on; None: all)."""
    rows = await store.replace("daily_features", client_id, result.wide, since=result.since,
                               version=version)
    stored_profiles = result.profiles.with_columns(pl.col("qty_sum").cast(pl.String))
    profile_rows = await store.replace("feature_profiles", client_id, stored_profiles,
                                       version=version)
    kept = now if digests_from is None else now.filter(pl.col("date") >= digests_from)
    await store.replace("input_digests", client_id, kept, since=digests_from, version=version)
    return rows, profile_rows


def _done(run: _Run, params: FeatureParams, since: dt.date | None, where: Start,
          written: tuple[int, int], families: list[str], *, incremental: bool
          ) -> FeaturesUpdated:
    columns = [c for c in features.wide_schema(params).names()[4:]
               if "stock" in families or c not in ("stock_on_hand", "days_of_cover")]
    return FeaturesUpdated(
        features_count=len(columns) + (2 if params.seasonality else 0),
        processing_time_ms=round((time.perf_counter() - run.started) * 1000),
        feature_types=families, rows=written[0], profile_rows=written[1],
        incremental=incremental, since=since,
        reason=where.reason, rows_read=run.read,
        stages_ms={k: round(v) for k, v in run.ms.items()})
