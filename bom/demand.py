"""Component demand: what the sales of top products imply for their components, day by day.

demand(component c, day d) = Σ over the exploded rows (product p, c, lead L, range R) with
d + L in R of sales(p, d + L) × quantity: a unit of p sold on day s needs `quantity` of c as the
BOM stood on s, L days earlier (the lines' lead_days summed along the path). The output has the
shape of the sales the feature families read, with component_id in place of product_id and
demand in place of qty, and a row only where some sale implies demand (features fill the daily
grid). Sales rows with a null product_id, date or qty imply nothing and are skipped.
"""

import polars as pl

SALES_COLUMNS = ("client_id", "product_id", "date", "qty")

DEMAND_SCHEMA = pl.Schema(
    {
        "client_id": pl.Utf8,
        "component_id": pl.Utf8,
        "date": pl.Date,
        "demand": pl.Float64,
    }
)


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
    per_unit = exploded.select(
        "product_id", "component_id", "valid_from", "valid_to", "lead_days", "quantity"
    )
    in_range = (
        (pl.col("valid_from").is_null() | (pl.col("date") >= pl.col("valid_from")))
        & (pl.col("valid_to").is_null() | (pl.col("date") <= pl.col("valid_to")))
    )
    return (
        typed.join(per_unit, on="product_id")
        .filter(in_range)
        .group_by(
            "client_id",
            "component_id",
            (pl.col("date").cast(pl.Int32) - pl.col("lead_days")).cast(pl.Date).alias("date"),
        )
        .agg(demand=(pl.col("qty") * pl.col("quantity")).sum())
        .sort("component_id", "date")
        .select(DEMAND_SCHEMA.names())
    )
