"""The integrator simulator: the upstream service of the seed's diagram, not FastStream.

It writes a client's data into the analytical store (with the store client, `store.open_store`)
and then tells secretmagic with the seed's events, written with a plain redis-py `XADD` in the
wire format of docs/wire-format.md — what a Go or redis-cli integrator would do.

The data set (deterministic, seeded): three clients of different trades, each with
- 15 months of daily sales per product with a weekly and a yearly seasonality, noise and the odd
  promotion (days without a sale have no row, as in real exports);
- weekly stock counts per product (sawtooth: sold down, replenished);
- product metadata, one product discontinued (active = false) at ACME;
- a multi-level bill of materials whose subassemblies are shared (a wheelset in three bikes, one
  brushless motor in four tools, a seat cushion in two chairs);
plus a fourth client, Umbrella, whose BOM has a cycle A -> B -> C -> A (a data error upstream:
its bom_updated can never succeed and must end in the dead-letter queue, not in a crash loop).

    python -m scripts.integrator data --store mysql://root@127.0.0.1:3306/secretmagic_demo
    python -m scripts.integrator publish [--wave products|facts|all]     (MESSENGER_* for Redis)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sys
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import polars as pl
import redis

STREAMS = {  # seed: «Маппинг событий»
    "sales_updated": "sales-updates",
    "stock_updated": "stock-updates",
    "bom_updated": "bom-updates",
    "products_updated": "products-updates",
}
MAXLEN = 10_000  # publisher.max_length in configs/config.dev.yaml
START, END = date(2024, 9, 1), date(2025, 11, 21)  # 447 days: a full year and a bit

WEEKLY = {  # Monday .. Sunday
    "retail": (0.80, 0.80, 0.85, 0.90, 1.10, 1.55, 1.30),
    "trade": (1.25, 1.15, 1.10, 1.10, 1.00, 0.35, 0.10),
    "home": (0.90, 0.90, 0.90, 1.00, 1.10, 1.45, 0.85),
}


@dataclass(frozen=True)
class Product:
    product_id: str
    name: str
    category: str
    base: float  # mean units a day
    price: float
    amplitude: float = 0.3  # yearly seasonality: ± this fraction
    peak_day: int = 135  # day of the year with the most sales
    active: bool = True
    until: date | None = None  # last day sold (a discontinued product)


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    weekly: str
    products: tuple[Product, ...]
    bom: tuple[tuple[str, str, float], ...]  # (parent, child, qty_per)
    start: date = START
    expect_bom_error: bool = False  # the BOM is broken on purpose (the demo's cycle)

    @property
    def integration_id(self) -> str:
        return f"int-{self.client_id.removeprefix('client-')}-erp"


def _bom(text: str) -> tuple[tuple[str, str, float], ...]:
    """`parent: child qty, child qty; parent: ...` -> edges."""
    edges = []
    for line in text.strip().splitlines():
        parent, _, children = line.partition(":")
        for item in children.split(","):
            child, qty = item.split()
            edges.append((parent.strip(), child, float(qty)))
    return tuple(edges)


CLIENTS: tuple[Client, ...] = (
    Client(
        "client-acme", "ACME Bikes", "retail",
        (
            Product("bike-city-classic", "City Classic 28", "city", 6, 549, 0.5, 140,
                    active=False, until=date(2025, 6, 30)),
            Product("bike-city-e", "City E 500", "e-bike", 9, 2399, 0.55, 130),
            Product("bike-mtb-29", "Trail 29", "mountain", 7, 1299, 0.65, 150),
            Product("bike-road-carbon", "Aero Carbon", "road", 3, 3499, 0.6, 160),
            Product("bike-kids-20", "Kids 20", "kids", 8, 329, 0.45, 340),
            Product("helmet-urban", "Urban Helmet", "accessories", 22, 79, 0.35, 140),
            Product("lights-set", "LED Lights Set", "accessories", 30, 39, 0.4, 300),
        ),
        _bom("""
            bike-city-classic: frame-city-alu 1, wheelset-28 1, drivetrain-8s 1, seat-comfort 1
            bike-city-e: frame-city-alu 1, wheelset-28 1, drivetrain-8s 1, seat-comfort 1, e-drive 1
            bike-mtb-29: frame-mtb-alu 1, wheelset-29 1, drivetrain-12s 1, fork-suspension 1
            bike-mtb-29: brake-disc-set 1
            bike-road-carbon: frame-road-carbon 1, wheelset-28 1, drivetrain-12s 1, brake-disc-set 1
            bike-kids-20: frame-kids 1, wheel-20 2, drivetrain-1s 1
            wheelset-28: wheel-28 2
            wheelset-29: wheel-29 2
            wheel-28: rim-28 1, spoke 32, hub 1, tire-28 1, tube-28 1
            wheel-29: rim-29 1, spoke 32, hub 1, tire-29 1, tube-29 1
            wheel-20: rim-20 1, spoke 20, hub 1, tire-20 1, tube-20 1
            drivetrain-8s: chain 1, cassette-8s 1, crankset 1, derailleur 1
            drivetrain-12s: chain 1, cassette-12s 1, crankset 1, derailleur 1
            drivetrain-1s: chain 1, crankset 1, cog-single 1
            brake-disc-set: caliper 2, rotor-160 2, brake-lever 2
            e-drive: motor-250w 1, controller-e 1, battery-500wh 1
            battery-500wh: cell-21700 40, bms-board 1, battery-case 1
        """),
    ),
    Client(
        "client-globex", "Globex Power Tools", "trade",
        (
            Product("drill-18v", "Drill 18V", "drills", 14, 129, 0.25, 280),
            Product("impact-driver-18v", "Impact Driver 18V", "drivers", 9, 149, 0.25, 280),
            Product("circular-saw-18v", "Circular Saw 18V", "saws", 5, 199, 0.35, 120),
            Product("angle-grinder-18v", "Angle Grinder 18V", "grinders", 6, 119, 0.3, 110),
            Product("battery-18v-5ah", "Battery 18V 5Ah", "batteries", 18, 89, 0.2, 340),
            Product("charger-fast", "Fast Charger", "batteries", 7, 59, 0.2, 340),
            Product("kit-drill-driver", "Drill + Driver Kit", "kits", 4, 349, 0.5, 345),
        ),
        _bom("""
            kit-drill-driver: drill-18v 1, impact-driver-18v 1, battery-18v-5ah 2, charger-fast 1
            kit-drill-driver: case-kit 1
            drill-18v: motor-bl-18v 1, gearbox-2speed 1, chuck-13mm 1, housing-drill 1
            drill-18v: trigger-switch 1
            impact-driver-18v: motor-bl-18v 1, impact-mechanism 1, hex-chuck 1, housing-impact 1
            impact-driver-18v: trigger-switch 1
            circular-saw-18v: motor-bl-18v 1, blade-165 1, guard-saw 1, housing-saw 1
            circular-saw-18v: trigger-switch 1
            angle-grinder-18v: motor-bl-18v 1, gear-head 1, guard-grinder 1, housing-grinder 1
            angle-grinder-18v: paddle-switch 1
            motor-bl-18v: stator 1, rotor-magnet 1, motor-controller 1, bearing 2
            battery-18v-5ah: cell-18650 10, bms-board 1, pack-case 1
            charger-fast: pcb-charger 1, charger-case 1, power-cord 1
            gearbox-2speed: gear-set 1, bearing 2
            impact-mechanism: hammer 1, anvil 1, spring-impact 1
            gear-head: gear-set 1, bearing 1
        """),
    ),
    Client(
        "client-initech", "Initech Office Furniture", "home",
        (
            Product("desk-standing", "Standing Desk 160", "desks", 5, 699, 0.3, 15),
            Product("desk-classic", "Classic Desk 160", "desks", 4, 299, 0.3, 15),
            Product("chair-task", "Task Chair", "chairs", 11, 249, 0.25, 250),
            Product("chair-executive", "Executive Chair", "chairs", 3, 599, 0.25, 250),
            Product("bookcase-5", "Bookcase 5 shelves", "storage", 6, 159, 0.35, 245),
            Product("cabinet-file-3", "File Cabinet 3 drawers", "storage", 3, 229, 0.2, 30),
        ),
        _bom("""
            desk-standing: desktop-160 1, frame-lift-dual 1, cable-tray 1, screw-pack-m6 1
            desk-classic: desktop-160 1, leg-set-fixed 1, screw-pack-m6 1
            frame-lift-dual: lift-column 2, motor-desk 2, control-box 1, crossbar 1
            lift-column: steel-tube 3, glide 1
            desktop-160: board-chip-160 1, edge-band-m 5.2
            chair-task: seat-cushion 1, backrest-mesh 1, base-star-5 1, gas-lift 1, armrest 2
            chair-task: caster 5
            chair-executive: seat-cushion 1, backrest-leather 1, base-star-5 1, gas-lift 1
            chair-executive: armrest 2, caster 5, headrest 1
            base-star-5: aluminium-cast 1, caster-socket 5
            bookcase-5: panel-side 2, shelf-panel 5, back-panel 1, screw-pack-m4 2
            cabinet-file-3: panel-side 2, drawer 3, lock 1, screw-pack-m4 2
            drawer: drawer-box 1, drawer-slide 2
        """),
    ),
    Client(
        "client-umbrella", "Umbrella Kits (broken BOM upstream)", "retail",
        (
            Product("umbrella-kit", "Umbrella Kit", "kits", 5, 49, 0.5, 300),
            Product("umbrella-refill", "Refill Pack", "kits", 9, 19, 0.5, 300),
        ),
        _bom("""
            umbrella-kit: A 1, handle 1
            A: B 2
            B: C 1
            C: A 1
        """),
        start=date(2025, 5, 1),
        expect_bom_error=True,
    ),
)
GOOD_CLIENTS = tuple(c.client_id for c in CLIENTS if not c.expect_bom_error)
CYCLE_CLIENT = next(c.client_id for c in CLIENTS if c.expect_bom_error)
ALL_CLIENTS = tuple(c.client_id for c in CLIENTS)


# --- the data set --------------------------------------------------------------------------------


def _sales(client: Client, rng: random.Random) -> pl.DataFrame:
    days = (END - client.start).days + 1
    weekly = WEEKLY[client.weekly]
    rows: dict[str, list[Any]] = {"product_id": [], "date": [], "qty": [], "amount": []}
    for p in client.products:
        last = min(p.until or END, END)
        promo_day = rng.randrange(days)  # one promotion week a year per product, about
        for i in range(days):
            day = client.start + timedelta(days=i)
            if day > last:
                break
            doy = day.timetuple().tm_yday
            yearly = 1 + p.amplitude * math.cos(2 * math.pi * (doy - p.peak_day) / 365.25)
            promo = 1.8 if 0 <= (i - promo_day) % 365 < 7 else 1.0
            mean = p.base * weekly[day.weekday()] * yearly * promo
            qty = max(0, round(rng.gauss(mean, math.sqrt(mean) + 0.15 * mean)))
            if qty:  # no sale, no row: the features fill the calendar with zeros
                rows["product_id"].append(p.product_id)
                rows["date"].append(day)
                rows["qty"].append(float(qty))
                rows["amount"].append(round(qty * p.price * rng.uniform(0.9, 1.0), 2))
    return pl.DataFrame(rows, schema={"product_id": pl.String, "date": pl.Date,
                                      "qty": pl.Float64, "amount": pl.Float64})


def _stock(client: Client, sales: pl.DataFrame, rng: random.Random) -> pl.DataFrame:
    """Weekly counts (Mondays): sold down by the week's sales, reordered below two weeks."""
    weekly_sales = (sales.group_by("product_id", pl.col("date").dt.truncate("1w"))
                    .agg(pl.col("qty").sum()).sort("product_id", "date"))
    rows: dict[str, list[Any]] = {"product_id": [], "date": [], "on_hand": []}
    for (product_id,), weeks in weekly_sales.group_by("product_id", maintain_order=True):
        sold = dict(zip(weeks["date"], weeks["qty"], strict=True))
        typical = max(float(weeks["qty"].mean() or 1.0), 1.0)  # type: ignore[arg-type]
        on_hand = 4 * typical
        monday = client.start - timedelta(days=client.start.weekday())
        while monday <= END:
            on_hand = max(on_hand - sold.get(monday, 0.0), 0.0)
            if on_hand < 2 * typical:
                on_hand += round(rng.uniform(3, 5) * typical)
            rows["product_id"].append(str(product_id))
            rows["date"].append(monday)
            rows["on_hand"].append(float(round(on_hand)))
            monday += timedelta(days=7)
    return pl.DataFrame(rows, schema={"product_id": pl.String, "date": pl.Date,
                                      "on_hand": pl.Float64})


