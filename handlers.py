"""The handlers: one decorated subscriber per incoming stream, each a thin call into `features` or
`bom` and a decorated publisher for what it produces (seed: «Маппинг событий»).

The delivery policy (acks, retries with backoff, reclaim, DLQ, duplicates, coalescing) is applied
to every subscriber here by app.consumer, so a new handler is one more decorated function:

    @on("returns-updates", "returns_updated")
    async def returns_updated(event: Event, store: StoreDep) -> None: ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from faststream import Context
from faststream.redis import RedisRouter

import bom
import features
from app.broker import stream_subscriber
from app.config import LiveConfig
from app.events import Event
from store import Store

router = RedisRouter()
StoreDep = Annotated[Store, Context("store")]
ConfigDep = Annotated[LiveConfig, Context("config")]


# The decorated publishers: `publisher.streams` in the config may route an event_type elsewhere.
features_out = router.publisher(stream="features-updates", title="features_updated")
bom_out = router.publisher(stream="bom-exploded", title="bom_exploded")


def on(stream: str, event_type: str) -> Callable[[Callable[..., Any]], Any]:
    """Subscribe the decorated handler to `event_type` events on `stream` (the consumer group)."""
    return stream_subscriber(router, stream, event_type)


@on("sales-updates", "sales_updated")
@features_out
async def sales_updated(event: Event, store: StoreDep, config: ConfigDep) -> Event:
    done = await features.refresh(store, event.client_id, config.current.features)
    return event.reply("features_updated", done)


@on("stock-updates", "stock_updated")
@features_out
async def stock_updated(event: Event, store: StoreDep, config: ConfigDep) -> Event:
    done = await features.refresh(store, event.client_id, config.current.features)
    return event.reply("features_updated", done)


@on("bom-updates", "bom_updated")
@bom_out
async def bom_updated(event: Event, store: StoreDep, config: ConfigDep) -> Event:
    done = await bom.refresh(store, event.client_id, config.current.bom.max_depth)
    return event.reply("bom_exploded", done)


@on("products-updates", "products_updated")
async def products_updated(event: Event, store: StoreDep) -> None:
    await features.refresh_products(store, event.client_id)
