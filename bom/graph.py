"""The BOM as a graph ready to explode, from lines read by bom.lines, with the checks that look
across lines: phantoms, then cycles.

- edges: (parent_id, child_id, start, end, lead_days, qty) with qty the child quantity per one
  unit of parent, qty_per × uom_factor ÷ base_qty ÷ (1 − scrap_pct / 100); lines alike in all
  but qty summed;
- phantoms: the nodes exploded through (every line into a node must agree whether it is one);
- states: per node with lines of its own, all time cut into the ranges where it has valid lines
  (has_bom) and where it has none (there it is a leaf).
Nodes are UInt32 codes, a node's code its name's index in the sorted `names`: joins, group-bys
and sorts run on integers (2-3x faster than on strings here) and still order by name. What
the checks name is turned back into names (and lines into the lines as read).
"""

from dataclasses import dataclass

import polars as pl

from bom import ranges
from bom.errors import BomCycleError, BomDataError
from bom.lines import line_name

_QTY = (
    pl.col("qty_per") * pl.col("uom_factor") / pl.col("base_qty")
    / (1 - pl.col("scrap_pct") / 100)
)


@dataclass(frozen=True)
class Graph:
    names: pl.Series
    edges: pl.DataFrame
    phantoms: pl.Series
    states: pl.DataFrame


def build(lines: pl.DataFrame) -> Graph:
    """The graph of `lines` (as bom.lines.read returns them); BomDataError, BomCycleError."""
    names = pl.concat([lines["parent_id"], lines["child_id"]]).unique().sort()
    coded = lines.with_columns(
        *ranges.start_end(), pl.col("parent_id", "child_id").cast(pl.Enum(names)).to_physical()
    )
    _check_phantom_flags(coded, lines)
    own = ranges.islands(coded.rename({"parent_id": "node"}), "node")
    _check_phantoms_covered(coded, own, lines, names)
    edges = coded.group_by("parent_id", "child_id", "start", "end", "lead_days").agg(
        qty=_QTY.sum())
    _check_acyclic(edges, names)
    states = pl.concat(
        [
            own.with_columns(has_bom=pl.lit(True)),
            ranges.gaps(own, "node").with_columns(has_bom=pl.lit(False)),
        ]
    )
    return Graph(names, edges, coded.filter("phantom")["child_id"].unique(), states)


def _line(lines: pl.DataFrame, number: int) -> dict[str, object]:
    return lines.row(number - 1, named=True)


def _check_phantom_flags(coded: pl.DataFrame, lines: pl.DataFrame) -> None:
    """Every line into a node says the same about whether it is a phantom."""
    mixed = coded.filter(pl.col("phantom").n_unique().over("child_id") > 1)
    if mixed.is_empty():
        return
    of_child = mixed.filter(pl.col("child_id") == mixed["child_id"].min())
    first, second = (
        _line(lines, of_child.filter(pl.col("phantom") == flag)["line"].min())  # type: ignore[arg-type]
        for flag in (True, False)
    )
    first, second = sorted([first, second], key=lambda line: int(line["line"]))  # type: ignore[call-overload]
    raise BomDataError(
        f"{line_name(first)} and {line_name(second)} disagree whether {first['child_id']!r} is "
        f"a phantom (phantom={first['phantom']} and phantom={second['phantom']}); every line "
        f"into a node must say the same"
    )


def _check_phantoms_covered(coded: pl.DataFrame, own: pl.DataFrame, lines: pl.DataFrame,
                            names: pl.Series) -> None:
    """A phantom is never a component itself, so on every date a line uses it, it must have
    valid lines of its own to pass the quantity on to: else that demand would vanish."""
    into = coded.filter("phantom")
    if into.is_empty():
        return
    containing = (
        into.join(own, left_on="child_id", right_on="node", suffix="_own")
        .filter((pl.col("start_own") <= pl.col("start")) & (pl.col("start") < pl.col("end_own")))
        .select("line", reach="end_own")
    )
    uncovered = (
        into.join(containing, on="line", how="left")
        .with_columns(
            gap=pl.when(pl.col("reach").is_null())
            .then(pl.col("start"))
            .when(pl.col("reach") < pl.col("end"))
            .then(pl.col("reach"))
        )
        .filter(pl.col("gap").is_not_null())
        .sort("line")
    )
    if uncovered.is_empty():
        return
    number, child, gap = uncovered.select("line", "child_id", "gap").row(0)
    starts = own.filter(pl.col("node") == child)["start"]
    if starts.is_empty():
        when = ""
    elif gap == ranges.LOW:
        when = f" valid before {ranges.day_text(starts.min())}"  # type: ignore[arg-type]
    else:
        when = f" valid on {ranges.day_text(gap)}"
    more = f" (and {uncovered.height - 1} more)" if uncovered.height > 1 else ""
    raise BomDataError(
        f"{line_name(_line(lines, number))}: phantom {names[child]!r} has no lines of its "
        f"own{when}, so the quantity this line passes to it would be lost{more}"
    )


def _check_acyclic(edges: pl.DataFrame, names: pl.Series) -> None:
    """Kahn's algorithm by whole levels: drop edges leaving a node nobody points to, repeat.

    One semi join per level, so the number of iterations is the longest path's length. What
    survives the fixpoint is exactly the edges on or downstream of a cycle. Dates are not
    looked at: lines forming a cycle only over disjoint dates are still one.
    """
    remaining = edges.select("parent_id", "child_id").unique()
    while True:
        pointed_to = remaining.select(pl.col("child_id").alias("parent_id")).unique()
        kept = remaining.join(pointed_to, on="parent_id", how="semi")
        if kept.height == remaining.height:
            break
        remaining = kept
    if not remaining.is_empty():
        raise BomCycleError(names.gather(_one_cycle(remaining)).to_list())


def _one_cycle(remaining: pl.DataFrame) -> list[int]:
    """One cycle in the Kahn residue, in edge direction, starting at its smallest node (codes
    order as names do).

    Every parent in the residue has a predecessor in it, so walking predecessors from any
    parent must revisit a node; the revisited stretch is a cycle. Only the residue is walked.
    """
    predecessor: dict[int, int] = dict(
        remaining.group_by("child_id").agg(pl.col("parent_id").min()).iter_rows()
    )
    node: int = remaining["parent_id"].min()  # type: ignore[assignment]  # the residue is not empty
    position: dict[int, int] = {}
    walk: list[int] = []
    while node not in position:
        position[node] = len(walk)
        walk.append(node)
        node = predecessor[node]
    cycle = walk[position[node] :][::-1]  # the walk went against the edges
    start = cycle.index(min(cycle))
    return cycle[start:] + cycle[:start]
