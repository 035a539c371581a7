"""The integrator simulator: the upstream service of the seed's diagram, not FastStream.

It writes a client's data into the analytical store (with the store client, `store.open_store`)
and then tells secretmagic with the seed's events, written with a plain redis-py `XADD` in the
wire format of docs/wire-format.md — what a Go or redis-cli integrator would do.

The data set (deterministic, seeded; the clients in scripts/dataset.yaml): three clients of
different trades, each with
- 15 months of daily sales per product with a weekly and a yearly seasonality, noise and the odd
  promotion (days without a sale have no row, as in real exports);
- weekly stock counts per product (sawtooth: sold down, replenished);
- product metadata, one product discontinued (active = false) at ACME;
- a multi-level bill of materials whose subassemblies are shared (a wheelset in three bikes, one
  brushless motor in four tools, a seat cushion in two chairs), with the ERP options: phantom
  kits (the wheelsets), scrap (spokes, housings), base quantities (cells per two batteries), a
  lead time (the e-drive) and a component changed on a date (a desk's edge band);
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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import polars as pl
import redis
import yaml

from core.wire import text
from scripts.flow import STREAM_OF

MAXLEN = 10_000  # publisher.max_length in configs/config.dev.yaml
START, END = date(2024, 9, 1), date(2025, 11, 21)  # 447 days: a full year and a bit
DATASET = Path(__file__).with_name("dataset.yaml")  # the clients, their products and BOMs


@dataclass(frozen=True)
class Product:
    product_id: str
    name: str
    category: str
    base: float  # mean units a day
    price: float
    amplitude: float = 0.3  # yearly seasonality: ± this fraction
    peak_day: int = 135  # day of the year with the most sales
    until: date | None = None  # last day sold: a discontinued product (active = false)

    @property
    def active(self) -> bool:
        return self.until is None


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    weekly: tuple[float, ...]  # sales by weekday, Monday .. Sunday
    products: tuple[Product, ...]
    bom: tuple[dict[str, Any], ...]  # BOM lines: parent_id, child_id, qty_per, options
    start: date = START
    expect_bom_error: bool = False  # the BOM is broken on purpose (the demo's cycle)

    @property
    def integration_id(self) -> str:
        return f"int-{self.client_id.removeprefix('client-')}-erp"


# A BOM item's options in dataset.yaml (`child qty phantom scrap=2 ...`) -> the bom columns.
_BOM_OPTIONS: dict[str, tuple[str, Callable[[str], object]]] = {
    "base": ("base_qty", float), "scrap": ("scrap_pct", float), "lead": ("lead_days", int),
    "uom": ("uom_factor", float), "from": ("valid_from", date.fromisoformat),
    "to": ("valid_to", date.fromisoformat)}
BOM_SCHEMA = {"parent_id": pl.String, "child_id": pl.String, "qty_per": pl.Float64,
              "base_qty": pl.Float64, "scrap_pct": pl.Float64, "phantom": pl.Boolean,
              "valid_from": pl.Date, "valid_to": pl.Date, "uom_factor": pl.Float64,
              "lead_days": pl.Int32}


def _bom(text: str) -> tuple[dict[str, Any], ...]:
    """`parent: child qty [phantom] [base=|scrap=|lead=|uom=|from=|to=value], ...` lines ->
    BOM lines (an option left out is null: bom's default)."""
    lines = []
    for line in text.strip().splitlines():
        parent, _, children = line.partition(":")
        for item in children.split(","):
            child, qty, *options = item.split()
            row: dict[str, Any] = {"parent_id": parent.strip(), "child_id": child,
                                   "qty_per": float(qty)}
            for option in options:
                name, _, value = option.partition("=")
                if option == "phantom":
                    row["phantom"] = True
                elif name in _BOM_OPTIONS and value:
                    column, read = _BOM_OPTIONS[name]
                    row[column] = read(value)
                else:
                    raise ValueError(f"dataset.yaml: BOM item {item.strip()!r} of {parent!r}: "
                                     f"unknown option {option!r}")
            lines.append(row)
    return tuple(lines)


def _clients(path: Path = DATASET) -> tuple[Client, ...]:
    raw = yaml.safe_load(path.read_text())
    return tuple(
        Client(c["client_id"], c["name"], tuple(raw["weekly"][c["weekly"]]),
               tuple(Product(*row) for row in c["products"]), _bom(c["bom"]),
               c.get("start", START), c.get("expect_bom_error", False))
        for c in raw["clients"])


CLIENTS = _clients()
GOOD_CLIENTS = tuple(c.client_id for c in CLIENTS if not c.expect_bom_error)
CYCLE_CLIENT = next(c.client_id for c in CLIENTS if c.expect_bom_error)
ALL_CLIENTS = tuple(c.client_id for c in CLIENTS)


# --- the data set --------------------------------------------------------------------------------


def _sales(client: Client, rng: random.Random) -> pl.DataFrame:
    days = (END - client.start).days + 1
    weekly = client.weekly
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
        bom = pl.DataFrame(list(client.bom), schema=BOM_SCHEMA)
        data[client.client_id] = {"sales": sales, "stock": _stock(client, sales, rng),
                                  "products": products, "bom": bom}
    return data


# what secretmagic writes (the first four counted in the demo's summary)
OUTPUT_TABLES = ("daily_features", "bom_exploded", "product_meta", "component_demand",
                 "bom_exploded_dated", "component_features", "component_profiles",
                 "feature_profiles", "input_digests")
COUNTED_TABLES = OUTPUT_TABLES[:4]


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


def event_fields(event_type: str, client: Client, **extra: Any) -> dict[str, str]:
    """The seed's incoming event as flat stream fields (docs/wire-format.md); `data` names the
    table the integrator wrote (sales_updated -> sales)."""
    data = {"integration_id": client.integration_id,
            "table_name": event_type.removesuffix("_updated"), **extra}
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "client_id": client.client_id,
        "timestamp": now_iso(),
        "data": json.dumps(data, separators=(",", ":")),
    }