def build_dataset(seed: int = 42) -> dict[str, dict[str, pl.DataFrame]]:
    """client_id -> {table: frame} for the integrator-owned tables (client_id left out)."""
    data = {}
    for n, client in enumerate(CLIENTS):
        rng = random.Random(seed * 1000 + n)
        sales = _sales(client, rng)
        products = pl.DataFrame(
            {"product_id": [p.product_id for p in client.products],
             "name": [p.name for p in client.products],
             "category": [p.category for p in client.products],
             "active": [p.active for p in client.products]})
        bom = pl.DataFrame(client.bom, schema=["parent_id", "child_id", "qty_per"], orient="row")
        data[client.client_id] = {"sales": sales, "stock": _stock(client, sales, rng),
                                  "products": products, "bom": bom}
    return data


OUTPUT_TABLES = ("features", "bom_exploded", "product_meta")  # what secretmagic writes


async def write_dataset(store_dsn: str, seed: int = 42) -> dict[str, dict[str, int]]:
    """Write the data set (each client's rows replaced: idempotent) and clear what secretmagic
    computed for these clients before, so the demo counts what this run wrote."""
    from store import empty_frame, open_store, table_spec

    data = build_dataset(seed)
    store = open_store(store_dsn)
    written: dict[str, dict[str, int]] = {}
    try:
        await store.create_tables()
        for client_id, tables in data.items():
            counts = {}
            for table, frame in tables.items():
                counts[table] = await store.replace(table, client_id, frame)
            for table in OUTPUT_TABLES:
                await store.replace(table, client_id, empty_frame(table_spec(table)))
            written[client_id] = counts
    finally:
        await store.close()
    return written


