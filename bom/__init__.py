"""Multi-level bill-of-materials explosion as ERPs do it, and the component demand it implies:
pure polars, no I/O (handlers.pipelines reads a client's BOM from the store and writes back).

Input, one client's BOM lines (other columns, client_id included, are ignored), each line the
quantity of child_id in one parent_id (bom.lines has the defaults and checks):

    parent_id, child_id, qty_per      required
    base_qty     1       the parent quantity the line is written for
    scrap_pct    0       component scrap in percent, 0 <= s < 100: gross = net / (1 - s/100)
    phantom      false   the child is exploded through and never a component itself
    valid_from   open    first day the line applies (inclusive)
    valid_to     open    last day the line applies (inclusive)
    uom_factor   1       child stock units per unit of qty_per
    lead_days    0       the child is needed this many days before its parent (whole days)

A line contributes qty_per × uom_factor ÷ base_qty ÷ (1 − scrap_pct / 100) of child per unit of
parent. Along a path the contributions multiply, ranges intersect (a path applies on the days
all its lines do, the day being the top product's sale day) and leads add up; over paths with
the same component, range and lead the quantities add up.

- `explode_dated(edges, max_depth)`: per top product (a parent that is never a child) and
  component (every node below it but phantoms), the quantity per unit of top product for each
  date range on which it is constant, lead and depth (the longest path, phantom levels
  counted), and whether it is a leaf on those dates (no valid lines of its own) or a stocked
  subassembly. Columns EXPLODED_DATED_SCHEMA, sorted by product, component, lead, valid_from.
- `explode(edges, max_depth)`: the leaf-only view that the bom_exploded table stores today,
  EXPLODED_SCHEMA, from parent_id, child_id and qty_per alone.
- `component_demand(sales, exploded_dated)`: bom.demand.

Errors, each a FatalError (the event can never succeed): a bad line (BomDataError naming the
line), a cycle whatever the dates (BomCycleError naming one), a path of more than max_depth
lines (BomDepthError naming one). Checked before anything is exploded.
"""

import polars as pl

from bom import graph, lines
from bom.demand import DEMAND_SCHEMA, component_demand
from bom.errors import BomCycleError, BomDataError, BomDepthError
from bom.levels import expand
from bom.ranges import valid_from_to

__all__ = [
    "DEMAND_SCHEMA",
    "EXPLODED_DATED_SCHEMA",
    "EXPLODED_SCHEMA",
    "BomCycleError",
    "BomDataError",
    "BomDepthError",
    "component_demand",
    "explode",
    "explode_dated",
]

EXPLODED_SCHEMA = pl.Schema(
    {
        "product_id": pl.Utf8,
        "component_id": pl.Utf8,
        "quantity": pl.Float64,
        "depth": pl.Int32,
    }
)

EXPLODED_DATED_SCHEMA = pl.Schema(
    {
        "product_id": pl.Utf8,
        "component_id": pl.Utf8,
        "valid_from": pl.Date,
        "valid_to": pl.Date,
        "lead_days": pl.Int32,
        "quantity": pl.Float64,
        "depth": pl.Int32,
        "leaf": pl.Boolean,
    }
)


def explode_dated(edges: pl.DataFrame, max_depth: int = 32) -> pl.DataFrame:
    """Explode `edges` into EXPLODED_DATED_SCHEMA rows (see the module doc)."""
    if max_depth < 1:
        raise ValueError(f"max_depth must be >= 1, got {max_depth}")
    if edges.is_empty():
        return EXPLODED_DATED_SCHEMA.to_frame()
    exploded = expand(graph.build(lines.read(edges)), max_depth)
    return exploded.with_columns(valid_from_to()).select(EXPLODED_DATED_SCHEMA.names())


def explode(edges: pl.DataFrame, max_depth: int = 32) -> pl.DataFrame:
    """(product_id, component_id, quantity, depth) per top product and leaf, sorted: the
    explosion of parent_id, child_id, qty_per only (no options, so one row per pair)."""
    plain = edges.select(c for c in ("parent_id", "child_id", "qty_per") if c in edges.columns)
    return (
        explode_dated(plain, max_depth)
        .filter("leaf")
        .select(EXPLODED_SCHEMA.names())
    )
