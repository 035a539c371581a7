"""bom.explode_dated and bom.component_demand with every line option (base_qty, scrap_pct,
phantom, valid_from/valid_to, uom_factor, lead_days): hand-worked BOMs (the arithmetic in a
comment), then random DAGs with all options against the plain recursion of tests/reference.py
(per day: the range holding the day), then the errors of bad lines with their messages."""

import random
from datetime import date, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bom import (
    DEMAND_SCHEMA,
    EXPLODED_DATED_SCHEMA,
    BomCycleError,
    BomDataError,
    BomDepthError,
    component_demand,
    explode_dated,
)
from core.errors import FatalError
from tests.reference import naive_component_demand, naive_explode_on

LINE_COLUMNS = {
    "parent_id": pl.Utf8, "child_id": pl.Utf8, "qty_per": pl.Float64, "base_qty": pl.Float64,
    "scrap_pct": pl.Float64, "phantom": pl.Boolean, "valid_from": pl.Date, "valid_to": pl.Date,
    "uom_factor": pl.Float64, "lead_days": pl.Int32,
}


def bom_lines(*rows: dict[str, Any]) -> pl.DataFrame:
    """Lines with every option column; what a row leaves out is null (the default)."""
    return pl.DataFrame([{c: r.get(c) for c in LINE_COLUMNS} for r in rows], schema=LINE_COLUMNS)


def line(parent: str, child: str, qty: float, **options: Any) -> dict[str, Any]:
    return {"parent_id": parent, "child_id": child, "qty_per": qty, **options}


def sales(client: str, *rows: tuple[str, date, float]) -> pl.DataFrame:
    return pl.DataFrame(
        [(client, p, d, q) for p, d, q in rows],
        schema={"client_id": pl.Utf8, "product_id": pl.Utf8, "date": pl.Date, "qty": pl.Float64},
        orient="row",
    )


def D(day: int) -> date:  # the days of January 2024, short
    return date(2024, 1, day)


# --- hand-worked -------------------------------------------------------------------------------


def test_base_quantity_divides() -> None:
    # 3 B make 2 A: 3/2 = 1.5 B per A; 4 C make 8 B: 0.5 C per B; C per A = 1.5 * 0.5 = 0.75.
    result = explode_dated(bom_lines(line("A", "B", 3, base_qty=2), line("B", "C", 4, base_qty=8)))

    assert result.schema == EXPLODED_DATED_SCHEMA
    assert result.rows() == [
        ("A", "B", None, None, 0, 1.5, 1, False),  # B has lines: a stocked subassembly
        ("A", "C", None, None, 0, 0.75, 2, True),
    ]


def test_scrap_grosses_up() -> None:
    # 2 net at 20 % scrap: 2 / (1 - 0.2) = 2.5; then 1 per B at 50 %: 2.5 * 1 / 0.5 = 5.
    result = explode_dated(bom_lines(line("A", "B", 2, scrap_pct=20),
                                     line("B", "C", 1, scrap_pct=50)))

    assert result.select("component_id", "quantity").rows() == [("B", 2.5), ("C", 5.0)]


def test_uom_factor_and_all_factors_together() -> None:
    # 2 boxes of 12: 2 * 12 = 24 each; 3 per 2 A in packs of 10 at 25 % scrap:
    # 3 * 10 / 2 / (1 - 0.25) = 20.
    result = explode_dated(bom_lines(
        line("A", "B", 2, uom_factor=12),
        line("A", "C", 3, base_qty=2, uom_factor=10, scrap_pct=25),
    ))

    assert result.select("component_id", "quantity").rows() == [("B", 24.0), ("C", 20.0)]


def test_phantom_is_passed_through() -> None:
    # A -> K x2 (phantom), K -> X x3, K -> Y x1, A -> X x1:
    # X = 2*3 + 1 = 7 (deepest at level 2), Y = 2*1 = 2; K itself is never a component.
    result = explode_dated(bom_lines(
        line("A", "K", 2, phantom=True), line("K", "X", 3), line("K", "Y", 1), line("A", "X", 1),
    ))

    assert result.select("product_id", "component_id", "quantity", "depth", "leaf").rows() == [
        ("A", "X", 7.0, 2, True),
        ("A", "Y", 2.0, 2, True),
    ]


def test_shared_subassembly_with_different_scrap_on_two_paths() -> None:
    # P -> A x2, P -> B x1; A -> S x1 at 20 % (1.25 per A), B -> S x3 at 50 % (6 per B);
    # S -> L x4. S per P = 2*1.25 + 1*6 = 8.5; L per P = 8.5 * 4 = 34.
    result = explode_dated(bom_lines(
        line("P", "A", 2), line("P", "B", 1), line("A", "S", 1, scrap_pct=20),
        line("B", "S", 3, scrap_pct=50), line("S", "L", 4),
    ))

    assert result.select("component_id", "quantity", "depth", "leaf").rows() == [
        ("A", 2.0, 1, False), ("B", 1.0, 1, False), ("L", 34.0, 3, True), ("S", 8.5, 2, False),
    ]


