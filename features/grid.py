"""The daily series: sales summed per (client_id, product_id) and day, on a gap-free daily grid
that runs from the product's first sale to its client's last sales day.

Everything downstream works on the grid's flat, sorted columns: a series is a run of rows, `fpos`
counts the days since the run's first row, and a feature at a row is a fixed function of the
rows before it in the same run (no `over` per kernel, no joins on string keys). The keys become
integers once (polars Enum codes); the grid's index arithmetic is numpy's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import polars as pl

from core.errors import FatalError

KEYS = ["client_id", "product_id"]
EPOCH = dt.date(1970, 1, 1)
NONE = np.iinfo(np.int32).max  # "no day" in the day-number arrays
ROWS_SCHEMA = pl.Schema({"client_id": pl.String(), "product_id": pl.String(), "date": pl.Date(),
                         "qty": pl.Float64(), "sid": pl.UInt32(), "fpos": pl.Int32()})


def day_number(day: dt.date) -> int:
    """A date as polars stores it: days since 1970-01-01."""
    return (day - EPOCH).days


@dataclass(frozen=True)
class Grid:
    """`rows`: ROWS_SCHEMA, one row per series and day, sorted by (client_id, product_id, date);
    sid is the series' index, fpos the days since the series' first row here. Per series (numpy,
    in sid order): `keys`, `first` (the first sale read, a day number; NONE if none), `start` and
    `end` (the run's first and last day), `offset` (its first row in `rows`)."""

    rows: pl.DataFrame
    clients: pl.Series  # the sorted categories the keys are made of
    products: pl.Series
    keys: np.ndarray
    first: np.ndarray
    start: np.ndarray
    end: np.ndarray
    offset: np.ndarray

    @cached_property
    def sid_by_key(self) -> np.ndarray:
        """key -> sid, -1 for a key with no series."""
        out = np.full(self.clients.len() * self.products.len(), -1, np.int64)
        out[self.keys] = np.arange(self.keys.size)
        return out

    @cached_property
    def series(self) -> pl.DataFrame:
        """One row per series: client_id, product_id, first_sale, start, end (dates)."""
        first = pl.Series(self.first)
        return pl.DataFrame({
            "client_id": self.clients.gather(self.keys // self.products.len()),
            "product_id": self.products.gather(self.keys % self.products.len()),
            "first_sale": first.set(first == NONE, None).cast(pl.Date),
            "start": pl.Series(self.start, dtype=pl.Int32).cast(pl.Date),
            "end": pl.Series(self.end, dtype=pl.Int32).cast(pl.Date),
        })

    def key(self, *, known_client: bool = False) -> pl.Expr:
        """(client_id, product_id) as one Int64: client code * len(products) + product code
        (null for a pair this grid's categories do not have; `known_client`: every row's client
        is one of them)."""
        product = pl.col("product_id").cast(pl.Enum(self.products), strict=False).to_physical()
        client: pl.Expr
        if self.clients.len() == 1:  # one client (the pipeline's case): no second cast
            client = pl.lit(0) if known_client else pl.when(
                pl.col("client_id") == self.clients[0]).then(0)
        else:
            client = pl.col("client_id").cast(pl.Enum(self.clients), strict=False).to_physical()
        return client.cast(pl.Int64) * self.products.len() + product.cast(pl.Int64)

    def locate(self, frame: pl.DataFrame, *, clip: bool = False) -> pl.Series:
        """The grid row of each (client_id, product_id, date) of `frame`, null off the grid; with
        `clip`, a day before its series' start counts as the start."""
        keys = frame.select(self.key()).to_series().fill_null(-1).to_numpy()
        rows = self.row_of(keys, frame.get_column("date").cast(pl.Int32).to_numpy(), clip)
        found = pl.Series("row", rows)
        return found.set(found < 0, None)

    def row_of(self, keys: np.ndarray, days: np.ndarray, clip: bool) -> np.ndarray:
        """locate's rows of (key, day number) pairs, -1 off the grid."""
        if self.keys.size == 0:
            return np.full(keys.size, -1, np.int64)
        sid = np.where(keys >= 0, self.sid_by_key[np.maximum(keys, 0)], -1)
        known = np.maximum(sid, 0)
        start, end = self.start[known], self.end[known]
        days = np.maximum(days, start) if clip else days
        inside = (sid >= 0) & (days >= start) & (days <= end)
        return np.where(inside, self.offset[known] + days - start, -1)


def daily(sales: pl.DataFrame) -> pl.DataFrame:
    """client_id, product_id, date, qty of the dated, keyed sales rows (a null qty counts as 0);
    a non-finite qty is a FatalError naming its row."""
    rows = sales.lazy().select(
        pl.col(KEYS).cast(pl.Utf8),
        pl.col("date").cast(pl.Date),
        pl.col("qty").cast(pl.Float64).fill_null(0.0),
    ).drop_nulls([*KEYS, "date"]).collect()
    finite(rows, "qty", "sales")
    return rows


def finite(frame: pl.DataFrame, column: str, table: str) -> None:
    if frame.get_column(column).is_finite().all():
        return
    bad = frame.filter(~pl.col(column).is_finite())
    if bad.height:
        row = bad.row(0, named=True)
        raise FatalError(f"{table}: {column} must be a finite number, got {row[column]} for "
                         f"client {row['client_id']!r}, product {row['product_id']!r} on "
                         f"{row['date']} ({bad.height} such rows)")


def summed(row: pl.Series, value: pl.Series) -> pl.DataFrame:
    """(row, value) with the values of one row summed. Float addition is not associative, so each
    row's values are added in one fixed order (ascending): the same rows give the same bits
    whatever order a read returns them in (polars keeps the order of rows within a group)."""
    frame = pl.DataFrame([row.alias("row"), value.alias("value")])
    if row.n_unique() == row.len():
        return frame
    return frame.sort("row", "value").group_by("row").agg(pl.col("value").sum())


def _distinct(values: pl.Series) -> pl.Series:
    """The sorted distinct values (one compare when they are all the same, as client_id is)."""
    if values.len() and (values == values[0]).all():
        return values.head(1)
    return values.unique().sort()


def build(sales: pl.DataFrame, products: pl.DataFrame | None, *, floor: dt.date | None = None,
          continuing: pl.DataFrame | None = None) -> Grid:
    """The grid of `sales` (daily(...) rows). Products with active == False in `products` are
    left out (absent or null: active); every client's grid ends on its last sales day, inactive
    products' days included. With `floor`, rows before it are ignored, and the series named in
    `continuing` (client_id, product_id) began before it: their runs start at `floor`."""
    if floor is not None:
        sales = sales.filter(pl.col("date") >= floor)
    known = sales.select(KEYS) if continuing is None else pl.concat(
        [sales.select(KEYS), continuing.select(KEYS)])
    clients, names = (_distinct(known.get_column(c)) for c in KEYS)
    size = clients.len() * names.len()
    empty = np.empty(0, np.int64)
    codes = Grid(ROWS_SCHEMA.to_frame(), clients, names, empty, empty, empty, empty, empty)
    if size == 0:
        return codes
    key = sales.select(codes.key(known_client=True)).to_series().to_numpy()
    day = sales.get_column("date").cast(pl.Int32).to_numpy().astype(np.int64)  # ufunc.at's dtype

    first = np.full(size, NONE, np.int64)
    np.minimum.at(first, key, day)
    last = np.full(size, -NONE, np.int64)
    np.maximum.at(last, key, day)
    ends = last.reshape(clients.len(), names.len()).max(axis=1)
    start = first.copy()
    if continuing is not None and floor is not None:
        start[continuing.select(codes.key()).to_series().to_numpy()] = day_number(floor)
    keep = (start != NONE) & (ends[np.arange(size) // names.len()] != -NONE)
    if products is not None:
        inactive = products.filter(~pl.col("active").cast(pl.Boolean))
        keep[inactive.select(codes.key()).to_series().drop_nulls().to_numpy()] = False

    keys = np.flatnonzero(keep)  # sorted: sid order is (client, product) order
    if keys.size == 0:
        return codes
    starts, series_end = start[keys], ends[keys // names.len()]
    lengths = series_end - starts + 1
    offsets = np.cumsum(lengths) - lengths
    grid = Grid(ROWS_SCHEMA.to_frame(), clients, names, keys, first[keys], starts, series_end,
                offsets)

    row_sid = np.repeat(np.arange(keys.size, dtype=np.uint32), lengths)
    fpos = np.arange(row_sid.size) - offsets[row_sid]
    sid = grid.sid_by_key[key]  # the grid holds every day of every kept series: no bounds check
    inside = sid >= 0
    at = offsets[sid] + day - starts[sid]
    qty_read = sales.get_column("qty")
    if not inside.all():
        at, qty_read = at[inside], qty_read.filter(pl.Series(inside))
    day_sums = summed(pl.Series(at), qty_read)
    qty = np.zeros(row_sid.size)
    qty[day_sums.get_column("row").to_numpy()] = day_sums.get_column("value").to_numpy()
    row_keys = keys[row_sid]
    rows = pl.DataFrame({
        "client_id": (pl.repeat(clients[0], row_sid.size, eager=True) if clients.len() == 1
                      else clients.gather(row_keys // names.len())),
        "product_id": names.gather(row_keys % names.len()),
        "date": pl.Series(starts[row_sid] + fpos, dtype=pl.Int32).cast(pl.Date),
        "qty": qty,
        "sid": pl.Series(row_sid).set_sorted(),
        "fpos": pl.Series(fpos, dtype=pl.Int32),
    }, schema=ROWS_SCHEMA)
    return Grid(rows, clients, names, keys, first[keys], starts, series_end, offsets)
