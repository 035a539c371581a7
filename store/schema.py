"""The store's tables, defined once: each backend's DDL (store.dialect), its reads and its write
checks (store.frames) come from these specs.

The tables and the contract of their columns are listed in store/__init__.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Final, Protocol

import polars as pl

__all__ = [
    "ALL_TABLES", "FEATURE_COLUMN", "FENCE", "STAMP_DTYPE", "TABLES", "VERSION", "FeatureParams",
    "TableSpec", "feature_columns", "table_spec",
]


@dataclass(frozen=True)
class TableSpec:
    """One table of the store: its columns as read (name → polars dtype), key and stamp column."""

    name: str
    schema: pl.Schema
    key: tuple[str, ...]
    stamp: str | None = None  # a UTC timestamp the store sets on every replace (not read back)
    owner: str = "secretmagic"  # who writes it: "integrator" (inputs) or "secretmagic" (outputs)
    # A wide table: besides `schema` it has one nullable Float64 column per feature, added
    # (ADD COLUMN) when a write brings a new one; reads return those the table has.
    extensible: bool = False
    # Value columns a written frame may leave out (written as null): columns added to an
    # integrator's table after writers of its older shape existed.
    optional: frozenset[str] = frozenset()

    def extended(self, features: Iterable[str]) -> TableSpec:
        """This wide table with these feature columns (after the key columns, sorted by name)."""
        extra = {name: pl.Float64() for name in sorted(set(features) - set(self.schema))}
        return replace(self, schema=pl.Schema({**self.schema, **extra}))

    def as_read(self, names: Iterable[str]) -> TableSpec:
        """A wide table as a read found it: with the feature columns among `names` (the table's
        columns; the store's own, such as the stamp and the version, are left out)."""
        internal = {self.stamp, VERSION, "_deleted"}
        return self.extended(n for n in names if n not in self.schema and n not in internal)

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names())

    @property
    def storage_key(self) -> tuple[str, ...]:
        """The key in the order the backends sort and index it: client_id, then the date (if
        the key has one), then the rest. A client's rows from a date on (`since`) are then one
        range of the index; a whole client's rows are one range either way."""
        dated = ("date",) if "date" in self.key else ()
        return ("client_id", *dated, *(c for c in self.key if c not in ("client_id", "date")))

    @property
    def values(self) -> list[str]:
        """The columns that are not part of the key."""
        return [c for c in self.schema.names() if c not in self.key]


STAMP_DTYPE: Final = pl.Datetime("us", "UTC")
# Every table of every backend has this column: the version (core.wire.position of an event) of
# the write that put the row there. Not read back.
VERSION: Final = "_version"

_S, _D, _F = pl.String(), pl.Date(), pl.Float64()


def _spec(
    table: str, key: tuple[str, ...], stamp: str | None = None, owner: str = "secretmagic", /,
    extensible: bool = False, optional: Iterable[str] = (), **cols: pl.DataType,
) -> TableSpec:
    return TableSpec(table, pl.Schema(cols), key, stamp, owner, extensible, frozenset(optional))


_IN = "integrator"
_BOM_OPTIONS = ("base_qty", "scrap_pct", "phantom", "valid_from", "valid_to", "uom_factor",
                "lead_days")

