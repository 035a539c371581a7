"""The real app (`faststream run app:app`) end to end: a raw `XADD` in, features and exploded BOM
in a real MySQL-protocol store, `features_updated`/`bom_exploded` out; and the store cut off
(a TCP relay the test controls) while an event is handled, for longer than max_deliveries allows:
waited out, never dead-lettered, done when it is back.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import urllib.request
import uuid
from pathlib import Path
from typing import cast

import polars as pl
import pytest
import redis
from dirty_equals import IsInt, IsPartialDict, IsStr, IsUUID

from scripts.relay import StoreRelay
from store import open_store, parse_dsn
from tests import services
from tests.harness import (
    AppProcess,
    Entries,
    app_processes,
    config,
    job,
    messenger_env,
    store_read,
    write_config,
)

DAYS = 10


async def seed(dsn: str, client: str) -> None:
    store = open_store(dsn)
    try:
        await store.create_tables()
        await store.replace("sales", client, pl.DataFrame({
            "product_id": ["p"] * DAYS,
            "date": [dt.date(2025, 3, 1) + dt.timedelta(days=i) for i in range(DAYS)],
            "qty": [float(i) for i in range(DAYS)], "amount": [2.0] * DAYS}))
        await store.replace("bom", client, pl.DataFrame({
            "parent_id": ["bike", "bike", "wheel"], "child_id": ["wheel", "frame", "spoke"],
            "qty_per": [2.0, 1.0, 32.0]}))
    finally:
        await store.close()


def outputs(r: redis.Redis, stream: str) -> list[dict[str, object]]:
    return [{**{k.decode(): v.decode() for k, v in f.items()},
             "data": json.loads(f[b"data"])} for _, f in cast(Entries, r.xrange(stream))]


def test_events_in_store_results_and_notifications_out(mysql_database: str, tmp_path: Path) -> None:
    client = f"client-{uuid.uuid4().hex[:6]}"
    database = mysql_database
    asyncio.run(seed(database, client))
    store_host = parse_dsn(database)
    relay = StoreRelay(store_host.host, store_host.port).start()
    with services.private_redis() as server:
        r = redis.Redis(host=services.HOST, port=server.port)
        streams = ["sales-updates", "stock-updates", "bom-updates", "products-updates"]
        path = write_config(tmp_path / "config.yaml", config(streams, max_deliveries=2))
        metrics_port = services.free_port()
        env = {**messenger_env(server.url), "SECRETMAGIC_CONFIG": str(path),
               "STORE_DSN": relay.dsn(database), "METRICS_PORT": str(metrics_port)}
        app = AppProcess("app:app", env, tmp_path, "secretmagic")
        with app_processes(app):
            app.wait_output("consuming sales-updates")
            sent = [("sales-updates", job(client, "sales_updated", table_name="sales",
                                          integration_id="int-1")),
                    ("bom-updates", job(client, "bom_updated", table_name="bom"))]
            for stream, fields in sent:
                r.xadd(stream, fields)
            services.wait_for(lambda: r.xlen("features-updates") == 1
                              and r.xlen("bom-exploded") == 1, 30, "both notifications")

            relay.cut()  # the store goes away while the next event is handled ...
            sent.append(("stock-updates", job(client, "stock_updated", table_name="stock")))
            r.xadd(*sent[-1])
            app.wait_output("reading stock-updates paused")
            app.wait_output("deliveries=3")  # ... and stays away past max_deliveries=2
            with urllib.request.urlopen(f"http://{services.HOST}:{metrics_port}/health") as got:
                health = json.load(got)
            assert health["status"] == "ok"  # waiting out an outage is the right thing to do
            unavailable = IsStr(regex=r"Unavailable: mysql store at .* unavailable during .*")
            assert health["details"]["waiting"] == {"stock-updates": unavailable}
            relay.restore()
            services.wait_for(lambda: r.xlen("features-updates") == 2, 30, "handled after retry")
            services.wait_for(lambda: all(
                r.xpending(s, "secretmagic-group")["pending"] == 0 for s in streams), 10, "acked")
            notes, boms = outputs(r, "features-updates"), outputs(r, "bom-exploded")
        features = asyncio.run(store_read(database, "daily_features", client))
        exploded = asyncio.run(store_read(database, "bom_exploded", client))
        dlq = r.xlen("secretmagic-group:dlq") if r.exists("secretmagic-group:dlq") else 0
        r.close()
    relay.close()

    # 10 days of qty 0..9, one product, the default parameters: one wide row a day; the first
    # event computes them in full, the second (stock_updated, no input changed) writes nothing
    assert features.height == DAYS
    for note, rows, incremental in zip(notes, (DAYS, 0), (False, True), strict=True):
        assert note == {"event_id": IsUUID(4), "event_type": "features_updated",
                        "client_id": client, "timestamp": IsStr(regex=r".*Z"),
                        "data": IsPartialDict({
                            "features_count": 11, "rows": rows, "incremental": incremental,
                            "feature_types": ["ema", "ma", "std", "lags", "seasonality"],
                            "processing_time_ms": IsInt(ge=0)})}
    assert boms[0]["data"] == IsPartialDict(
        {"products_count": 1, "rows": 2, "processing_time_ms": IsInt(ge=0)})
    by_day = {row["date"].day: row for row in features.to_dicts()}
    assert by_day[7]["ma_7"] == pytest.approx(sum(range(7)) / 7)  # days 1..7: qty 0..6
    assert by_day[10]["lag_7"] == 2.0 and by_day[6]["ma_7"] is None
    assert exploded.to_dicts() == [
        {"client_id": client, "product_id": "bike", "component_id": "frame", "quantity": 1.0,
         "depth": 1},
        {"client_id": client, "product_id": "bike", "component_id": "spoke", "quantity": 64.0,
         "depth": 2}]
    handled = len(notes) + len(boms)  # one notification per event handled
    lost = len(sent) - handled - dlq
    print(f"sent={len(sent)} handled={handled} dead_lettered={dlq} lost={lost} "
          "(one after an outage longer than max_deliveries)")
    assert (handled, dlq, lost) == (3, 0, 0)
    assert "reading new entries resumes" in app.output
