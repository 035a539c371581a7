"""One client's features as the store keeps them (docs/features.md): its daily_features rows and
its feature_profiles, for `secretmagic features`."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Any

import polars as pl

from store import open_store


@dataclass(frozen=True)
class ClientFeatures:
    client_id: str
    total: int  # the client's rows that match (before the limit)
    rows: pl.DataFrame  # the newest `limit` of them: date descending, then product
    profiles: pl.DataFrame  # the profiles of the products in `rows`

    def as_dict(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "rows": self.total,
                "features": _jsonable(self.rows.drop("client_id")),
                "profiles": _jsonable(self.profiles.drop("client_id"))}


def _jsonable(frame: pl.DataFrame) -> list[dict[str, Any]]:
    dates = [c for c, t in frame.schema.items() if t == pl.Date]
    return frame.with_columns(pl.col(dates).cast(pl.String)).to_dicts()


async def client_features(dsn: str, client_id: str, *, product: str | None = None,
                          since: dt.date | None = None, limit: int = 20) -> ClientFeatures:
    """The client's feature rows (of `product`, from `since` on), newest first, at most
    `limit`; with the profiles of the products shown."""
    store = open_store(dsn)
    try:
        rows, profiles = await asyncio.gather(
            store.read("daily_features", client_id, since=since),
            store.read("feature_profiles", client_id))
    finally:
        await store.close()
    if product is not None:
        rows = rows.filter(pl.col("product_id") == product)
    shown = rows.sort(["date", "product_id"], descending=[True, False]).head(limit)
    products = shown.get_column("product_id").unique().implode()
    profiles = (profiles.filter(pl.col("product_id").is_in(products))
                .select("client_id", "product_id", "kind", "period", "value")
                .sort("product_id", "kind", "period"))
    return ClientFeatures(client_id, rows.height, shown, profiles)