@dataclass
class Published:
    """What the integrator sent: (stream, entry id, fields) in order."""

    entries: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    _queued: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def add(self, r: redis.Redis | Any, fields: dict[str, str]) -> None:
        """XADD <the event type's stream> MAXLEN ~ 10000 * field value ...   (a plain command,
        no FastStream). `r` may be a pipeline: the entry is then recorded by `execute()`."""
        stream = STREAM_OF[fields["event_type"]]
        entry_id = r.xadd(stream, cast("dict[Any, Any]", fields), maxlen=MAXLEN,
                          approximate=True)
        if isinstance(entry_id, bytes | str):
            self.entries.append((stream, text(entry_id), fields))
        else:
            self._queued.append((stream, fields))

    def execute(self, pipe: Any) -> None:
        """Send a pipeline of `add`s (MULTI ... EXEC: the batch appears at once) and record it."""
        ids = [text(i) for i in pipe.execute()]
        queued, self._queued = self._queued, []
        self.entries += [(s, i, f) for (s, f), i in zip(queued, ids, strict=True)]


def _client(client_id: str) -> Client:
    return next(c for c in CLIENTS if c.client_id == client_id)


def publish_products(r: redis.Redis, out: Published | None = None) -> Published:
    """Wave 1: product metadata first (secretmagic filters inactive products on it)."""
    out = out or Published()
    for c in CLIENTS:
        out.add(r, event_fields("products_updated", c))
    return out


def publish_facts(r: redis.Redis, out: Published | None = None) -> Published:
    """Wave 2: per client one batch (MULTI/EXEC: a reader sees it at once) of sales (a history
    load, then a day's delta), stock and BOM events; then one malformed entry (its `data` is a
    JSON array, not an object). The two sales_updated of a batch are coalesced by secretmagic
    into one recompute; successive batches go to whichever instance is waiting."""
    out = out or Published()
    for c in CLIENTS:
        pipe = r.pipeline(transaction=True)
        batch = [event_fields("sales_updated", c, load="history"),
                 *([] if c.expect_bom_error else [event_fields("stock_updated", c)]),
                 event_fields("bom_updated", c),
                 event_fields("sales_updated", c, load="delta", since=END.isoformat())]
        for fields in batch:
            out.add(pipe, fields)
        out.execute(pipe)
    bad = event_fields("sales_updated", CLIENTS[0])
    bad["data"] = json.dumps(["sales", "not", "an", "object"])
    out.add(r, bad)
    return out


def publish_stock(r: redis.Redis, client_id: str, out: Published | None = None) -> Published:
    """One late stock sync for a client (the demo's transient-failure event)."""
    out = out or Published()
    out.add(r, event_fields("stock_updated", _client(client_id), load="late"))
    return out


# --- command line --------------------------------------------------------------------------------


def _redis_from_env() -> redis.Redis:
    from app import ops
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