def test_effective_date_change_in_the_middle_of_a_sales_history() -> None:
    # A uses 2 B up to Jan 10 and 3 B from Jan 11; B gets lines of its own (5 X) from Jan 11,
    # so B is a leaf up to Jan 10 and a stocked subassembly after, and X = 3*5 = 15 per A.
    bom = bom_lines(
        line("A", "B", 2, valid_to=D(10)), line("A", "B", 3, valid_from=D(11)),
        line("B", "X", 5, valid_from=D(11)),
    )
    exploded = explode_dated(bom)
    assert exploded.rows() == [
        ("A", "B", None, D(10), 0, 2.0, 1, True),
        ("A", "B", D(11), None, 0, 3.0, 1, False),
        ("A", "X", D(11), None, 0, 15.0, 2, True),
    ]
    # Sales 5, 1, 2, 4 on Jan 9..12: B = 5*2, 1*2, 2*3, 4*3 = 10, 2, 6, 12; X = 2*15, 4*15.
    demand = component_demand(
        sales("c", ("A", D(9), 5), ("A", D(10), 1), ("A", D(11), 2), ("A", D(12), 4)), exploded)

    assert demand.schema == DEMAND_SCHEMA
    assert demand.rows() == [
        ("c", "B", D(9), 10.0), ("c", "B", D(10), 2.0), ("c", "B", D(11), 6.0),
        ("c", "B", D(12), 12.0), ("c", "X", D(11), 30.0), ("c", "X", D(12), 60.0),
    ]


def test_lead_time_shifts_demand_earlier_and_dates_apply_to_the_sale_day() -> None:
    # A -> B x2 needed 3 days ahead, valid from Jan 10; B -> C x1 needed 2 days before B.
    # A sold on Jan 9 (before the line applies): nothing. 4 A sold on Jan 10: B = 8 on Jan 7,
    # C = 8 on Jan 5 (3 + 2 days). The range is the sale day's, not the demand day's.
    exploded = explode_dated(bom_lines(line("A", "B", 2, lead_days=3, valid_from=D(10)),
                                       line("B", "C", 1, lead_days=2)))
    assert exploded.select("component_id", "valid_from", "lead_days", "quantity").rows() == [
        ("B", D(10), 3, 2.0), ("C", D(10), 5, 2.0),
    ]

    demand = component_demand(sales("c", ("A", D(9), 7), ("A", D(10), 4)), exploded)

    assert demand.rows() == [("c", "B", D(7), 8.0), ("c", "C", D(5), 8.0)]


def test_demand_sums_products_and_skips_what_is_not_a_top_product() -> None:
    # P1 -> X x2, P2 -> X x3, X -> Y x1. Jan 1: 1 P1 + 2 P2 -> X = 2 + 6 = 8, Y = 8.
    # X sold as a spare part is not a top product here: it implies nothing. Null qty skipped.
    exploded = explode_dated(bom_lines(line("P1", "X", 2), line("P2", "X", 3), line("X", "Y", 1)))
    sold = sales("c", ("P1", D(1), 1), ("P2", D(1), 2), ("X", D(1), 100)).vstack(
        pl.DataFrame({"client_id": ["c"], "product_id": ["P1"], "date": [D(2)], "qty": [None]},
                     schema=sales("c").schema))

    assert component_demand(sold, exploded).rows() == [("c", "X", D(1), 8.0), ("c", "Y", D(1), 8.0)]


def test_demand_of_a_non_finite_sale_is_fatal() -> None:
    exploded = explode_dated(bom_lines(line("A", "B", 1)))
    with pytest.raises(FatalError, match=r"^sales: qty must be a finite number, got inf for "
                       r"client 'c', product 'A' on 2024-01-02 \(1 such rows\)$"):
        component_demand(sales("c", ("A", D(1), 1), ("A", D(2), float("inf"))), exploded)


def test_demand_takes_one_client() -> None:
    exploded = explode_dated(bom_lines(line("A", "B", 1)))
    with pytest.raises(ValueError, match="one client's sales, got 2 clients"):
        component_demand(sales("c1", ("A", D(1), 1)).vstack(sales("c2", ("A", D(1), 1))), exploded)


# --- errors ------------------------------------------------------------------------------------