# --- events --------------------------------------------------------------------------------------


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_fields(event_type: str, client_id: str, table: str, integration_id: str,
                 **extra: Any) -> dict[str, str]:
    """The seed's incoming event as flat stream fields (docs/wire-format.md)."""
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "client_id": client_id,
        "timestamp": now_iso(),
        "data": json.dumps({"integration_id": integration_id, "table_name": table, **extra},
                           separators=(",", ":")),
    }


@dataclass
class Published:
    """What the integrator sent: (stream, entry id, fields) in order."""

    entries: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    _queued: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def add(self, r: redis.Redis | Any, stream: str, fields: dict[str, str]) -> str | None:
        """XADD stream MAXLEN ~ 10000 * field value ...   (a plain command, no FastStream).

        `r` may be a pipeline: the entry id is then filled in by `execute()`.
        """
        entry_id = r.xadd(stream, cast("dict[Any, Any]", fields), maxlen=MAXLEN,
                          approximate=True)
        if isinstance(entry_id, bytes | str):
            text = _text(entry_id)
            self.entries.append((stream, text, fields))
            return text
        self._queued.append((stream, fields))
        return None

    def execute(self, pipe: Any) -> list[str]:
        """Send a pipeline of `add`s (MULTI ... EXEC: the batch appears at once) and record it."""
        ids = [_text(i) for i in pipe.execute()]
        queued, self._queued = self._queued, []
        self.entries += [(s, i, f) for (s, f), i in zip(queued, ids, strict=True)]
        return ids


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _client(client_id: str) -> Client:
    return next(c for c in CLIENTS if c.client_id == client_id)


