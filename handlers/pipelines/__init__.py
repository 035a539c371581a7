"""What the handlers do, in one place: read a client's data from the store, compute with the pure
`features` / `bom` modules, replace the client's results in the store, and say what was done.

Each pipeline is idempotent (the store replaces a client's rows by key), so a redelivered event
leaves the store as after the first time. `secretmagic recompute` runs the same pipelines without
the messenger (PIPELINES names them).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pydantic import BaseModel

from handlers.pipelines.changes import date_from
from handlers.pipelines.explosion import BomExploded, explode_bom
from handlers.pipelines.features import FeaturesUpdated, refresh_features
from handlers.pipelines.products import ProductsRefreshed, refresh_products
from settings import Config
from store import Store

__all__ = ["PIPELINES", "BomExploded", "FeaturesUpdated", "ProductsRefreshed", "date_from",
           "explode_bom",
           "refresh_features", "refresh_products"]

# What `secretmagic recompute --what NAME` runs, in this order for --what all.
PIPELINES: dict[str, Callable[[Store, str, Config, int], Awaitable[BaseModel]]] = {
    "products": refresh_products,
    "features": refresh_features,
    "bom": explode_bom,
}
