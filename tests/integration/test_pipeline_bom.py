"""The BOM pipelines on real stores (embedded chDB and MariaDB): bom_updated writes the explosion,
component demand and component features; sales_updated refreshes the component tables. Every
value read back is checked against tests/reference.py (the explosion per day, the demand) or
worked out here in plain Python (the features over the demand series); redelivering an event
leaves the store as after once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any, cast

import polars as pl
import pytest
from faststream.redis import TestRedisBroker

import handlers
from app.broker import Broker
from core.events import Event
from handlers.pipelines.components import OUTPUTS, first_change, refresh_components
from handlers.pipelines.explosion import explode_bom
from settings import Config, LiveConfig
from store import Store
from tests.reference import naive_component_demand, naive_explode, naive_explode_on
from tests.storekit import backend, new_client

CONFIG = Config.model_validate({"features": {
    "ema_spans": [2], "ma_windows": [3], "std_windows": [3], "lags": [1], "seasonality": True}})
START, CHANGE = date(2024, 3, 1), date(2024, 3, 11)
TABLES = ("bom_exploded", "bom_exploded_dated", *OUTPUTS)


def bom_lines() -> pl.DataFrame:
    """P1 = kit K (phantom: 2 X, 1 Y at 20 % scrap) + 3 S per 2 P1, S 2 days ahead; S uses 1 X
    up to Mar 10 and 4 half-units of Z from Mar 11; P2 = 1 S at 50 % scrap a day ahead, 6 Y
    per 3 P2."""
    rows: list[dict[str, Any]] = [
        {"parent_id": "P1", "child_id": "K", "qty_per": 1.0, "phantom": True},
        {"parent_id": "K", "child_id": "X", "qty_per": 2.0},
        {"parent_id": "K", "child_id": "Y", "qty_per": 1.0, "scrap_pct": 20.0},
        {"parent_id": "P1", "child_id": "S", "qty_per": 3.0, "base_qty": 2.0, "lead_days": 2},
        {"parent_id": "S", "child_id": "X", "qty_per": 1.0, "valid_to": CHANGE - timedelta(1)},
        {"parent_id": "S", "child_id": "Z", "qty_per": 4.0, "valid_from": CHANGE,
         "uom_factor": 0.5},
        {"parent_id": "P2", "child_id": "S", "qty_per": 1.0, "scrap_pct": 50.0, "lead_days": 1},
        {"parent_id": "P2", "child_id": "Y", "qty_per": 6.0, "base_qty": 3.0},
    ]
    schema = {"parent_id": pl.Utf8, "child_id": pl.Utf8, "qty_per": pl.Float64,
              "base_qty": pl.Float64, "scrap_pct": pl.Float64, "phantom": pl.Boolean,
              "valid_from": pl.Date, "valid_to": pl.Date, "uom_factor": pl.Float64,
              "lead_days": pl.Int32}
    return pl.DataFrame(rows, schema=schema)


def sales_rows(client: str, days: range) -> pl.DataFrame:
    rows = [(client, p, START + timedelta(d), float((d * k) % 5), None)
            for d in days for p, k in (("P1", 3), ("P2", 2)) if (d + k) % 4]
    return pl.DataFrame(rows, schema={"client_id": pl.Utf8, "product_id": pl.Utf8,
                                      "date": pl.Date, "qty": pl.Float64, "amount": pl.Float64},
                        orient="row")


STOCK = pl.DataFrame({"product_id": ["X", "X", "P1"], "on_hand": [40.0, 25.0, 9.0],
                      "date": [START, START + timedelta(9), START]})


@pytest.fixture(params=["chdb", "mysql"])
async def store(request: pytest.FixtureRequest, mysql_dsn: str) -> AsyncIterator[Store]:
    async with backend(request.param, mysql_dsn, "sm_bom") as b:
        yield b.store


async def seed(store: Store, client: str, days: range = range(20)) -> pl.DataFrame:
    sold = sales_rows(client, days)
    await store.replace("bom", client, bom_lines())
    await store.replace("sales", client, sold)
    await store.replace("stock", client, STOCK)
    return sold


async def snapshot(store: Store, client: str) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for table in TABLES:
        frame = await store.read(table, client)
        out[table] = sorted(frame.select(sorted(frame.columns)).rows(), key=repr)
    return out


def check_demand(stored: pl.DataFrame, sold: pl.DataFrame) -> None:
    want = naive_component_demand(sold, bom_lines())
    got = {(c, k, d): v for c, k, d, v in stored.select(
        "client_id", "component_id", "date", "demand").rows()}
    assert got == {key: pytest.approx(v, rel=1e-12) for key, v in want.items()}


def check_features(stored: pl.DataFrame, demand: pl.DataFrame) -> None:
    """ma_3, lag_1 and stock_on_hand worked out from the demand rows: the daily series of each
    component from its first demand day to the client's last, missing days 0."""
    last = demand["date"].max()
    assert isinstance(last, date)
    for component in demand["component_id"].unique():
        days = dict(demand.filter(pl.col("component_id") == component)
                    .select("date", "demand").rows())
        first = min(days)
        series = [days.get(first + timedelta(i), 0.0) for i in range((last - first).days + 1)]
        rows = stored.filter(pl.col("component_id") == component).sort("date")
        assert rows["date"].to_list() == [first + timedelta(i) for i in range(len(series))]
        assert rows["demand"].to_list() == series
        ma = [None if i < 2 else sum(series[i - 2:i + 1]) / 3 for i in range(len(series))]
        assert rows["ma_3"].to_list() == [None if m is None else pytest.approx(m) for m in ma]
        assert rows["lag_1"].to_list() == [None, *series[:-1]]
        on_hand = [max(((d, q) for p, q, d in STOCK.rows() if p == component and d <= day),
                       default=(None, None))[1] for day in rows["date"]]
        assert rows["stock_on_hand"].to_list() == on_hand


