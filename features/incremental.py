"""Incremental recompute: a client's features from a date on, equal value for value to a full
recompute, from the sales since a few weeks before it and the stored features.

    plan = plan_from(changed_from, params)   # changed_from: the first day whose data changed
    # read: sales and the stored wide rows from plan.read_since on; the whole stock table, the
    # product metadata and the stored profiles
    result = compute_since(plan, sales, stock, products, params, stored, stored_profiles)
    # write: result.wide replaces the client's wide rows from result.since on (not plan.since:
    # a grid that now ends earlier moves it back, and days whose recomputed rows equal the
    # stored ones move it on); result.profiles replaces all its profiles

Why it is exact: every window/lag value is a fixed function of the days it covers (kernels), so
recomputed from read_since it has the same bits as in the full run; an EMA continues from its
stored value at since - 1 with the same step; the profiles are exact Decimal sums, the stored ones
plus the new days minus the replaced ones (profiles). What it relies on: data before `since` did
not change, and the store gives back the floats and decimals it was given. Both are checked
where cheap: the day before `since` is recomputed from the sales read and must equal the stored
row (every column but the EMAs), and so must the stored qty of every day read.

When it cannot be exact with what it was given it raises Replan(since): run it again planned
from that date, or (since None) compute the client in full. The cases: nothing stored from
read_since on; the stored columns are not the parameters' (they changed); no sales read (where
the client's days end is unknown); the client had no days between its last stored day and
`since` (the grid grows across the pause: replan from the day after the last stored one); a
product made inactive, or one with sales before `since` but no stored rows (was inactive), or a
stored row that disagrees with the recompute (data before `since` changed after all).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from features import profiles
from features.grid import KEYS, build, daily
from features.params import FeatureParams
from features.wide import ROW_KEY, Features, families, features_of, wide_schema

ONE_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Plan:
    since: dt.date  # the first day whose data changed: rows from it on are recomputed
    read_since: dt.date  # read sales and stored wide rows from this day on


def plan_from(changed_from: dt.date, params: FeatureParams) -> Plan:
    """What to read to recompute from `changed_from`: the warm-up the windows and lags need
    (params.warm_up() days) and one day more, the day whose stored row is checked and whose
    EMA values the run continues from."""
    return Plan(changed_from, changed_from - (params.warm_up() + 1) * ONE_DAY)


class Replan(Exception):
    """An exact incremental compute needs more than it was given: plan again from `since`
    (None: compute the client in full). The message says why."""

    def __init__(self, since: dt.date | None, reason: str) -> None:
        super().__init__(f"{reason}: {'a full recompute' if since is None else f'from {since}'}")
        self.since = since


def compute_since(plan: Plan, sales: pl.DataFrame, stock: pl.DataFrame | None,
                  products: pl.DataFrame | None, params: FeatureParams,
                  stored: pl.DataFrame, stored_profiles: pl.DataFrame) -> Features:
    """One client's features from plan.since on (see the module doc); Replan if that cannot be
    exact. `sales` from plan.read_since on (earlier rows are ignored), `stock` whole, `stored`
    the client's stored wide rows from plan.read_since on, `stored_profiles` its profiles."""
    floor, since = plan.read_since, plan.since
    rows = daily(sales).filter(pl.col("date") >= floor)
    clients = {*rows.get_column("client_id").unique(), *stored.get_column("client_id").unique()}
    if len(clients) > 1:
        raise ValueError(f"compute_since takes one client's data, got {sorted(clients)}")
    stored = _stored(stored, params, floor)
    last_stored, last_sale = stored.get_column("date").max(), rows.get_column("date").max()
    if last_sale is None:
        raise Replan(None, f"no sales from {floor} on: where the client's days end is unknown")
    assert isinstance(last_stored, dt.date) and isinstance(last_sale, dt.date)
    until = min(since, last_sale + ONE_DAY)  # rows from here on are replaced
    if last_stored + ONE_DAY < until:
        raise Replan(last_stored + ONE_DAY, f"nothing stored after {last_stored}")

    firsts = stored.group_by(KEYS).agg(first=pl.col("date").min())
    _check_active(firsts.filter(pl.col("first") < until), products, until)
    grid = build(rows, products, floor=floor,
                 continuing=firsts.filter(pl.col("first") == floor))
    _check_starts(grid.series, firsts, floor, until)
    _check_qty(grid.rows, stored, floor, until)

    before = since - ONE_DAY
    seeds = stored.filter(pl.col("date") == before)
    _check_seeds(seeds, params)
    wide = features_of(grid, stock, params, first_day=before,
                       seeds=seeds)
    if until == since:
        _check_row(wide.filter(pl.col("date") == before),
                   stored.filter(pl.col("date") == before), params)
    wide = wide.filter(pl.col("date") >= until)
    aggregates = profiles.combine(
        _stored_sums(stored_profiles, firsts),
        profiles.sums(wide), profiles.sums(stored.filter(pl.col("date") >= until)),
    ) if params.seasonality else profiles.empty_sums()
    # Rows equal to the stored ones need no write: replace from the first day that differs.
    first = _first_change(wide, stored.filter(pl.col("date") >= until), params, until)
    return Features(wide.filter(pl.col("date") >= first), profiles.profiles(aggregates), first,
                    families(params, stock))


