"""The store's tables, defined once: each backend's DDL (store.dialect), its reads and its write
checks (store.frames) come from these specs.

The tables and the contract of their columns are listed in store/__init__.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import polars as pl

__all__ = ["ALL_TABLES", "FENCE", "STAMP_DTYPE", "TABLES", "VERSION", "TableSpec", "table_spec"]


@dataclass(frozen=True)
class TableSpec:
    """One table of the store: its columns as read (name → polars dtype), key and stamp column."""

    name: str
    schema: pl.Schema
    key: tuple[str, ...]
    stamp: str | None = None  # a UTC timestamp the store sets on every replace (not read back)
    owner: str = "secretmagic"  # who writes it: "integrator" (inputs) or "secretmagic" (outputs)

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names())

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
    **cols: pl.DataType,
) -> TableSpec:
    return TableSpec(table, pl.Schema(cols), key, stamp, owner)


_IN = "integrator"

TABLES: Final[Mapping[str, TableSpec]] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            # integrator-owned inputs
            _spec("sales", ("client_id", "product_id", "date"), None, _IN,
                  client_id=_S, product_id=_S, date=_D, qty=_F, amount=_F),
            _spec("stock", ("client_id", "product_id", "date"), None, _IN,
                  client_id=_S, product_id=_S, date=_D, on_hand=_F),
            _spec("bom", ("client_id", "parent_id", "child_id"), None, _IN,
                  client_id=_S, parent_id=_S, child_id=_S, qty_per=_F),
            _spec("products", ("client_id", "product_id"), None, _IN,
                  client_id=_S, product_id=_S, name=_S, category=_S, active=pl.Boolean()),
            # secretmagic-owned outputs
            _spec("features", ("client_id", "product_id", "date", "feature"), "computed_at",
                  client_id=_S, product_id=_S, date=_D, feature=_S, value=_F),
            _spec("bom_exploded", ("client_id", "product_id", "component_id"), "computed_at",
                  client_id=_S, product_id=_S, component_id=_S, quantity=_F, depth=pl.Int32()),
            _spec("product_meta", ("client_id", "product_id"), "refreshed_at",
                  client_id=_S, product_id=_S, category=_S, active=pl.Boolean()),
            # what the last recompute read, per source table (store.digest)
            _spec("input_digests", ("client_id", "source", "product_id", "period"), "computed_at",
                  client_id=_S, source=_S, product_id=_S, period=_D, rows=pl.Int64(),
                  checksum=pl.Int64()),
        )
    }
)


# The version fence: per (client_id, table_name) the version of the last write applied, in the row's
# _version. Internal: not readable through the Store interface.
FENCE: Final = _spec("store_versions", ("client_id", "table_name"), "applied_at",
                     client_id=_S, table_name=_S)

ALL_TABLES: Final[tuple[TableSpec, ...]] = (*TABLES.values(), FENCE)


def table_spec(table: str) -> TableSpec:
    """The spec of a known table; ValueError for any other name (names are never interpolated)."""
    spec = TABLES.get(table) if isinstance(table, str) else None
    if spec is None:
        raise ValueError(f"unknown store table {table!r}; expected one of {', '.join(TABLES)}")
    return spec