def publish_products(r: redis.Redis, out: Published | None = None) -> Published:
    """Wave 1: product metadata first (secretmagic filters inactive products on it)."""
    out = out or Published()
    for c in CLIENTS:
        out.add(r, STREAMS["products_updated"],
                event_fields("products_updated", c.client_id, "products", c.integration_id))
    return out


def publish_facts(r: redis.Redis, out: Published | None = None) -> Published:
    """Wave 2: per client one batch (MULTI/EXEC: a reader sees it at once) of sales (a history
    load, then a day's delta), stock and BOM events; then one malformed entry (its `data` is a
    JSON array, not an object). The two sales_updated of a batch are coalesced by secretmagic
    into one recompute; successive batches go to whichever instance is waiting."""
    out = out or Published()
    for c in CLIENTS:
        pipe = r.pipeline(transaction=True)
        out.add(pipe, STREAMS["sales_updated"], event_fields(
            "sales_updated", c.client_id, "sales", c.integration_id, load="history"))
        if not c.expect_bom_error:
            out.add(pipe, STREAMS["stock_updated"], event_fields(
                "stock_updated", c.client_id, "stock", c.integration_id))
        out.add(pipe, STREAMS["bom_updated"], event_fields(
            "bom_updated", c.client_id, "bom", c.integration_id))
        out.add(pipe, STREAMS["sales_updated"], event_fields(
            "sales_updated", c.client_id, "sales", c.integration_id, load="delta",
            since=END.isoformat()))
        out.execute(pipe)
    bad = event_fields("sales_updated", "client-acme", "sales", "int-acme-erp")
    bad["data"] = json.dumps(["sales", "not", "an", "object"])
    out.add(r, STREAMS["sales_updated"], bad)
    return out


