"""Reference implementations written the plain way: test oracles and benchmark baselines."""

from collections import defaultdict
from datetime import date, timedelta
from functools import cache
from typing import Any

import polars as pl

# What a missing optional BOM column or a null in it means (bom's README table).
BOM_DEFAULTS: dict[str, object] = {
    "base_qty": 1.0, "scrap_pct": 0.0, "phantom": False, "valid_from": None, "valid_to": None,
    "uom_factor": 1.0, "lead_days": 0,
}

Found = tuple[float, int, bool]  # quantity, deepest level, leaf


def naive_explode_on(lines: pl.DataFrame, day: date | None = None
                     ) -> dict[tuple[str, str, int], Found]:
    """(top product, component, lead) -> (quantity, deepest level, leaf) from the lines valid on
    `day` (all lines if None), by memoised recursion over children, every option applied."""
    rows: list[dict[str, Any]] = [
        {**BOM_DEFAULTS, **{k: v for k, v in r.items() if v is not None}}
        for r in lines.rows(named=True)
    ]
    all_children = {r["child_id"] for r in rows}
    phantoms = {r["child_id"] for r in rows if r["phantom"]}
    children: dict[str, list[tuple[str, float, int]]] = defaultdict(list)
    for r in rows:
        if day is None or (
            (r["valid_from"] is None or r["valid_from"] <= day)
            and (r["valid_to"] is None or day <= r["valid_to"])
        ):
            qty = r["qty_per"] * r["uom_factor"] / r["base_qty"] / (1 - r["scrap_pct"] / 100)
            children[r["parent_id"]].append((r["child_id"], qty, int(r["lead_days"])))

    @cache
    def below(node: str) -> dict[tuple[str, int], Found]:
        out: dict[tuple[str, int], Found] = {}

        def add(key: tuple[str, int], qty: float, depth: int, leaf: bool) -> None:
            total, deepest, _ = out.get(key, (0.0, 0, leaf))
            out[key] = (total + qty, max(deepest, depth), leaf)

        for child, qty, lead in children.get(node, ()):
            if child not in phantoms:
                add((child, lead), qty, 1, child not in children)
            for (component, more), (sub_qty, depth, leaf) in below(child).items():
                add((component, lead + more), qty * sub_qty, depth + 1, leaf)
        return out

    return {
        (top, component, lead): found
        for top in sorted({r["parent_id"] for r in rows} - all_children)
        for (component, lead), found in below(top).items()
    }


def naive_explode(graph: pl.DataFrame) -> dict[tuple[str, str], tuple[float, int]]:
    """(product, leaf) -> (quantity, deepest level) of parent_id, child_id, qty_per alone."""
    plain = graph.select("parent_id", "child_id", "qty_per")
    return {(top, leaf): (qty, depth)
            for (top, leaf, _), (qty, depth, is_leaf) in naive_explode_on(plain).items()
            if is_leaf}


def naive_component_demand(sales: pl.DataFrame, lines: pl.DataFrame
                           ) -> dict[tuple[str, str, date], float]:
    """(client, component, day) -> demand: each sale exploded with the BOM valid on its day,
    the demand placed lead days earlier."""
    explosion = cache(lambda day: naive_explode_on(lines, day))
    out: dict[tuple[str, str, date], float] = defaultdict(float)
    for client, product, day, qty in sales.select("client_id", "product_id", "date", "qty").rows():
        if product is None or day is None or qty is None:
            continue
        for (top, component, lead), (per_unit, _, _) in explosion(day).items():
            if top == product:
                out[(client, component, day - timedelta(days=lead))] += qty * per_unit
    return dict(out)