async def test_bom_updated_writes_what_the_reference_says(store: Store) -> None:
    client = new_client()
    sold = await seed(store, client)

    done = await explode_bom(store, client, CONFIG, version=100)

    exploded = await store.read("bom_exploded", client)
    assert {(p, c): (q, d) for _, p, c, q, d in exploded.rows()} == naive_explode(bom_lines())
    dated = await store.read("bom_exploded_dated", client)
    for day in (START - timedelta(1), START, CHANGE - timedelta(1), CHANGE, date(2030, 1, 1)):
        holds = dated.filter((pl.col("valid_from").is_null() | (pl.col("valid_from") <= day))
                             & (pl.col("valid_to").is_null() | (pl.col("valid_to") >= day)))
        got = {(p, c, lead): (q, d, leaf) for p, c, lead, q, d, leaf in holds.select(
            "product_id", "component_id", "lead_days", "quantity", "depth", "leaf").rows()}
        assert got == {k: (pytest.approx(q), d, leaf)
                       for k, (q, d, leaf) in naive_explode_on(bom_lines(), day).items()}, day
    demand = await store.read("component_demand", client)
    check_demand(demand, sold)
    features = await store.read("component_features", client)
    check_features(features, demand)
    profiles = await store.read("component_profiles", client)
    assert set(profiles["component_id"]) == set(demand["component_id"]) == {"S", "X", "Y", "Z"}
    assert done.model_dump() == {
        "products_count": 2, "rows": exploded.height, "processing_time_ms": done.processing_time_ms,
        "components_count": 4, "exploded_rows": dated.height, "demand_rows": demand.height,
        "feature_rows": features.height,
        # (open, Mar 10), (Mar 11, open) and the undated lines' (open, open)
        "date_ranges": 3,
    }


async def test_redelivery_leaves_the_store_as_after_once(store: Store) -> None:
    client = new_client()
    await seed(store, client)
    first = await explode_bom(store, client, CONFIG, version=100)
    once = await snapshot(store, client)
    assert all(once.values()), {t: len(rows) for t, rows in once.items()}

    again = await explode_bom(store, client, CONFIG, version=100)  # the same event redelivered
    refreshed = await refresh_components(store, client, CONFIG, version=100)

    assert await snapshot(store, client) == once
    assert again.model_dump(exclude={"processing_time_ms"}) == first.model_dump(
        exclude={"processing_time_ms"})
    assert refreshed.demand_rows == first.demand_rows and refreshed.skipped is None


