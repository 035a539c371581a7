"""The daily series: sales summed per (client_id, product_id) and day, on a gap-free daily grid
that runs from the product's first sale to its client's last sales day.

Everything downstream works on the grid's flat, sorted columns: a series is a run of rows, `fpos`
counts the days since the run's first row, and a feature at a row is a fixed function of the
rows before it in the same run (no `over` per kernel, no joins on string keys after this).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from core.errors import FatalError

KEYS = ["client_id", "product_id"]
EPOCH = dt.date(1970, 1, 1)


def day_number(day: dt.date) -> int:
    """A date as polars stores it: days since 1970-01-01."""
    return (day - EPOCH).days


@dataclass(frozen=True)
class Grid:
    """`rows`: client_id, product_id, date, qty, sid (the series' index), fpos (days since the
    series' first row here), one row per series and day, sorted by (client_id, product_id, date).
    `series`: one row per series (sid order): client_id, product_id, key, first_sale (the first
    sale read, a date; null if none), start and end (the run's first and last day, Int32 day
    numbers), offset (its first row in `rows`)."""

    rows: pl.DataFrame
    series: pl.DataFrame
    clients: pl.Series  # the sorted categories the keys are built from
    products: pl.Series

    def key(self) -> pl.Expr:
        """(client_id, product_id) as one Int64 (null for a pair this grid does not know)."""
        product = pl.col("product_id").cast(pl.Enum(self.products), strict=False).to_physical()
        client: pl.Expr
        if self.clients.len() == 1:  # one client (the pipeline's case): no second cast
            client = pl.when(pl.col("client_id") == self.clients[0]).then(0)
        else:
            client = pl.col("client_id").cast(pl.Enum(self.clients), strict=False).to_physical()
        return client.cast(pl.Int64) * self.products.len() + product.cast(pl.Int64)

    def locate(self, frame: pl.DataFrame, *, clip: bool = False,
               keys: pl.Series | None = None) -> pl.Series:
        """The grid row of each (client_id, product_id, date) of `frame` (or of `keys` and its
        dates), null off the grid; with `clip`, a day before its series' start counts as the
        start."""
        keys = frame.select(self.key()).to_series() if keys is None else keys
        # a dense table by key: one gather per column instead of a join on the string keys
        size = self.clients.len() * self.products.len()
        by_key = pl.DataFrame({
            c: pl.repeat(None, size, dtype=pl.Int32, eager=True).scatter(
                self.series.get_column("key"), self.series.get_column(c))
            for c in ("start", "end", "offset")
        })
        found = by_key.select(pl.all().gather(keys)).with_columns(
            day=frame.get_column("date").cast(pl.Int32))
        day = pl.max_horizontal("day", "start") if clip else pl.col("day")
        inside = (day >= pl.col("start")) & (day <= pl.col("end"))
        return found.select(
            row=pl.when(inside).then(pl.col("offset") + day - pl.col("start"))).to_series()


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
    clients, names = (known.get_column(c).unique().sort() for c in KEYS)
    grid = Grid(pl.DataFrame(), pl.DataFrame(), clients, names)
    sales = sales.with_columns(key=grid.key(), day=pl.col("date").cast(pl.Int32))

    series = sales.group_by("key").agg(first_sale=pl.col("date").min(), last=pl.col("day").max())
    if continuing is not None:
        carried = continuing.select(grid.key().alias("key"), continues=pl.lit(True))
        series = series.join(carried, on="key", how="full", coalesce=True)
    else:
        series = series.with_columns(continues=pl.lit(False))
    client = pl.col("key") // len(names)
    series = series.with_columns(end=pl.col("last").max().over(client)).drop("last")
    if products is not None:
        inactive = products.filter(~pl.col("active").cast(pl.Boolean)).select(KEYS)
        inactive_keys = inactive.select(grid.key()).to_series().drop_nulls()
        series = series.filter(~pl.col("key").is_in(inactive_keys.implode()))
    start = pl.col("first_sale").cast(pl.Int32)
    if floor is not None:
        start = pl.when(pl.col("continues")).then(pl.lit(day_number(floor))).otherwise(start)
    length = pl.col("end") - pl.col("start") + 1
    series = (
        series.filter(pl.col("end").is_not_null())
        .with_columns(start=start.cast(pl.Int32), end=pl.col("end").cast(pl.Int32))
        .sort("key")
        .with_columns(
            client_id=pl.lit(clients).gather(pl.col("key") // len(names)),
            product_id=pl.lit(names).gather(pl.col("key") % len(names)),
            offset=length.cum_sum() - length,
        )
        .with_row_index("sid")
        .select("sid", "client_id", "product_id", "key", "first_sale", "start", "end", "offset")
    )
    grid = Grid(pl.DataFrame(), series, clients, names)
    rows = (
        series.lazy()
        .select("sid", *KEYS, "start", day=pl.int_ranges("start", pl.col("end") + 1,
                                                       dtype=pl.Int32))
        .explode("day")
        .select(*KEYS, date=pl.col("day").cast(pl.Date), sid="sid",
                fpos=pl.col("day") - pl.col("start"))
        .collect()
    )
    day_sums = summed(grid.locate(sales, keys=sales.get_column("key")),
                      sales.get_column("qty")).drop_nulls("row")
    qty = pl.zeros(rows.height, pl.Float64, eager=True).scatter(
        day_sums.get_column("row"), day_sums.get_column("value"))
    rows = rows.insert_column(3, qty.alias("qty"))
    return Grid(rows, series, clients, names)
