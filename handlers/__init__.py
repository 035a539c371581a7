"""The handlers: one decorated function per event type, each a thin call into a pipeline
(handlers.pipelines) and a decorated output for what it produces (seed «Маппинг событий»).

The delivery policy (acks, retries with backoff, reclaim, DLQ, duplicates, coalescing) is applied
to every route here by app.delivery, so a new handler is one decorated function, plus its stream
in `messenger.subscriber.streams` of the YAML:

    @routes.on("returns-updates", "returns_updated")
    async def returns_updated(event: Event, store: StoreDep) -> None: ...
"""

from __future__ import annotations

from core.events import Event
from handlers import pipelines
from handlers.pipelines.components import refresh_components
from handlers.routing import ConfigDep, Routes, StoreDep, VersionDep

routes = Routes()

# The outputs; `publisher.streams` in the config may route an event type elsewhere.
features_updated = routes.output("features_updated", "features-updates")
bom_exploded = routes.output("bom_exploded", "bom-exploded")


@features_updated
@routes.on("sales-updates", "sales_updated")
@routes.on("stock-updates", "stock_updated")
async def recompute_features(event: Event, store: StoreDep, config: ConfigDep,
                             version: VersionDep) -> Event:
    done = await pipelines.refresh_features(store, event.client_id, config.current, version,
                                            pipelines.date_from(event.data))
    await refresh_components(store, event.client_id, config.current, version)  # BOM's demand
    return event.reply("features_updated", done)


@bom_exploded
@routes.on("bom-updates", "bom_updated")
async def explode_bom(event: Event, store: StoreDep, config: ConfigDep,
                      version: VersionDep) -> Event:
    done = await pipelines.explode_bom(store, event.client_id, config.current, version)
    return event.reply("bom_exploded", done)


@routes.on("products-updates", "products_updated")
async def refresh_products(event: Event, store: StoreDep, config: ConfigDep,
                           version: VersionDep) -> None:
    await pipelines.refresh_products(store, event.client_id, config.current, version)
    # the features skip products made inactive (and take them back): recompute what changed
    await pipelines.refresh_features(store, event.client_id, config.current, version)