_L2 = "BOM line 2 (parent_id='A', child_id='C')"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"qty_per": -1.0}, "qty_per=-1.0 must be a positive finite number"),
        ({"base_qty": 0.0}, "base_qty=0.0 must be a positive finite number"),
        ({"scrap_pct": 100.0},
         "scrap_pct=100.0 must be a percentage from 0 up to (not including) 100"),
        ({"scrap_pct": -5.0},
         "scrap_pct=-5.0 must be a percentage from 0 up to (not including) 100"),
        ({"valid_from": D(20), "valid_to": D(10)}, "valid_from=2024-01-20 is after "
                                                   "valid_to=2024-01-10"),
        ({"uom_factor": 0.0}, "uom_factor=0.0 must be a positive finite number"),
        ({"lead_days": -1}, "lead_days=-1 must be a whole number of days, 0 or more"),
        ({"base_qty": 0.0, "scrap_pct": 150.0},
         "base_qty=0.0 must be a positive finite number; scrap_pct=150.0 must be a percentage "
         "from 0 up to (not including) 100"),
    ],
)
def test_bad_line_is_named_with_what_it_breaks(options: dict[str, Any], message: str) -> None:
    bad = {**line("A", "C", 1.0), **options}
    with pytest.raises(BomDataError) as info:
        explode_dated(bom_lines(line("A", "B", 1.0), bad))

    assert str(info.value) == f"{_L2}: {message}"
    assert isinstance(info.value, FatalError)


def test_unreadable_values_are_named() -> None:
    frame = pl.DataFrame({"parent_id": ["A", "A"], "child_id": ["B", "C"], "qty_per": [1, 1],
                          "valid_from": ["2024-01-01", "soon"], "lead_days": [0.0, 1.5]})
    with pytest.raises(BomDataError) as info:
        explode_dated(frame)

    assert str(info.value) == (f"{_L2}: valid_from='soon' is not a date; "
                               "lead_days=1.5 must be a whole number of days, 0 or more")


def test_phantom_flags_must_agree_and_a_phantom_needs_lines() -> None:
    with pytest.raises(BomDataError, match=r"^BOM line 1 \(parent_id='A', child_id='K'\) and "
                       r"BOM line 2 \(parent_id='B', child_id='K'\) disagree whether 'K' is a "
                       r"phantom \(phantom=True and phantom=False\)"):
        explode_dated(bom_lines(line("A", "K", 1, phantom=True), line("B", "K", 1),
                                line("K", "X", 1)))
    with pytest.raises(BomDataError, match=r"^BOM line 1 \(parent_id='A', child_id='K'\): "
                       r"phantom 'K' has no lines of its own valid on 2024-01-11, so the "
                       r"quantity this line passes to it would be lost$"):
        explode_dated(bom_lines(line("A", "K", 1, phantom=True),
                                line("K", "X", 1, valid_to=D(10))))


def test_cycle_over_disjoint_dates_is_still_a_cycle() -> None:
    with pytest.raises(BomCycleError) as info:
        explode_dated(bom_lines(line("P", "A", 1), line("A", "B", 1, valid_to=D(10)),
                                line("B", "A", 1, valid_from=D(11))))
    assert str(info.value) == "BOM cycle: A -> B -> A"


def test_too_deep_is_named_only_for_a_path_valid_on_some_day() -> None:
    # A -> B -> C -> D is three lines, but B -> C ends before C -> D starts: no day has it.
    disjoint = bom_lines(line("A", "B", 1), line("B", "C", 1, valid_to=D(10)),
                         line("C", "D", 1, valid_from=D(11)))
    # B is stocked while it has the line to C (to Jan 10), a leaf after; C a leaf to Jan 10.
    assert explode_dated(disjoint, max_depth=2).select(
        "component_id", "valid_from", "valid_to", "depth", "leaf").rows() == [
        ("B", None, D(10), 1, False), ("B", D(11), None, 1, True), ("C", None, D(10), 2, True)]
    with pytest.raises(BomDepthError) as info:
        explode_dated(bom_lines(line("A", "B", 1), line("B", "C", 1), line("C", "D", 1)),
                      max_depth=2)
    assert str(info.value) == "BOM deeper than max_depth=2: A -> B -> C -> D (3 levels from " \
                              "product 'A')"


# --- against the plain recursion on random DAGs ------------------------------------------------

_DAY0 = date(2024, 1, 1)


