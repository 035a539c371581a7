"""Component demand: what the sales of top products imply for their components, day by day.

demand(component c, day d) = Σ over the exploded rows (product p, c, lead L, range R) with
d + L in R of sales(p, d + L) × quantity: a unit of p sold on day s needs `quantity` of c as the
BOM stood on s, L days earlier (the lines' lead_days summed along the path). The output has the
shape of the sales the feature families read, with component_id in place of product_id and
demand in place of qty, and a row only where some sale implies demand (features fill the daily
grid). Sales rows with a null product_id, date or qty imply nothing and are skipped; a
non-finite qty is a FatalError naming its row.

Computed as matrix products, not a join: the day × product sales matrix times, per lead and per
stretch of days on which no range starts or ends, the product × component quantity matrix (the
join of every sale with every component of its product is ~50x more rows than the result and
took 3x DuckDB's time). numpy's einsum, not BLAS: it sums each day's products in one fixed
order whatever the number of days, so a day appended leaves every earlier day's demand the same
to the bit (BLAS's blocking depends on the matrix shape), and the pipeline rewrites only what
changed. Same-day rows of a product are added in ascending order, so any row order gives the
same bits.
"""

from itertools import pairwise

import numpy as np
import polars as pl

from core.errors import FatalError

SALES_COLUMNS = ("client_id", "product_id", "date", "qty")

DEMAND_SCHEMA = pl.Schema(
    {
        "client_id": pl.Utf8,
        "component_id": pl.Utf8,
        "date": pl.Date,
        "demand": pl.Float64,
    }
)

_LOW, _HIGH = -(2**31), 2**31 - 1


def component_demand(sales: pl.DataFrame, exploded: pl.DataFrame) -> pl.DataFrame:
    """(client_id, component_id, date, demand) sorted by component and date, from one client's
    `sales` (client_id, product_id, date, qty; other columns ignored) and that client's
    `explode_dated` result."""
    typed = sales.select(
        pl.col("client_id").cast(pl.Utf8),
        pl.col("product_id").cast(pl.Utf8),
        pl.col("date").cast(pl.Date),
        pl.col("qty").cast(pl.Float64),
    ).drop_nulls(["product_id", "date", "qty"])
    clients = typed["client_id"].unique()
    if clients.len() > 1:
        raise ValueError(f"component_demand takes one client's sales, got {clients.len()} "
                         f"clients ({', '.join(map(repr, clients.sort().head(3)))}, ...)")
    _check_finite(typed)
    per_unit = exploded.select(
        "product_id", "component_id", "lead_days", "quantity",
        start=pl.col("valid_from").cast(pl.Int32).fill_null(_LOW),
        end=(pl.col("valid_to").cast(pl.Int32) + 1).fill_null(_HIGH),
    ).join(typed.select("product_id").unique(), on="product_id", how="semi")
    if per_unit.is_empty():
        return DEMAND_SCHEMA.to_frame()
    products = per_unit["product_id"].unique().sort()
    components = per_unit["component_id"].unique().sort()
    sold = typed.join(per_unit.select("product_id").unique(), on="product_id", how="semi").sort(
        "date", "product_id", "qty")
    day = sold["date"].cast(pl.Int32).to_numpy()
    first, days = int(day.min()), int(day.max() - day.min()) + 1
    product = sold["product_id"].cast(pl.Enum(products)).to_physical().to_numpy()
    qty = np.zeros((days, products.len()))
    np.add.at(qty, (day - first, product), sold["qty"].to_numpy())
    count = None
    if not (sold["qty"] > 0).all():  # zero or negative sales: demand 0 is no proof of no sale
        count = np.zeros_like(qty)
        np.add.at(count, (day - first, product), 1.0)
    coded = per_unit.with_columns(
        pl.col("product_id").cast(pl.Enum(products)).to_physical().alias("p"),
        pl.col("component_id").cast(pl.Enum(components)).to_physical().alias("c"),
        pl.col("start").clip(first, first + days) - first,
        pl.col("end").clip(first, first + days) - first,
    ).filter(pl.col("start") < pl.col("end"))
    lead = coded["lead_days"].max() or 0
    assert isinstance(lead, int)
    demand = np.zeros((days + lead, components.len()))  # row r is day first - lead + r
    touched = np.zeros(demand.shape, dtype=bool)
    for (shift,), rows in coded.partition_by("lead_days", as_dict=True).items():
        assert isinstance(shift, int)
        _add(demand, touched, qty, count, rows, lead - shift)
    c, r = np.nonzero(touched.T)  # by component (codes are in name order), then day
    return pl.DataFrame({
        "client_id": pl.Series([clients[0]], dtype=pl.Utf8).gather(np.zeros(r.size, np.int64)),
        "component_id": components.gather(c),
        "date": pl.Series(r + (first - lead), dtype=pl.Int32).cast(pl.Date),
        "demand": demand[r, c],
    })


def _add(demand: np.ndarray, touched: np.ndarray, qty: np.ndarray, count: np.ndarray | None,
         rows: pl.DataFrame, offset: int) -> None:
    """Add one lead's rows: per stretch of days [a, b) inside the same ranges, the sales of
    those days times the quantities of the rows covering it, `offset` rows further down."""
    p_codes, p = np.unique(rows["p"].to_numpy(), return_inverse=True)
    c_codes, c = np.unique(rows["c"].to_numpy(), return_inverse=True)
    start, end = rows["start"].to_numpy(), rows["end"].to_numpy()
    quantity = rows["quantity"].to_numpy()
    cuts = np.unique(np.concatenate([start, end]))
    for a, b in pairwise(cuts.tolist()):
        covering = (start <= a) & (end >= b)
        if not covering.any():
            continue
        per_unit = np.zeros((p_codes.size, c_codes.size))
        np.add.at(per_unit, (p[covering], c[covering]), quantity[covering])
        block = np.einsum("dp,pc->dc", qty[a:b][:, p_codes], per_unit)
        demand[a + offset:b + offset, c_codes] += block
        sold = (block != 0) if count is None else (count[a:b][:, p_codes] @ (per_unit > 0)) > 0
        touched[a + offset:b + offset, c_codes] |= sold


def _check_finite(sales: pl.DataFrame) -> None:
    bad = sales.filter(~pl.col("qty").is_finite())
    if bad.height:
        row = bad.row(0, named=True)
        raise FatalError(f"sales: qty must be a finite number, got {row['qty']} for client "
                         f"{row['client_id']!r}, product {row['product_id']!r} on {row['date']} "
                         f"({bad.height} such rows)")
