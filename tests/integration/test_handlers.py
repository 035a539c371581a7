"""The real handlers in memory (TestRedisBroker, no Redis) on a real embedded store (chDB).

Each handler receives its event type and publishes what it should; the values it writes are
checked against values worked out by hand here; a malformed payload is rejected clearly.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import cast

import polars as pl
import pytest
from dirty_equals import HasAttributes, IsDatetime, IsInt, IsPartialDict, IsUUID
from faststream.exceptions import SubscriberNotFound
from faststream.redis import TestRedisBroker

import handlers
from app.broker import Broker
from core.errors import MalformedEvent
from core.events import Event
from settings import Config, LiveConfig
from store import Store, open_store

PARAMS = {"ema_spans": [2], "ma_windows": [3], "std_windows": [3], "lags": [1],
          "seasonality": False}


@pytest.fixture(scope="module")
async def store() -> AsyncIterator[Store]:
    s = open_store("chdb://")
    await s.create_tables()
    yield s
    await s.close()


@pytest.fixture
async def broker(store: Store) -> AsyncIterator[Broker]:
    """A fresh in-memory broker per test: its handler and publisher mocks start empty."""
    b = Broker()
    b.include_router(handlers.routes)
    b.context.set_global("store", store)
    b.context.set_global("config", LiveConfig(None, Config.model_validate({"features": PARAMS})))
    async with TestRedisBroker(b) as test_broker:
        yield cast(Broker, test_broker)  # `b` itself, patched


@pytest.fixture
def client() -> str:
    return f"client-{uuid.uuid4().hex[:8]}"


def incoming(event_type: str, client: str) -> Event:
    return Event(event_type=event_type, client_id=client,
                 data={"integration_id": "int-1", "table_name": event_type.split("_")[0]})


async def seed_sales(store: Store, client: str, qty: list[float], product: str = "p1") -> None:
    start = dt.date(2025, 1, 1)
    frame = pl.DataFrame({
        "product_id": [product] * len(qty),
        "date": [start + dt.timedelta(days=i) for i in range(len(qty))],
        "qty": qty, "amount": [q * 10 for q in qty]})
    existing = await store.read("sales", client)
    await store.replace("sales", client, pl.concat([existing.drop("client_id"), frame]))


async def test_sales_updated_writes_features_and_publishes_features_updated(
        broker: Broker, store: Store, client: str) -> None:
    await seed_sales(store, client, [3.0, 6.0, 9.0, 0.0])
    await broker.publish(incoming("sales_updated", client), stream="sales-updates")

    handlers.recompute_features.mock.assert_called_once_with(HasAttributes(
        event_type="sales_updated", client_id=client, event_id=IsUUID(4)))
    # By hand, qty 3, 6, 9, 0 on four days; ema span 2 → alpha 2/3; ma/std over 3 days; lag 1.
    ema = [3.0, 3 + 2 / 3 * 3, None, None]
    ema[2] = 2 / 3 * 9 + 1 / 3 * ema[1]  # type: ignore[operator]
    ema[3] = 1 / 3 * ema[2]  # type: ignore[operator]
    expected = {
        ("ema_2", 0): 3.0, ("ema_2", 1): ema[1], ("ema_2", 2): ema[2], ("ema_2", 3): ema[3],
        ("ma_3", 2): 6.0, ("ma_3", 3): 5.0,
        ("std_3", 2): 3.0, ("std_3", 3): (((6 - 5) ** 2 + (9 - 5) ** 2 + (0 - 5) ** 2) / 2) ** 0.5,
        ("lag_1", 1): 3.0, ("lag_1", 2): 6.0, ("lag_1", 3): 9.0,
    }
    rows = await store.read("daily_features", client)
    got = {(name, (r["date"] - dt.date(2025, 1, 1)).days): r[name]
           for r in rows.iter_rows(named=True) for name in ("ema_2", "ma_3", "std_3", "lag_1")
           if r[name] is not None}
    assert got == pytest.approx(expected)

    handlers.features_updated.mock.assert_called_once_with({
        "event_id": IsUUID(4), "event_type": "features_updated", "client_id": client,
        "timestamp": IsDatetime(iso_string=True),
        "data": IsPartialDict({
            "features_count": 4, "feature_types": ["ema", "ma", "std", "lags"],
            "rows": 4, "processing_time_ms": IsInt(ge=0), "incremental": False})})


async def test_redelivered_event_leaves_identical_rows(broker: Broker, store: Store,
                                                       client: str) -> None:
    await seed_sales(store, client, [1.0, 2.0, 4.0, 8.0, 16.0])
    event = incoming("stock_updated", client)
    await broker.publish(event, stream="stock-updates")
    first = (await store.read("daily_features", client)).sort("product_id", "date")
    await broker.publish(event, stream="stock-updates")  # at-least-once: the same event again
    second = (await store.read("daily_features", client)).sort("product_id", "date")
    assert first.height > 0 and first.equals(second)


async def test_products_updated_then_inactive_products_have_no_features(
        broker: Broker, store: Store, client: str) -> None:
    await seed_sales(store, client, [1.0, 2.0, 3.0], product="kept")
    await seed_sales(store, client, [5.0, 5.0, 5.0], product="retired")
    await store.replace("products", client, pl.DataFrame({
        "product_id": ["kept", "retired"], "name": ["Kept", "Retired"],
        "category": ["a", "b"], "active": [True, False]}))
    await broker.publish(incoming("products_updated", client), stream="products-updates")
    meta = await store.read("product_meta", client)
    assert dict(zip(meta["product_id"], meta["active"], strict=True)) == {
        "kept": True, "retired": False}
    await broker.publish(incoming("sales_updated", client), stream="sales-updates")
    products = (await store.read("daily_features", client))["product_id"].unique().to_list()
    assert products == ["kept"]


async def test_bom_updated_explodes_and_publishes_bom_exploded(broker: Broker, store: Store,
                                                               client: str) -> None:
    # A needs 2 B and 3 C; B and C share subassembly D (4 and 5 each); D needs 0.5 E.
    await store.replace("bom", client, pl.DataFrame({
        "parent_id": ["A", "A", "B", "C", "D"], "child_id": ["B", "C", "D", "D", "E"],
        "qty_per": [2.0, 3.0, 4.0, 5.0, 0.5]}))
    await broker.publish(incoming("bom_updated", client), stream="bom-updates")
    rows = (await store.read("bom_exploded", client)).to_dicts()
    assert rows == [{"client_id": client, "product_id": "A", "component_id": "E",
                     "quantity": (2 * 4 + 3 * 5) * 0.5, "depth": 3}]
    handlers.bom_exploded.mock.assert_called_once_with(IsPartialDict(
        event_type="bom_exploded", client_id=client,
        data={"products_count": 1, "rows": 1, "processing_time_ms": IsInt(ge=0),
              # B, C, D, E undated (one range); no sales: no component demand
              "components_count": 4, "date_ranges": 1, "exploded_rows": 4, "demand_rows": 0,
              "feature_rows": 0}))


async def test_bom_cycle_is_fatal_and_names_the_cycle(broker: Broker, store: Store,
                                                      client: str) -> None:
    await store.replace("bom", client, pl.DataFrame({
        "parent_id": ["X", "Y", "Z"], "child_id": ["Y", "Z", "X"], "qty_per": [1.0, 1.0, 1.0]}))
    from bom import BomCycleError

    with pytest.raises(BomCycleError, match="X -> Y -> Z -> X"):
        await broker.publish(incoming("bom_updated", client), stream="bom-updates")


@pytest.mark.parametrize(("payload", "reason"), [
    ({"event_type": "sales_updated", "data": {}}, "missing field(s): client_id"),
    ({"event_type": "sales_updated", "client_id": "c", "data": [1]},
     "field 'data' must be a JSON object, got list"),
    ({"event_type": "sales_updated", "client_id": "c", "timestamp": "yesterday"},
     "field 'timestamp'"),
])
async def test_malformed_payload_is_rejected_naming_the_field(broker: Broker, payload: dict[
        str, object], reason: str) -> None:
    with pytest.raises(MalformedEvent) as excinfo:
        await broker.publish(payload, stream="sales-updates")
    assert reason in str(excinfo.value)


async def test_event_type_without_handler_on_a_stream_is_not_handled(broker: Broker) -> None:
    with pytest.raises(SubscriberNotFound):
        await broker.publish(incoming("stock_updated", "c"), stream="sales-updates")