@st.composite
def random_boms(draw: st.DrawFn) -> pl.DataFrame:
    """A DAG (edges from lower to higher node numbers) with every option drawn: several lines
    per pair on different dates, phantoms (their own lines undated, so always covered)."""
    n = draw(st.integers(3, 9))
    phantom = [draw(st.booleans()) and draw(st.booleans()) for _ in range(n)]
    rows = []
    for _ in range(draw(st.integers(1, 18))):
        a = draw(st.integers(0, n - 2))
        b = draw(st.integers(a + 1, n - 1))
        start = draw(st.none() | st.integers(0, 20))
        length = draw(st.none() | st.integers(0, 10))
        dated = not phantom[a]
        rows.append(line(
            f"N{a}", f"N{b}", draw(st.sampled_from([0.5, 1.0, 2.0, 3.0])),
            base_qty=draw(st.sampled_from([None, 1.0, 2.0, 4.0])),
            scrap_pct=draw(st.sampled_from([None, 0.0, 10.0, 50.0])),
            phantom=phantom[b], uom_factor=draw(st.sampled_from([None, 1.0, 12.0])),
            lead_days=draw(st.sampled_from([None, 0, 1, 3])),
            valid_from=_DAY0 + timedelta(start) if dated and start is not None else None,
            valid_to=(_DAY0 + timedelta((start or 0) + length)
                      if dated and length is not None else None),
        ))
    # A phantom with lines into it but none of its own would lose demand: give it one.
    parents, children = {r["parent_id"] for r in rows}, {r["child_id"] for r in rows}
    rows += [line(f"N{i}", f"N{n}", 1.0) for i in range(n)
             if phantom[i] and f"N{i}" in children - parents]
    return bom_lines(*rows)


def _probe_days() -> list[date]:
    return [_DAY0 + timedelta(d) for d in range(-2, 33)]


def _on(exploded: pl.DataFrame, day: date) -> dict[tuple[str, str, int], tuple[float, int, bool]]:
    holds = exploded.filter(
        (pl.col("valid_from").is_null() | (pl.col("valid_from") <= day))
        & (pl.col("valid_to").is_null() | (pl.col("valid_to") >= day)))
    got = {(p, c, lead): (q, d, leaf)
           for p, c, _, _, lead, q, d, leaf in holds.rows()}
    assert len(got) == holds.height, f"overlapping ranges on {day}"
    return got


@settings(max_examples=200, deadline=None, database=None)
@given(random_boms())
def test_explode_dated_matches_the_recursion_on_every_day(bom: pl.DataFrame) -> None:
    exploded = explode_dated(bom)
    keys = ["product_id", "component_id", "lead_days", "valid_from"]
    assert exploded.rows() == exploded.sort(keys, nulls_last=False).rows()

    for day in _probe_days():
        want = naive_explode_on(bom, day)
        got = _on(exploded, day)
        assert got.keys() == want.keys(), day
        for key, (qty, depth, leaf) in want.items():
            assert got[key] == (pytest.approx(qty, rel=1e-9), depth, leaf), (day, key)


@settings(max_examples=150, deadline=None, database=None)
@given(random_boms(), st.lists(st.tuples(st.integers(0, 9), st.integers(-1, 32),
                                         st.sampled_from([1.0, 2.0, 0.5, 7.0, 0.0, -3.0])),
                         max_size=40))
def test_component_demand_matches_the_reference(
        bom: pl.DataFrame, sold: list[tuple[int, int, float]]) -> None:
    history = sales("c", *((f"N{p}", _DAY0 + timedelta(d), q) for p, d, q in sold))

    got = component_demand(history, explode_dated(bom))
    want = naive_component_demand(history, bom)

    # a zero or negative sale (a return) still makes its rows, demand 0 included
    assert {key: pytest.approx(v, rel=1e-9, abs=1e-9) for key, v in want.items()} == {
        (c, k, d): v for c, k, d, v in got.rows()}
    assert got.rows() == got.sort("component_id", "date").rows()


def test_a_day_appended_leaves_earlier_demand_the_same_to_the_bit() -> None:
    # What lets the pipeline rewrite only the changed days: each day's sum has one order,
    # whatever the number of days or the order of the rows (big enough for BLAS to block).
    rng = random.Random(7)
    rows = [line(f"P{p}", f"C{rng.randrange(400)}", rng.uniform(0.1, 3),
                 lead_days=rng.choice([0, 0, 2]), scrap_pct=rng.choice([0, 5]))
            for p in range(80) for _ in range(12)]
    exploded = explode_dated(bom_lines(*rows))
    history = sales("c", *((f"P{p}", _DAY0 + timedelta(d), rng.uniform(0, 9))
                           for d in range(500) for p in range(80) if rng.random() < 0.7))
    later = pl.concat([history, sales("c", ("P3", _DAY0 + timedelta(500), 4.0))])

    before = component_demand(history, exploded)
    after = component_demand(later.sample(fraction=1.0, shuffle=True, seed=1), exploded)

    cut = pl.col("date") < _DAY0 + timedelta(500 - 2)
    assert before.filter(cut).equals(after.filter(cut))
    assert after.height > before.height