def _first_change(wide: pl.DataFrame, stored: pl.DataFrame, params: FeatureParams,
                  until: dt.date) -> dt.date:
    """The first day on which a computed row differs from the stored one (values, or a row only
    one side has); the day after both sides' last when none does. Compared as stored: NaN is
    null there."""
    values = wide_schema(params).names()[3:]
    joined = wide.with_columns(pl.col(values).fill_nan(None)).join(
        stored, on=ROW_KEY, how="full", coalesce=True, suffix="_stored")
    differs = pl.any_horizontal(pl.col(c).ne_missing(pl.col(f"{c}_stored")) for c in values)
    first = joined.filter(differs).get_column("date").min()
    if isinstance(first, dt.date):
        return first
    last = joined.get_column("date").max()  # nothing changed: an empty write after the last day
    return last + ONE_DAY if isinstance(last, dt.date) else until


def _stored(stored: pl.DataFrame, params: FeatureParams, floor: dt.date) -> pl.DataFrame:
    names = wide_schema(params).names()
    missing = [c for c in names if c not in stored.columns]
    if missing:
        raise Replan(None, f"the stored features have no {', '.join(missing)}: the parameters "
                           "changed")
    stored = stored.select(names).filter(pl.col("date") >= floor)
    if stored.is_empty():
        raise Replan(None, f"no features stored from {floor} on")
    return stored


def _check_active(kept: pl.DataFrame, products: pl.DataFrame | None, until: dt.date) -> None:
    """A product made inactive must lose every stored row, also those before `until`."""
    if products is None:
        return
    inactive = kept.join(products.filter(~pl.col("active").cast(pl.Boolean)), on=KEYS)
    if inactive.height:
        raise Replan(None, f"product {inactive['product_id'][0]!r} is inactive now, its rows "
                           f"before {until} must go")


def _check_starts(series: pl.DataFrame, firsts: pl.DataFrame, floor: dt.date,
                  until: dt.date) -> None:
    """Each series must start where its stored rows do, unless all of those are replaced."""
    both = series.join(firsts, on=KEYS, how="full", coalesce=True).with_columns(
        start=pl.col("start").cast(pl.Date))
    kept = pl.col("first") < until
    wrong = both.filter(
        pl.when(kept & (pl.col("first") > floor)).then(pl.col("start").ne_missing(pl.col("first")))
        .when(~kept.fill_null(False)).then(pl.col("start") < until)
        .otherwise(False)
    )
    if wrong.height:
        row = wrong.row(0, named=True)
        raise Replan(None, f"product {row['product_id']!r}: stored from {row['first']}, sales "
                           f"read from {row['start']}")


def _check_qty(grid_rows: pl.DataFrame, stored: pl.DataFrame, floor: dt.date,
               until: dt.date) -> None:
    """The days kept (before `until`) must have the qty the sales read give them."""
    def kept(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.filter(pl.col("date") < until).select(*KEYS, "date", "qty")

    diff = kept(grid_rows).join(kept(stored), on=[*KEYS, "date"], how="full", coalesce=True)
    diff = diff.filter(pl.col("qty").ne_missing(pl.col("qty_right")))
    if diff.height:
        row = diff.row(0, named=True)
        raise Replan(None, f"product {row['product_id']!r} on {row['date']}: stored qty "
                           f"{row['qty_right']}, sales read give {row['qty']}")


def _check_seeds(seeds: pl.DataFrame, params: FeatureParams) -> None:
    """An EMA continues from its stored value: there must be one (EMAs are never null)."""
    for span in params.ema_spans:
        bad = seeds.filter(pl.col(f"ema_{span}").is_null())
        if bad.height:
            raise Replan(None, f"product {bad['product_id'][0]!r}: no stored ema_{span} on "
                               f"{bad['date'][0]}")


def _check_row(computed: pl.DataFrame, stored: pl.DataFrame, params: FeatureParams) -> None:
    """The day before `since`, recomputed from the sales read, must equal its stored row."""
    checked = [c for c in wide_schema(params).names() if not c.startswith("ema_")]
    joined = computed.select(checked).join(stored.select(checked), on=[*KEYS, "date"],
                                           how="full", coalesce=True)
    for column in checked[3:]:
        bad = joined.filter(pl.col(column).ne_missing(pl.col(f"{column}_right")))
        if bad.height:
            row = bad.row(0, named=True)
            raise Replan(None, f"product {row['product_id']!r} on {row['date']}: stored "
                               f"{column} {row[f'{column}_right']}, recomputed {row[column]}")


def _stored_sums(stored_profiles: pl.DataFrame, stored: pl.DataFrame) -> pl.DataFrame:
    """The stored aggregates; every product with stored rows must have them (they are what its
    replaced rows are subtracted from)."""
    names = [*profiles.AGGREGATE, "qty_sum", "days"]
    if not set(names) <= set(stored_profiles.columns):
        raise Replan(None, "the stored profiles have no qty_sum and days")
    sums = stored_profiles.select(names).cast(
        {"qty_sum": profiles.SUM, "days": pl.Int64, "period": pl.Int32})
    missing = stored.join(sums, on=KEYS, how="anti")
    if missing.height:
        raise Replan(None, f"no stored profile of product {missing['product_id'][0]!r}")
    return sums
