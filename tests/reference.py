"""Reference implementations written the plain way: test oracles and benchmark baselines."""

from collections import defaultdict
from functools import cache

import polars as pl


def naive_explode(graph: pl.DataFrame) -> dict[tuple[str, str], tuple[float, int]]:
    """(product, leaf) -> (quantity, deepest level), by memoised recursion over children."""
    children: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for parent, child, qty in graph.rows():
        children[parent][child] += qty

    @cache
    def below(node: str) -> dict[str, tuple[float, int]]:
        out: dict[str, tuple[float, int]] = {}
        for child, qty in children[node].items():
            reached = below(child) if child in children else {child: (1.0, 0)}
            for leaf, (leaf_qty, depth) in reached.items():
                total, deepest = out.get(leaf, (0.0, 0))
                out[leaf] = (total + qty * leaf_qty, max(deepest, depth + 1))
        return out

    all_children = {child for kids in children.values() for child in kids}
    return {
        (top, leaf): found
        for top in sorted(set(children) - all_children)
        for leaf, found in below(top).items()
    }
