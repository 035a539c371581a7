"""BOM explosion: polars (bom.explode) vs a naive memoised recursion, same run.

    .venv/bin/python bench/bench_bom.py [--edges 100000] [--repeats 3]

A random multi-level DAG: top products, five levels of subassemblies, leaves; each parent has
about 3 children, mostly one level down and sometimes further, so subassemblies are shared by
many parents and leaves sit at different depths. Both are checked once to agree, then timed
interleaved, best of --repeats. The recursion does no validation and no cycle check (it would
recurse forever on one); explode does both, and its Kahn cycle check is also timed alone.
"""

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo's top-level modules

from bom import _check_acyclic, _validated, explode
from tests.reference import naive_explode

LEVEL_SHARES = [1, 2, 3, 4, 4, 4, 8]  # relative node count per level, tops first, leaves last


def random_bom(n_edges: int, seed: int = 0) -> pl.DataFrame:
    rng = random.Random(seed)
    # Every non-top node gets one parent a level up (so the tops are exactly level 0), and
    # every parent 1-3 more children, mostly one level down: ~shares[1:] + 2 * shares[:-1].
    per_share = n_edges // (sum(LEVEL_SHARES[1:]) + 2 * sum(LEVEL_SHARES[:-1]))
    levels = [
        [f"L{depth}-{i:06d}" for i in range(share * per_share)]
        for depth, share in enumerate(LEVEL_SHARES)
    ]
    pairs = [(rng.choice(levels[d - 1]), node) for d in range(1, len(levels)) for node in levels[d]]
    for depth, level in enumerate(levels[:-1]):
        for parent in level:
            for _ in range(rng.randint(1, 3)):
                skip = 1 if rng.random() < 0.8 else rng.randint(1, len(levels) - 1 - depth)
                pairs.append((parent, rng.choice(levels[depth + skip])))
    qty = [rng.choice([1.0, 2.0, 4.0, 0.5, round(rng.uniform(0.1, 10), 3)]) for _ in pairs]
    return pl.DataFrame(
        {"parent_id": [p for p, _ in pairs], "child_id": [c for _, c in pairs], "qty_per": qty}
    )


def check_same(exploded: pl.DataFrame, expected: dict[tuple[str, str], tuple[float, int]]) -> None:
    got = {(p, c): (q, d) for p, c, q, d in exploded.iter_rows()}
    if got.keys() != expected.keys():
        raise AssertionError(f"pairs differ: {len(got.keys() ^ expected.keys())}")
    for key, (qty, depth) in expected.items():
        got_qty, got_depth = got[key]
        if got_depth != depth or abs(got_qty - qty) > 1e-9 * max(abs(qty), 1.0):
            raise AssertionError(f"{key}: polars {got[key]}, naive {(qty, depth)}")


def best_of(repeats: int, *runs: tuple[str, Callable[[], object]]) -> dict[str, float]:
    """Interleaved timing: CPU speed drift hits every contender alike."""
    best = dict.fromkeys((name for name, _ in runs), float("inf"))
    for _ in range(repeats):
        for name, run in runs:
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    edges = random_bom(args.edges)
    exploded = explode(edges)
    check_same(exploded, naive_explode(edges))
    graph = _validated(edges)

    best = best_of(
        args.repeats,
        ("polars explode", lambda: explode(edges)),
        ("naive recursion", lambda: naive_explode(edges)),
        ("  of which Kahn cycle check", lambda: _check_acyclic(graph)),
    )
    tops, deepest = exploded.select(pl.col("product_id").n_unique(), pl.max("depth")).row(0)
    print(
        f"{edges.height:,} edges, {tops:,} top products, {exploded.height:,} (product, component)"
        f" rows, max depth {deepest}, best of {args.repeats}"
    )
    print(f"{'':28} {'seconds':>8} {'edges/s':>12}")
    for name, seconds in best.items():
        print(f"{name:28} {seconds:>8.3f} {edges.height / seconds:>12,.0f}")
    print(f"ratio naive / polars: {best['naive recursion'] / best['polars explode']:.1f}x")


if __name__ == "__main__":
    main()
