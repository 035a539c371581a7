"""The analytical store: one small async interface, two backends chosen by a DSN.

    store = open_store("chdb://")                    # embedded chDB, in memory
    store = open_store("chdb:///var/lib/sm/chdb")    # embedded chDB, persistent directory
    store = open_store("chdb://./data/chdb")         # ... relative to the working directory
    store = open_store("clickhouse://user:pass@host:8123/db")   # ClickHouse over HTTP
    store = open_store("clickhouses://user:pass@host:8443/db")  # ... over HTTPS
    store = open_store("mysql://user:pass@host:3306/db")        # MySQL protocol (MariaDB, MySQL)
    store = open_store("starrocks://user:pass@host:9030/db")    # MySQL protocol, StarRocks DDL

    await store.create_tables()
    await store.replace("bom", "client-1", frame)     # the client's rows become exactly `frame`
    frame = await store.read("bom", "client-1")

    # incremental: a run serving stream entry `entry_id`, rewriting from `since` on
    sales = await store.read("sales", "client-1", since=since - warm_up)
    await store.replace("daily_features", "client-1", wide, since=since,
                        version=wire.position(entry_id))
    changed = await store.digest("sales", "client-1")  # per product and month, on the server

`open_store` does no I/O: it validates the DSN (ValueError naming the problem, with the password
masked as ***) and the backend connects on first use. Every method is a coroutine; blocking I/O
runs off the event loop (chDB on one dedicated thread per process, pymysql/HTTP on worker threads).

Versions (the fence of issue 13): every write carries `version` (core.wire.position of the
newest event its run serves; core.wire.position_now() when it is not given, i.e. when no event
asked). The store keeps per (client_id, table) the version last applied (table store_versions,
and in every row the `_version` of the write that put it there). A write with a LOWER version
changes nothing and raises core.errors.Superseded; an equal one is the same event again and is
applied (idempotent). What each backend guarantees:

    mysql://      exact: one transaction locks the fence row (SELECT ... FOR UPDATE), compares,
                  writes, moves the fence; replaces of one client's table are serialised.
    chdb://       exact within the process (chDB data belongs to one process): check and insert
                  run in one call on the engine's only thread.
    clickhouse:// the check is a read before the insert. Racing writers both pass it; then per
                  key the higher version wins (ReplacingMergeTree's version column is the write's
                  version), but keys only the older write had may survive until the next write.
    starrocks://  the check is a read before the writes, which are not one transaction (see
                  store.mysql): two writers racing past it may interleave.

Errors: a store that is down, unreachable or timing out raises `core.errors.Unavailable` (a
RetryableError the delivery policy waits out) naming the backend and host; other transient
failures raise `core.errors.RetryableError`; a request that can never succeed (missing table,
wrong schema, a bad value, a frame that does not fit the table) raises `core.errors.FatalError`.
Unknown table names and bad arguments raise ValueError. Messages never contain the password.

Incremental I/O: `read(..., since=d)` returns the client's rows dated d or later;
`replace(..., since=d)` makes exactly those rows the frame (every frame row must be dated d or
later, earlier rows stay as they are); both only for tables with a `date`. `digest(table, client,
period="day"|"week"|"month", since=)` gives per (product_id, period) the row count and a checksum
computed in SQL: comparing it with the digest kept from the last recompute (`input_digests`,
store.digest.changed_since) tells from which period each product changed, without moving rows.

Tables (key columns marked *, client_id first in every key):

    sales            client_id*, product_id*, date*, qty f64, amount f64
    stock            client_id*, product_id*, date*, on_hand f64
    bom              client_id*, parent_id*, child_id*, qty_per f64, and optional (a frame may
                     leave them out: null) base_qty, scrap_pct, uom_factor f64, phantom bool,
                     valid_from, valid_to date, lead_days i32 (bom.lines: what null means)
    products         client_id*, product_id*, name, category, active bool
    bom_exploded     client_id*, product_id*, component_id*, quantity f64, depth i32 (+ stamp)
    product_meta     client_id*, product_id*, category, active bool  (+ refreshed_at)
    daily_features   client_id*, product_id*, date*, then one f64 column per feature (+ computed_at)
    feature_profiles client_id*, product_id*, kind*, period* i32, value f64, qty_sum str,
                     days i64  (+ computed_at)
    input_digests    client_id*, source*, product_id*, date*, rows i64, checksum i64
    bom_exploded_dated client_id*, product_id*, component_id*, lead_days* i32, range_no* i32,
                     valid_from, valid_to date, quantity f64, depth i32, leaf bool (+ stamp)
    component_demand client_id*, component_id*, date*, demand f64  (+ computed_at)
    component_features / component_profiles: daily_features / feature_profiles of the component
                     demand series, component_id for product_id (README, "BOM")

daily_features is the feature store's table (Feast/Hopsworks layout): its feature columns are
store.schema.feature_columns(params) (ema_{s}, ma_{w}, std_{w}, lag_{k}, stock_on_hand,
days_of_cover). A write may bring columns the table lacks: the store adds them (ADD COLUMN, once,
safe when instances race). A feature dropped from the parameters keeps its column: it is no
longer written, so it is null in every row written after the change and keeps its old values in
rows not rewritten since (a `since` write leaves the earlier rows alone); drop the column by hand
when no reader needs it. Reads return the keys and then every feature column the table has,
sorted by name. Seasonality is a fact about a product, not a day: feature_profiles holds it,
kind "dow" (period 1 = Monday .. 7) or "moy" (1 = January .. 12). A trainer reads a client:

    SELECT * FROM daily_features WHERE client_id = 'c1'            -- any SQL client
    frame = await open_store(dsn).read("daily_features", "c1")   # polars

Ids and names are Utf8, dates pl.Date. Reads return exactly these columns with these dtypes, also
when empty; row order is unspecified. The stamp columns (computed_at/refreshed_at, UTC) are set by
`replace` and not returned. Key columns are never null; the others may be. Floats: NaN is stored as
null (MySQL and StarRocks have no NaN, so both backends behave alike); ±inf is rejected.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol, runtime_checkable

import polars as pl

from core.redact import mask_dsn
from store.digest import Period
from store.dsn import StoreDSN, parse_dsn
from store.frames import conform, empty_frame
from store.schema import TABLES, TableSpec, table_spec

__all__ = [
    "TABLES",
    "Store",
    "StoreDSN",
    "TableSpec",
    "conform",
    "empty_frame",
    "mask_dsn",
    "open_store",
    "parse_dsn",
    "table_spec",
]


# --- the interface -----------------------------------------------------------------------------


@runtime_checkable
class Store(Protocol):
    """The analytical store. All methods are coroutines; none blocks the event loop."""

    name: str  # "chdb" / "clickhouse" / "mysql" / "starrocks", for logs

    async def create_tables(self) -> None:
        """Create the tables if missing and add the columns an older version's tables lack
        (idempotent)."""

    async def read(
        self, table: str, client_id: str, *, since: dt.date | None = None
    ) -> pl.DataFrame:
        """A client's rows of `table` (exact columns and dtypes, also when empty); with `since`,
        only those dated from it on."""
        ...

    async def replace(
        self, table: str, client_id: str, frame: pl.DataFrame, *,
        since: dt.date | None = None, version: int | None = None,
    ) -> int:
        """Make the client's rows of `table` (from `since` on; without it: all of them) exactly
        `frame` (idempotent); return rows written. Refused with Superseded, changing nothing, if
        the store already holds a write of this client's `table` at a higher `version` (None:
        core.wire.position_now())."""
        ...

    async def digest(
        self, table: str, client_id: str, *, period: Period = "month",
        since: dt.date | None = None, by_product: bool = True,
        columns: tuple[str, ...] | None = None,
    ) -> pl.DataFrame:
        """Per (product_id, period) of a dated table: rows and a checksum, computed by the server
        (store.digest: where the client's data changed, without moving its rows); by_product
        False: per period only (product_id ''; cheaper: one row per period); `columns`: the
        value columns hashed (all by default; the key always)."""
        ...

    async def clients(self, table: str) -> list[str]:
        """The client ids that have rows in `table`, sorted (e.g. `secretmagic recompute
        --all`)."""
        ...

    async def ping(self) -> None:
        """Raise Unavailable if the store cannot be reached."""

    async def close(self) -> None:
        """Release connections (idempotent). The store is unusable afterwards."""


def open_store(dsn: str) -> Store:
    """A store for `dsn` (see the module doc). No I/O happens until the first call."""
    parsed = parse_dsn(dsn)
    if parsed.scheme in ("mysql", "starrocks"):
        from store.mysql import MySQLStore

        return MySQLStore(parsed)
    from store.clickhouse import ClickHouseStore

    return ClickHouseStore(parsed)