async def test_sales_updated_refreshes_component_demand_and_features(store: Store) -> None:
    client = new_client()
    await seed(store, client)
    await explode_bom(store, client, CONFIG, version=100)
    more = sales_rows(client, range(30))  # ten more days after the BOM change
    await store.replace("sales", client, more)

    done = await refresh_components(store, client, CONFIG, version=101)

    demand = await store.read("component_demand", client)
    check_demand(demand, more)
    check_features(await store.read("component_features", client), demand)
    assert (done.components_count, done.demand_rows, done.skipped) == (4, demand.height, None)


async def test_refresh_skips_a_client_without_bom_and_an_invalid_bom(store: Store) -> None:
    client = new_client()
    await store.replace("sales", client, sales_rows(client, range(5)))
    assert (await refresh_components(store, client, CONFIG, version=100)).skipped == "no BOM lines"
    assert (await store.read("component_demand", client)).is_empty()

    await seed(store, client)
    await explode_bom(store, client, CONFIG, version=101)
    before = await snapshot(store, client)
    await store.replace("bom", client, bom_lines().with_columns(
        scrap_pct=pl.when(pl.col("child_id") == "Z").then(100.0).otherwise("scrap_pct")))
    done = await refresh_components(store, client, CONFIG, version=102)

    # lines numbered in key order (parent, child): S -> Z is the 8th
    assert done.skipped == ("invalid BOM: BOM line 8 (parent_id='S', child_id='Z'): "
                            "scrap_pct=100.0 must be a percentage from 0 up to (not including) "
                            "100")
    assert await snapshot(store, client) == before


async def test_sales_updated_handler_writes_the_component_tables() -> None:
    """The decorated handler (in memory, TestRedisBroker) on chDB: features_updated is published
    and the component tables are the reference's."""
    async with backend("chdb", "", "unused") as b:
        client = new_client()
        sold = await seed(b.store, client)
        broker = Broker()
        broker.include_router(handlers.routes)
        broker.context.set_global("store", b.store)
        broker.context.set_global("config", LiveConfig(None, CONFIG))
        async with TestRedisBroker(broker) as test_broker:
            await cast(Broker, test_broker).publish(
                Event(event_type="sales_updated", client_id=client,
                      data={"integration_id": "i", "table_name": "sales"}),
                stream="sales-updates")
            handlers.features_updated.mock.assert_called_once()
        check_demand(await b.store.read("component_demand", client), sold)


def test_first_change_is_the_first_date_that_differs() -> None:
    days = [START + timedelta(i) for i in range(5)]
    frame = pl.DataFrame({"client_id": ["c"] * 5, "component_id": ["X"] * 5, "date": days,
                          "demand": [1.0, 2.0, None, 4.0, 5.0]})
    bumped = pl.col("date") == days[3]

    assert first_change(frame, frame) is None
    assert first_change(frame.with_columns(demand=pl.col("demand") * (1 + 1e-15)), frame) is None
    assert first_change(frame.with_columns(
        demand=pl.when(bumped).then(4.000001).otherwise("demand")), frame) == days[3]
    assert first_change(frame.with_columns(
        demand=pl.when(pl.col("date") == days[2]).then(0.0).otherwise("demand")), frame) == days[2]
    assert first_change(frame.filter(~bumped), frame) == days[3]  # a row only the new frame has
    assert first_change(frame, frame.filter(~bumped)) == days[3]  # a row to delete
    assert first_change(frame, frame.with_columns(ma_3=pl.lit(1.0))) == days[0]  # a new column


async def test_an_older_bom_updated_keeps_a_newer_refreshs_component_tables(store: Store) -> None:
    # sales_updated (a later stream position) handled before the bom_updated published just
    # before it: the explosion is written and published, the component tables stay the newer.
    client = new_client()
    sold = await seed(store, client)
    await refresh_components(store, client, CONFIG, version=200)
    newer = await snapshot(store, client)

    done = await explode_bom(store, client, CONFIG, version=150)

    after = await snapshot(store, client)
    assert {t: after[t] for t in OUTPUTS} == {t: newer[t] for t in OUTPUTS}
    assert after["bom_exploded"] and done.rows == len(after["bom_exploded"])
    check_demand(await store.read("component_demand", client), sold)
