"""bom.explode (the leaf view of parent_id, child_id, qty_per) against hand-worked trees and a
naive memoised recursion; the errors of every explosion: cycles, depth, bad lines."""

import math
import random
from collections import defaultdict

import polars as pl
import pytest
from dirty_equals import IsStr

from bom import EXPLODED_SCHEMA, BomCycleError, BomDataError, BomDepthError, explode
from core.errors import FatalError
from tests.reference import naive_explode

Edge = tuple[str | None, str | None, float | None]


def edges(*rows: Edge) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={"parent_id": pl.Utf8, "child_id": pl.Utf8, "qty_per": pl.Float64},
        orient="row",
    )


def rows(frame: pl.DataFrame) -> list[tuple[str, str, float, int]]:
    return frame.rows()


# --- hand-worked trees -------------------------------------------------------------------------


def test_shared_subassembly_counts_once_per_path() -> None:
    # A -> B x2 -> D x4 and A -> C x3 -> D x5, D -> E x0.5: E = (2*4 + 3*5) * 0.5
    result = explode(
        edges(("A", "B", 2), ("A", "C", 3), ("B", "D", 4), ("C", "D", 5), ("D", "E", 0.5))
    )

    assert result.schema == EXPLODED_SCHEMA
    assert rows(result) == [("A", "E", 11.5, 3)]


def test_leaf_reached_at_two_depths_sums_and_keeps_the_deepest() -> None:
    # A -> E x1 directly and A -> B x2 -> E x3: 1 + 6 = 7; depth is the longer path.
    result = explode(edges(("A", "B", 2), ("A", "E", 1), ("B", "E", 3), ("B", "F", 0.25)))

    assert rows(result) == [("A", "E", 7.0, 2), ("A", "F", 0.5, 2)]


def test_several_top_products_sorted() -> None:
    result = explode(
        edges(("P2", "X", 3), ("P1", "X", 2), ("X", "L", 4), ("P2", "M", 1), ("P1", "K", 5))
    )

    assert rows(result) == [
        ("P1", "K", 5.0, 1),
        ("P1", "L", 8.0, 2),
        ("P2", "L", 12.0, 2),
        ("P2", "M", 1.0, 1),
    ]


def test_duplicate_edges_are_summed() -> None:
    result = explode(edges(("A", "B", 1), ("A", "B", 2), ("B", "C", 10), ("B", "C", 0.5)))

    assert rows(result) == [("A", "C", 31.5, 2)]


def test_other_columns_are_ignored_and_types_are_cast() -> None:
    frame = pl.DataFrame(
        {
            "client_id": ["c1", "c1"],
            "parent_id": ["A", "A"],
            "child_id": ["B", "C"],
            "qty_per": [2, 3],
        }
    )
    result = explode(frame)

    assert result.schema == EXPLODED_SCHEMA
    assert rows(result) == [("A", "B", 2.0, 1), ("A", "C", 3.0, 1)]


@pytest.mark.parametrize("frame", [edges(), pl.DataFrame()], ids=["typed", "no-columns"])
def test_empty_edges(frame: pl.DataFrame) -> None:
    result = explode(frame)

    assert result.is_empty()
    assert result.schema == EXPLODED_SCHEMA


# --- errors ------------------------------------------------------------------------------------


def test_cycle_is_named() -> None:
    graph = edges(("T", "X", 1), ("X", "Y", 1), ("Y", "Z", 2), ("Z", "X", 1), ("Z", "W", 1))

    with pytest.raises(BomCycleError) as info:
        explode(graph)

    assert str(info.value) == "BOM cycle: X -> Y -> Z -> X"
    assert info.value.cycle == ["X", "Y", "Z"]
    assert isinstance(info.value, FatalError)


def test_self_loop_is_a_cycle() -> None:
    with pytest.raises(BomCycleError, match=r"^BOM cycle: A -> A$"):
        explode(edges(("T", "A", 1), ("A", "A", 1), ("A", "B", 1)))


def test_a_cycle_with_no_top_product_is_found() -> None:
    with pytest.raises(BomCycleError, match=r"^BOM cycle: a -> b -> a$"):
        explode(edges(("b", "a", 1), ("a", "b", 1)))


def test_long_cycle_message_is_shortened() -> None:
    nodes = [f"n{i:02d}" for i in range(30)]
    graph = edges(*[(a, b, 1.0) for a, b in zip(nodes, nodes[1:] + nodes[:1], strict=True)])

    with pytest.raises(BomCycleError) as info:
        explode(graph)

    assert info.value.cycle == nodes
    assert str(info.value) == IsStr(
        regex=r"BOM cycle: n00 -> n01 -> .* -> n19 -> … \(10 more\) -> n00"
    )


def test_random_graph_with_a_planted_cycle_names_a_real_cycle() -> None:
    rng = random.Random(7)
    graph = random_dag(rng, n_nodes=300, n_edges=1200)
    # One back edge from a deep node to a shallower one that reaches it closes a cycle.
    start, end = _reachable_pair(graph, rng)
    cyclic = pl.concat([graph, edges((end, start, 1.0))])

    with pytest.raises(BomCycleError) as info:
        explode(cyclic)

    cycle = info.value.cycle
    pairs = set(cyclic.select("parent_id", "child_id").rows())
    assert len(set(cycle)) == len(cycle)
    assert all((a, b) in pairs for a, b in zip(cycle, cycle[1:] + cycle[:1], strict=True))