TABLES: Final[Mapping[str, TableSpec]] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            # integrator-owned inputs
            _spec("sales", ("client_id", "product_id", "date"), None, _IN,
                  client_id=_S, product_id=_S, date=_D, qty=_F, amount=_F),
            _spec("stock", ("client_id", "product_id", "date"), None, _IN,
                  client_id=_S, product_id=_S, date=_D, on_hand=_F),
            # the BOM's optional line columns (bom.lines: null = the default) may be left out
            _spec("bom", ("client_id", "parent_id", "child_id"), None, _IN,
                  optional=_BOM_OPTIONS, client_id=_S, parent_id=_S, child_id=_S, qty_per=_F,
                  base_qty=_F, scrap_pct=_F, phantom=pl.Boolean(), valid_from=_D, valid_to=_D,
                  uom_factor=_F, lead_days=pl.Int32()),
            _spec("products", ("client_id", "product_id"), None, _IN,
                  client_id=_S, product_id=_S, name=_S, category=_S, active=pl.Boolean()),
            # secretmagic-owned outputs
            _spec("bom_exploded", ("client_id", "product_id", "component_id"), "computed_at",
                  client_id=_S, product_id=_S, component_id=_S, quantity=_F, depth=pl.Int32()),
            _spec("product_meta", ("client_id", "product_id"), "refreshed_at",
                  client_id=_S, product_id=_S, category=_S, active=pl.Boolean()),
            # the feature store (Feast/Hopsworks layout): one row per product and day, one column
            # per feature (feature_columns); per-product seasonality profiles beside it
            _spec("daily_features", ("client_id", "product_id", "date"), "computed_at",
                  extensible=True, client_id=_S, product_id=_S, date=_D),
            _spec("feature_profiles", ("client_id", "product_id", "kind", "period"),
                  "computed_at", client_id=_S, product_id=_S, kind=_S, period=pl.Int32(),
                  value=_F, qty_sum=_S, days=pl.Int64()),  # exact sums (text): see profiles
            # bom.explode_dated: per (product, component, lead) its date ranges, numbered 1..
            # in date order (valid_from/valid_to null = open), quantity with every line option
            _spec("bom_exploded_dated",
                  ("client_id", "product_id", "component_id", "lead_days", "range_no"),
                  "computed_at", client_id=_S, product_id=_S, component_id=_S,
                  lead_days=pl.Int32(), range_no=pl.Int32(), valid_from=_D, valid_to=_D,
                  quantity=_F, depth=pl.Int32(), leaf=pl.Boolean()),
            # component demand (bom.component_demand) and its features: daily_features and
            # feature_profiles with component_id for product_id, the demand series for qty
            _spec("component_demand", ("client_id", "component_id", "date"), "computed_at",
                  client_id=_S, component_id=_S, date=_D, demand=_F),
            _spec("component_features", ("client_id", "component_id", "date"), "computed_at",
                  extensible=True, client_id=_S, component_id=_S, date=_D),
            _spec("component_profiles", ("client_id", "component_id", "kind", "period"),
                  "computed_at", client_id=_S, component_id=_S, kind=_S, period=pl.Int32(),
                  value=_F),
            # what the last recompute read, per source table (store.digest)
            # (`date` the period's first day, so that a recompute rewrites them from a date on)
            _spec("input_digests", ("client_id", "source", "product_id", "date"), "computed_at",
                  client_id=_S, source=_S, product_id=_S, date=_D, rows=pl.Int64(),
                  checksum=pl.Int64()),
        )
    }
)


# The version fence: per (client_id, table_name) the version of the last write applied, in the row's
# _version. Internal: not readable through the Store interface.
FENCE: Final = _spec("store_versions", ("client_id", "table_name"), "applied_at",
                     client_id=_S, table_name=_S)

ALL_TABLES: Final[tuple[TableSpec, ...]] = (*TABLES.values(), FENCE)


# A feature column's name: it becomes a column of every backend, so a plain lower-case identifier.
FEATURE_COLUMN: Final = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class FeatureParams(Protocol):
    """What feature_columns reads of the feature parameters (features.FeatureParams has it)."""

    @property
    def ema_spans(self) -> tuple[int, ...]: ...
    @property
    def ma_windows(self) -> tuple[int, ...]: ...
    @property
    def std_windows(self) -> tuple[int, ...]: ...
    @property
    def lags(self) -> tuple[int, ...]: ...


def feature_columns(params: FeatureParams, stock: bool = True) -> list[str]:
    """The daily_features columns for these parameters: ema_{s}, ma_{w}, std_{w}, lag_{k}, then
    stock_on_hand and days_of_cover (cover needs an ma window). Seasonality profiles are not
    columns: they go to feature_profiles."""
    names = [f"ema_{s}" for s in params.ema_spans] + [f"ma_{w}" for w in params.ma_windows]
    names += [f"std_{w}" for w in params.std_windows] + [f"lag_{k}" for k in params.lags]
    if stock:
        names += ["stock_on_hand", *(["days_of_cover"] if params.ma_windows else [])]
    return names


def table_spec(table: str) -> TableSpec:
    """The spec of a known table; ValueError for any other name (names are never interpolated)."""
    spec = TABLES.get(table) if isinstance(table, str) else None
    if spec is None:
        raise ValueError(f"unknown store table {table!r}; expected one of {', '.join(TABLES)}")
    return spec
