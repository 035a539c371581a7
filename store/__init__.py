"""The analytical store: one small async interface, two backends chosen by a DSN.

    store = open_store("chdb://")                    # embedded chDB, in memory
    store = open_store("chdb:///var/lib/sm/chdb")    # embedded chDB, persistent directory
    store = open_store("chdb://./data/chdb")         # ... relative to the working directory
    store = open_store("clickhouse://user:pass@host:8123/db")   # ClickHouse over HTTP
    store = open_store("clickhouses://user:pass@host:8443/db")  # ... over HTTPS
    store = open_store("mysql://user:pass@host:3306/db")        # MySQL protocol (MariaDB, MySQL)
    store = open_store("starrocks://user:pass@host:9030/db")    # MySQL protocol, StarRocks DDL

    await store.create_tables()
    await store.replace("features", "client-1", frame)   # the client's rows become exactly `frame`
    frame = await store.read("features", "client-1")

`open_store` does no I/O: it validates the DSN (ValueError naming the problem, with the password
masked as ***) and the backend connects on first use. Every method is a coroutine; blocking I/O
runs off the event loop (chDB on one dedicated thread per process, pymysql/HTTP on worker threads).

Errors: a store that is down, unreachable or timing out raises `core.errors.Unavailable` (a
RetryableError the delivery policy waits out) naming the backend and host; other transient
failures raise `core.errors.RetryableError`; a request that can never succeed (missing table,
wrong schema, a bad value, a frame that does not fit the table) raises `core.errors.FatalError`.
Unknown table names and bad arguments raise ValueError. Messages never contain the password.

Tables (key columns marked *, client_id first in every key):

    sales         client_id*, product_id*, date*, qty f64, amount f64
    stock         client_id*, product_id*, date*, on_hand f64
    bom           client_id*, parent_id*, child_id*, qty_per f64
    products      client_id*, product_id*, name, category, active bool
    features      client_id*, product_id*, date*, feature*, value f64      (+ computed_at)
    bom_exploded  client_id*, product_id*, component_id*, quantity f64, depth i32  (+ computed_at)
    product_meta  client_id*, product_id*, category, active bool           (+ refreshed_at)

Ids and names are Utf8, dates pl.Date. Reads return exactly these columns with these dtypes, also
when empty; row order is unspecified. The stamp columns (computed_at/refreshed_at, UTC) are set by
`replace` and not returned. Key columns are never null; the others may be. Floats: NaN is stored as
null (MySQL and StarRocks have no NaN, so both backends behave alike); ±inf is rejected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Final, Protocol, runtime_checkable
from urllib.parse import parse_qsl, unquote, urlsplit

import polars as pl

from core.errors import FatalError
from core.redact import is_identifier, mask_dsn

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


# --- tables ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableSpec:
    """One table of the store: its columns as read (name → polars dtype), key and stamp column."""

    name: str
    schema: pl.Schema
    key: tuple[str, ...]
    stamp: str | None = None  # a UTC timestamp the store sets on every replace (not read back)

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names())


def _spec(
    table: str, key: tuple[str, ...], stamp: str | None = None, /, **cols: pl.DataType
) -> TableSpec:
    return TableSpec(table, pl.Schema(cols), key, stamp)


_S, _D, _F = pl.String(), pl.Date(), pl.Float64()

TABLES: Final[Mapping[str, TableSpec]] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            # integrator-owned inputs
            _spec("sales", ("client_id", "product_id", "date"),
                  client_id=_S, product_id=_S, date=_D, qty=_F, amount=_F),
            _spec("stock", ("client_id", "product_id", "date"),
                  client_id=_S, product_id=_S, date=_D, on_hand=_F),
            _spec("bom", ("client_id", "parent_id", "child_id"),
                  client_id=_S, parent_id=_S, child_id=_S, qty_per=_F),
            _spec("products", ("client_id", "product_id"),
                  client_id=_S, product_id=_S, name=_S, category=_S, active=pl.Boolean()),
            # secretmagic-owned outputs
            _spec("features", ("client_id", "product_id", "date", "feature"), "computed_at",
                  client_id=_S, product_id=_S, date=_D, feature=_S, value=_F),
            _spec("bom_exploded", ("client_id", "product_id", "component_id"), "computed_at",
                  client_id=_S, product_id=_S, component_id=_S, quantity=_F, depth=pl.Int32()),
            _spec("product_meta", ("client_id", "product_id"), "refreshed_at",
                  client_id=_S, product_id=_S, category=_S, active=pl.Boolean()),
        )
    }
)


def table_spec(table: str) -> TableSpec:
    """The spec of a known table; ValueError for any other name (names are never interpolated)."""
    spec = TABLES.get(table) if isinstance(table, str) else None
    if spec is None:
        raise ValueError(f"unknown store table {table!r}; expected one of {', '.join(TABLES)}")
    return spec


def check_client_id(client_id: str) -> str:
    if not isinstance(client_id, str) or not client_id:
        raise ValueError(f"client_id must be a non-empty string, got {client_id!r}")
    return client_id


def empty_frame(spec: TableSpec) -> pl.DataFrame:
    return pl.DataFrame(schema=spec.schema)


def conform(spec: TableSpec, client_id: str, frame: pl.DataFrame) -> pl.DataFrame:
    """Check and cast a frame to write as `client_id`'s rows of `spec`; FatalError if it cannot fit.

    - `client_id` may be left out of the frame (it is filled in); when present, every row must
      carry this client_id;
    - the other columns must be exactly the table's (any order); values are cast (strictly) to the
      table's dtypes: ints to floats, datetimes to dates, ...;
    - key columns must not be null and keys must be unique (the stores would reject or merge them);
    - NaN becomes null; ±inf is rejected.
    """
    if not isinstance(frame, pl.DataFrame):
        raise TypeError(f"replace expects a polars DataFrame, got {type(frame).__name__}")
    if "client_id" not in frame.columns:
        frame = frame.with_columns(pl.lit(client_id, dtype=pl.String).alias("client_id"))
    missing = [c for c in spec.columns if c not in frame.columns]
    extra = [c for c in frame.columns if c not in spec.schema]
    if missing or extra:
        raise FatalError(
            f"{spec.name}: frame columns do not match the table"
            + (f"; missing {missing}" if missing else "")
            + (f"; unexpected {extra}" if extra else "")
            + f" (expected {spec.columns})"
        )
    try:
        out = frame.select(pl.col(c).cast(spec.schema[c], strict=True) for c in spec.columns)
    except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
        wrong = {c: str(frame.schema[c]) for c in spec.columns if frame.schema[c] != spec.schema[c]}
        raise FatalError(
            f"{spec.name}: cannot cast columns {wrong} to the table's types: {exc}"
        ) from None
    if out.height == 0:
        return out
    floats = [c for c, t in spec.schema.items() if t == pl.Float64]
    if floats:
        out = out.with_columns(pl.col(floats).fill_nan(None))
        infinite = [c for c in floats if out.get_column(c).is_infinite().any()]
        if infinite:
            raise FatalError(f"{spec.name}: infinite values in {infinite} cannot be stored")
    foreign = out.filter(pl.col("client_id") != client_id)
    if foreign.height:
        raise FatalError(
            f"{spec.name}: {foreign.height} row(s) belong to another client "
            f"(e.g. {foreign.item(0, 'client_id')!r}) in a replace for {client_id!r}"
        )
    null_keys = [c for c in spec.key if out.get_column(c).null_count()]
    if null_keys:
        raise FatalError(f"{spec.name}: null values in key column(s) {null_keys}")
    keys = out.select(spec.key)
    if keys.n_unique() != out.height:
        dup = keys.filter(keys.is_duplicated())
        raise FatalError(
            f"{spec.name}: {dup.height} rows share a key, e.g. {dup.row(0, named=True)}"
        )
    return out


def cast_read(spec: TableSpec, frame: pl.DataFrame) -> pl.DataFrame:
    """Columns in the spec's order with the spec's dtypes (a backend's read result)."""
    return frame.select(pl.col(c).cast(t) for c, t in spec.schema.items())


def load_ddl(dialect: str) -> list[str]:
    """The statements of store/ddl/<dialect>.sql (`--` line comments dropped, split at `;`)."""
    text = resources.files(__name__).joinpath("ddl", f"{dialect}.sql").read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


# --- DSN ---------------------------------------------------------------------------------------

SCHEMES: Final = ("chdb", "clickhouse", "clickhouses", "mysql", "starrocks")
DEFAULT_PORTS: Final = {"clickhouse": 8123, "clickhouses": 8443, "mysql": 3306, "starrocks": 9030}
# Options a DSN may carry as query parameters, per scheme (anything else is a typo: ValueError).
OPTIONS: Final[Mapping[str, frozenset[str]]] = {
    "chdb": frozenset({"database"}),
    "clickhouse": frozenset({"connect_timeout", "send_receive_timeout"}),
    "clickhouses": frozenset({"connect_timeout", "send_receive_timeout", "verify"}),
    "mysql": frozenset(
        {"pool_size", "connect_timeout", "read_timeout", "write_timeout",
         "batch_rows", "batch_bytes"}
    ),
}


@dataclass(frozen=True)
class StoreDSN:
    """A parsed, validated store DSN. `password` stays out of repr."""

    scheme: str
    host: str = ""
    port: int = 0
    user: str = ""
    password: str = field(default="", repr=False)
    database: str = ""
    path: str = ""  # chdb only: "" = in memory, else a directory
    options: Mapping[str, str] = field(default_factory=dict)
    masked: str = ""

    @property
    def where(self) -> str:
        """Host and port (or the chDB location) for error messages."""
        if self.scheme == "chdb":
            return self.path or ":memory:"
        return f"{self.host}:{self.port}"

    def option(self, name: str, default: float) -> float:
        raw = self.options.get(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(
                f"store DSN option {name}={raw!r} is not a number in {self.masked}"
            ) from None
        if value <= 0:
            raise ValueError(f"store DSN option {name}={raw!r} must be positive in {self.masked}")
        return value


def parse_dsn(dsn: str) -> StoreDSN:
    """Validate a store DSN; ValueError naming the problem (password masked) if it is wrong."""
    if not isinstance(dsn, str):
        raise ValueError(f"store DSN must be a string, got {type(dsn).__name__}")
    masked = mask_dsn(dsn)
    scheme, sep, _ = dsn.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in SCHEMES:
        shown = scheme if sep and len(scheme) <= 30 else masked
        raise ValueError(
            f"unsupported store DSN scheme {shown!r}: expected one of "
            f"{', '.join(s + '://' for s in SCHEMES)} (DSN: {masked})"
        )
    try:
        parts = urlsplit(dsn)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid port in store DSN {masked} ({exc})") from None
    if parts.fragment:
        raise ValueError(f"store DSN must not have a #fragment: {masked}")
    try:
        query = parts.query
        options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError:
        raise ValueError(f"malformed query string in store DSN {masked}") from None
    allowed = OPTIONS["mysql" if scheme == "starrocks" else scheme]
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} in {scheme} store DSN {masked}; "
            f"allowed: {sorted(allowed)}"
        )

    if scheme == "chdb":
        if parts.username is not None or parts.password is not None or port is not None:
            raise ValueError(f"a chdb:// DSN takes a path, not a user, password or port: {masked}")
        location = unquote(parts.netloc + parts.path)
        if location in ("memory", ":memory:"):
            location = ""
        database = options.pop("database", "secretmagic")
        if not is_identifier(database):
            raise ValueError(f"invalid database name {database!r} in store DSN {masked}")
        return StoreDSN(scheme, path=location, database=database, options=options, masked=masked)

    host = parts.hostname or ""
    if not host:
        raise ValueError(f"store DSN needs a host: {masked}")
    if port is None:
        port = DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        raise ValueError(f"invalid port {port} in store DSN {masked}")
    database = unquote(parts.path.lstrip("/"))
    if scheme in ("mysql", "starrocks"):
        if not database:
            raise ValueError(f"store DSN needs a database (…/dbname): {masked}")
        if "/" in database or len(database) > 64:
            raise ValueError(f"invalid database name {database!r} in store DSN {masked}")
    else:
        database = database or "default"
        if not is_identifier(database):
            raise ValueError(f"invalid database name {database!r} in store DSN {masked}")
    return StoreDSN(
        scheme,
        host=host,
        port=port,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        database=database,
        options=options,
        masked=masked,
    )


# --- the interface -----------------------------------------------------------------------------


@runtime_checkable
class Store(Protocol):
    """The analytical store. All methods are coroutines; none blocks the event loop."""

    name: str  # "chdb" / "clickhouse" / "mysql" / "starrocks", for logs

    async def create_tables(self) -> None:
        """Create the seven tables if missing (idempotent)."""

    async def read(self, table: str, client_id: str) -> pl.DataFrame:
        """All of a client's rows of `table` (exact columns and dtypes, also when empty)."""
        ...

    async def replace(self, table: str, client_id: str, frame: pl.DataFrame) -> int:
        """Make the client's rows of `table` exactly `frame` (idempotent); return rows written."""
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