def test_depth_limit_names_a_path() -> None:
    chain = edges(*[(f"L{i}", f"L{i + 1}", 2.0) for i in range(5)])  # 5 edges deep

    assert rows(explode(chain, max_depth=5)) == [("L0", "L5", 32.0, 5)]
    with pytest.raises(BomDepthError) as info:
        explode(chain, max_depth=4)
    assert str(info.value) == (
        "BOM deeper than max_depth=4: L0 -> L1 -> L2 -> L3 -> L4 -> L5 (5 levels from product 'L0')"
    )
    assert info.value.path == [f"L{i}" for i in range(6)]
    assert isinstance(info.value, FatalError)


def test_too_deep_path_is_a_real_one_among_shared_branches() -> None:
    # T -> A -> B -> C -> D and T -> X -> C: only the path through A and B is 4 lines long.
    graph = edges(("T", "X", 1), ("X", "C", 1), ("T", "A", 1), ("A", "B", 1), ("B", "C", 1),
                  ("C", "D", 1))

    with pytest.raises(BomDepthError) as info:
        explode(graph, max_depth=3)

    assert info.value.path == ["T", "A", "B", "C", "D"]


def test_default_depth_limit_is_32() -> None:
    def chain(n: int) -> pl.DataFrame:
        return edges(*[(f"L{i}", f"L{i + 1}", 1.0) for i in range(n)])

    assert rows(explode(chain(32))) == [("L0", "L32", 1.0, 32)]
    with pytest.raises(BomDepthError, match="max_depth=32"):
        explode(chain(33))


def test_cycle_is_reported_before_depth() -> None:
    graph = edges(*[(f"L{i}", f"L{i + 1}", 1.0) for i in range(10)], ("L10", "L5", 1.0))

    with pytest.raises(BomCycleError, match="L10 -> L5"):
        explode(graph, max_depth=3)


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (("A", "C", 0.0), "qty_per=0.0 must be a positive finite number"),
        (("A", "C", -1.0), "qty_per=-1.0 must be a positive finite number"),
        (("A", "C", None), "qty_per=None must be a positive finite number"),
        (("A", "C", math.nan), "qty_per=nan must be a positive finite number"),
        (("A", "C", math.inf), "qty_per=inf must be a positive finite number"),
        ((None, "C", 1.0), "parent_id is missing"),
        (("A", None, 1.0), "child_id is missing"),
    ],
)
def test_bad_edge_is_named(bad: Edge, problem: str) -> None:
    with pytest.raises(BomDataError) as info:
        explode(edges(("A", "B", 1.0), bad))

    parent, child, _ = bad
    assert str(info.value) == f"BOM line 2 (parent_id={parent!r}, child_id={child!r}): {problem}"
    assert isinstance(info.value, FatalError)


def test_bad_rows_are_counted() -> None:
    with pytest.raises(BomDataError, match=r"qty_per=-1.0 .* \(and 2 more bad lines\)$"):
        explode(edges(("A", "B", -1.0), ("A", "C", 0.0), ("A", "D", 1.0), (None, "E", 1.0)))
    with pytest.raises(BomDataError, match=r"^BOM line 2 .* \(and 1 more bad line\)$"):
        explode(edges(("A", "B", 1.0), ("A", "C", 0.0), ("A", "D", 0.0)))


def test_missing_columns_are_named() -> None:
    with pytest.raises(BomDataError, match=r"need the columns .*; missing: qty_per$"):
        explode(pl.DataFrame({"parent_id": ["A"], "child_id": ["B"]}))


def test_max_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_depth"):
        explode(edges(("A", "B", 1.0)), max_depth=0)


# --- against a naive recursion -----------------------------------------------------------------


def random_dag(rng: random.Random, n_nodes: int, n_edges: int) -> pl.DataFrame:
    """Edges only from a lower to a higher node number, so no cycle; duplicates included."""
    names = [f"N{i:04d}" for i in range(n_nodes)]
    picked: list[Edge] = []
    for _ in range(n_edges):
        a = rng.randrange(n_nodes - 1)
        b = rng.randrange(a + 1, min(n_nodes, a + 40))  # short hops: many levels, many shares
        picked.append((names[a], names[b], rng.choice([0.5, 1.0, 2.0, 3.0, rng.uniform(0.1, 4)])))
    return edges(*picked)


def _reachable_pair(graph: pl.DataFrame, rng: random.Random) -> tuple[str, str]:
    """(x, y) with y reachable from x by at least two edges."""
    children: dict[str, set[str]] = defaultdict(set)
    for parent, child in graph.select("parent_id", "child_id").rows():
        children[parent].add(child)
    for start in rng.sample(sorted(children), len(children)):
        for middle in sorted(children[start]):
            if children.get(middle):
                return start, min(children[middle])
    raise AssertionError("no path of two edges")


@pytest.mark.parametrize("seed", [11, 12, 13, 14])
def test_matches_naive_recursion_on_random_dags(seed: int) -> None:
    rng = random.Random(seed)
    graph = random_dag(rng, n_nodes=400, n_edges=1500)

    result = explode(graph, max_depth=400)
    expected = naive_explode(graph)

    got = {(p, c): (q, d) for p, c, q, d in result.rows()}
    assert got.keys() == expected.keys()
    for key, (qty, depth) in expected.items():
        assert got[key] == (pytest.approx(qty, rel=1e-9), depth), key
    assert result.select("product_id", "component_id").rows() == sorted(expected)