def publish_stock(r: redis.Redis, client_id: str, out: Published | None = None) -> Published:
    """One late stock sync for a client (the demo's transient-failure event)."""
    out = out or Published()
    c = _client(client_id)
    out.add(r, STREAMS["stock_updated"], event_fields(
        "stock_updated", client_id, "stock", c.integration_id, load="late"))
    return out


# --- command line --------------------------------------------------------------------------------


def _redis_from_env() -> redis.Redis:
    from settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        raise SystemExit(f"integrator: {exc}") from None
    if settings.messenger is None:
        raise SystemExit("integrator: set MESSENGER_HOST (and MESSENGER_PORT/PASSWORD/DB)")
    return ops.connect(settings.messenger)


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.integrator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("data", help="write the synthetic data set into the store")
    p.add_argument("--store", default=os.environ.get("STORE_DSN"), help="store DSN (STORE_DSN)")
    p.add_argument("--seed", type=int, default=42)
    p = sub.add_parser("publish", help="publish the events (MESSENGER_* name the Redis)")
    p.add_argument("--wave", choices=("products", "facts", "all"), default="all")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.command == "data":
        if not args.store:
            parser.error("--store (or STORE_DSN) is required")
        written = asyncio.run(write_dataset(args.store, args.seed))
        print(json.dumps({"written": written}))
        return 0
    r = _redis_from_env()
    out = Published()
    if args.wave in ("products", "all"):
        publish_products(r, out)
    if args.wave in ("facts", "all"):
        publish_facts(r, out)
    for stream, entry_id, fields in out.entries:
        print(f"{stream} {entry_id} {fields['event_type']} {fields['client_id']}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
